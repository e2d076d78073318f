//! Precedence and error messages of settings.

use super::*;

fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |var| {
        pairs
            .iter()
            .find(|(k, _)| *k == var)
            .map(|(_, v)| v.to_string())
    }
}

fn base_with_file(text: &str) -> (tempfile::TempDir, Overrides) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), text).unwrap();
    let o = Overrides {
        base_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    (dir, o)
}

fn origin<'a>(s: &'a Settings, key: &str) -> &'a Source {
    &s.origins.iter().find(|(k, _, _)| *k == key).unwrap().2
}

#[test]
fn defaults_apply_without_anything() {
    let (_d, o) = base_with_file("");
    let s = Settings::resolve(&o, env_of(&[("MESYNC_HOST_ID", "h1")])).unwrap();
    assert_eq!(s.server_url, "http://localhost:8080");
    assert_eq!(s.poll_interval, Duration::from_secs(5));
    assert_eq!(s.max_message_bytes, 1048576);
    assert_eq!(s.data_dir, s.base_dir.join("hub"));
    assert_eq!(s.token, None);
    assert_eq!(origin(&s, "poll_interval"), &Source::Default);
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let (_d, mut o) = base_with_file("poll_interval = 7\nsent_ttl = 9\nhttp_timeout = 11\n");
    o.set("poll_interval", Some("1".into()));
    let env = env_of(&[
        ("MESYNC_POLL_INTERVAL", "2"),
        ("MESYNC_SENT_TTL", "3"),
        ("MESYNC_HOST_ID", "h1"),
    ]);
    let s = Settings::resolve(&o, env).unwrap();
    assert_eq!(s.poll_interval, Duration::from_secs(1));
    assert_eq!(origin(&s, "poll_interval"), &Source::Flag);
    assert_eq!(s.sent_ttl, Duration::from_secs(3));
    assert_eq!(origin(&s, "sent_ttl"), &Source::Env("MESYNC_SENT_TTL"));
    assert_eq!(s.http_timeout, Duration::from_secs(11));
    assert!(matches!(origin(&s, "http_timeout"), Source::File(_)));
    assert_eq!(s.keepalive, Duration::from_secs(15));
}

#[test]
fn base_dir_from_env_then_home() {
    let s = Settings::resolve(
        &Overrides::default(),
        env_of(&[
            ("MESYNC_BASE_DIR", "/nonexistent/b"),
            ("MESYNC_HOST_ID", "h"),
        ]),
    )
    .unwrap();
    assert_eq!(s.base_dir, PathBuf::from("/nonexistent/b"));
    let s = Settings::resolve(
        &Overrides::default(),
        env_of(&[("HOME", "/nonexistent/home"), ("MESYNC_HOST_ID", "h")]),
    )
    .unwrap();
    assert_eq!(s.base_dir, PathBuf::from("/nonexistent/home/.daemon"));
}

#[test]
fn unknown_key_in_file_is_named() {
    let (_d, o) = base_with_file("pol_interval = 5\n");
    let err = Settings::resolve(&o, env_of(&[])).unwrap_err().to_string();
    assert!(err.contains("pol_interval"), "{err}");
    assert!(err.contains("config.toml"), "{err}");
}

#[test]
fn wrong_type_in_file_names_key_source_and_expectation() {
    let (_d, o) = base_with_file("poll_interval = \"fast\"\n");
    let err = Settings::resolve(&o, env_of(&[])).unwrap_err().to_string();
    assert!(err.contains("poll_interval"), "{err}");
    assert!(err.contains("config.toml"), "{err}");
    assert!(err.contains("seconds"), "{err}");
}

#[test]
fn wrong_value_in_env_names_the_variable() {
    let (_d, o) = base_with_file("");
    let err = Settings::resolve(&o, env_of(&[("MESYNC_HOOK_CONCURRENCY", "many")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("hook_concurrency"), "{err}");
    assert!(err.contains("MESYNC_HOOK_CONCURRENCY"), "{err}");
}

#[test]
fn bad_url_bind_and_host_id_are_refused() {
    let (_d, o) = base_with_file("");
    for (var, val) in [
        ("MESYNC_SERVER_URL", "ftp://x"),
        ("MESYNC_BIND", "nowhere"),
        ("MESYNC_HOST_ID", "../etc"),
    ] {
        let pairs: &'static [(&str, &str)] = Box::leak(Box::new([(var, val)]));
        assert!(Settings::resolve(&o, env_of(pairs)).is_err(), "{var}={val}");
    }
}

#[test]
fn malformed_toml_is_an_error_naming_the_file() {
    let (_d, o) = base_with_file("poll_interval = \n");
    let err = Settings::resolve(&o, env_of(&[])).unwrap_err().to_string();
    assert!(err.contains("config.toml"), "{err}");
}

#[test]
fn token_is_masked_in_origins() {
    let (_d, o) = base_with_file("token = \"s3cret\"\n");
    let s = Settings::resolve(&o, env_of(&[("MESYNC_HOST_ID", "h")])).unwrap();
    assert_eq!(s.token.as_deref(), Some("s3cret"));
    assert!(s.origins.iter().all(|(_, v, _)| !v.contains("s3cret")));
}

#[test]
fn max_message_bytes_must_fit_in_one_request() {
    let (_d, o) = base_with_file("");
    let env = env_of(&[
        ("MESYNC_HOST_ID", "h"),
        ("MESYNC_MAX_MESSAGE_BYTES", "20000000"),
    ]);
    let err = Settings::resolve(&o, env).unwrap_err().to_string();
    assert!(
        err.contains("max_message_bytes") && err.contains("15 MiB"),
        "{err}"
    );
    let env = env_of(&[
        ("MESYNC_HOST_ID", "h"),
        ("MESYNC_MAX_MESSAGE_BYTES", "15728640"),
    ]);
    assert!(Settings::resolve(&o, env).is_ok());
}
