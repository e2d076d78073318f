//! Precedence and error messages of settings.

use super::*;
use std::time::Duration;

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
    s.source_of(key).unwrap()
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
    assert!(matches!(
        origin(&s, "http_timeout"),
        Source::File { line: 3, .. }
    ));
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
fn malformed_toml_is_an_error_naming_file_line_and_column() {
    let (_d, o) = base_with_file("host_id = \"h\"\npoll_interval = \n");
    let err = Settings::resolve(&o, env_of(&[])).unwrap_err().to_string();
    assert!(err.contains("config.toml"), "{err}");
    assert!(err.contains("line 2, column 17"), "{err}");
}

#[test]
fn unknown_and_mistyped_file_values_name_their_line() {
    let (_d, o) = base_with_file("\n\npol_interval = 5\n");
    let err = Settings::resolve(&o, env_of(&[])).unwrap_err().to_string();
    assert!(err.contains("config.toml:3"), "{err}");
    let (_d, o) = base_with_file("host_id = \"h\"\nhook_concurrency = \"4\"\n");
    let err = Settings::resolve(&o, env_of(&[])).unwrap_err().to_string();
    assert!(
        err.contains("hook_concurrency") && err.contains("config.toml:2"),
        "{err}"
    );
}

#[test]
fn durations_take_units_from_file_env_and_flag() {
    let (_d, mut o) = base_with_file("retention = \"7d\"\nsent_ttl = 60\n");
    o.set("hook_timeout", Some("90s".into()));
    let env = env_of(&[("MESYNC_HOST_ID", "h"), ("MESYNC_DEDUPE_WINDOW", "24h")]);
    let s = Settings::resolve(&o, env).unwrap();
    assert_eq!(s.retention, Duration::from_secs(7 * 86_400));
    assert_eq!(s.sent_ttl, Duration::from_secs(60));
    assert_eq!(s.hook_timeout, Duration::from_secs(90));
    assert_eq!(s.dedupe_window, Duration::from_secs(86_400));
    let (_d, o) = base_with_file("keepalive = \"15 minutes\"\n");
    let err = Settings::resolve(&o, env_of(&[])).unwrap_err().to_string();
    assert!(err.contains("keepalive") && err.contains("7d"), "{err}");
}

#[test]
fn every_default_in_the_table_is_valid() {
    let (_d, o) = base_with_file("");
    let s = Settings::resolve(&o, env_of(&[("MESYNC_HOST_ID", "h")])).unwrap();
    assert_eq!(s.origins.len(), KEYS.len() + 1);
    let defaults = s.origins.iter().filter(|o| o.source == Source::Default);
    assert_eq!(defaults.count(), KEYS.len() - 1, "all but host_id");
    assert_eq!(
        s.max_message_bytes,
        crate::message::DEFAULT_MAX_MESSAGE_BYTES
    );
}

#[test]
fn an_unusable_hostname_default_says_what_to_set() {
    // The real hostname cannot be chosen here; ask how a bad one is refused.
    let no_env = |_: &str| None;
    let sources = Sources {
        flags: &Overrides::default(),
        env: &no_env,
        file: file::ConfigFile::default(),
        base_dir: "/b".into(),
        base_source: Source::Default,
    };
    let key = keys::find("host_id").unwrap();
    let err = sources
        .refused(key, "bad_host!".into(), Source::Default)
        .to_string();
    assert!(
        err.contains("MESYNC_HOST_ID") && err.contains("system hostname"),
        "{err}"
    );
}

#[test]
fn the_sample_config_and_the_settings_page_list_every_key() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sample = std::fs::read_to_string(root.join("fixtures/config.toml")).unwrap();
    let page = std::fs::read_to_string(root.join("docs/settings.md")).unwrap();
    for k in KEYS {
        assert!(
            sample.contains(&format!("{} =", k.name)),
            "fixtures/config.toml lacks {}",
            k.name
        );
        let default = match k.default {
            keys::DefaultValue::Text(t) => format!("`{t}`"),
            other => other.shown().to_string(),
        };
        let row = format!("| `{}` | `{}` | {default} |", k.name, k.env);
        assert!(page.contains(&row), "docs/settings.md lacks the row {row}");
    }
}

#[test]
fn token_is_masked_in_origins() {
    let (_d, o) = base_with_file("token = \"s3cret\"\n");
    let s = Settings::resolve(&o, env_of(&[("MESYNC_HOST_ID", "h")])).unwrap();
    assert_eq!(s.token.as_deref(), Some("s3cret"));
    assert!(s.origins.iter().all(|o| !o.shown.contains("s3cret")));
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

#[test]
fn token_file_supplies_the_token_and_refuses_a_second_one() {
    let (dir, o) = base_with_file("");
    let secret = dir.path().join("token");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let path = secret.display().to_string();
    let env = [
        ("MESYNC_HOST_ID", "h"),
        ("MESYNC_TOKEN_FILE", path.as_str()),
    ];
    let s = Settings::resolve(&o, vars(&env)).unwrap();
    assert_eq!(s.token.as_deref(), Some("s3cret"));
    assert!(s.origins.iter().all(|o| !o.shown.contains("s3cret")));

    let both = [
        ("MESYNC_HOST_ID", "h"),
        ("MESYNC_TOKEN_FILE", path.as_str()),
        ("MESYNC_TOKEN", "other"),
    ];
    let err = Settings::resolve(&o, vars(&both)).unwrap_err().to_string();
    assert!(
        err.contains("token_file") && err.contains("MESYNC_TOKEN"),
        "{err}"
    );

    let missing = dir.path().join("nope").display().to_string();
    let env = [
        ("MESYNC_HOST_ID", "h"),
        ("MESYNC_TOKEN_FILE", missing.as_str()),
    ];
    let err = Settings::resolve(&o, vars(&env)).unwrap_err().to_string();
    assert!(err.contains("nope") && err.contains("token_file"), "{err}");
}

fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |var| {
        pairs
            .iter()
            .find(|(k, _)| *k == var)
            .map(|(_, v)| v.to_string())
    }
}
