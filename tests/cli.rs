//! The command line against a temporary base dir, with no daemon and no hub:
//! the files it writes, what it prints, and its exit codes.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::Machine;

/// A machine whose hub is a port nothing listens on.
fn machine() -> Machine {
    Machine::new("machine-1", common::NO_HUB)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
}

#[test]
fn send_writes_one_complete_message_into_outbox_without_hub_or_daemon() {
    let m = machine();
    let id = m.send("task.event", &["--payload", r#"{"job":"build"}"#]);
    let files = m.files("outbox");
    assert_eq!(files.len(), 1);
    assert!(files[0].ends_with(&format!("_{id}.json")), "{files:?}");
    // YYYYMMDDTHHmmss_
    assert_eq!(files[0].find('_'), Some(15));
    let msg = &m.messages("outbox")[0];
    assert_eq!(msg["id"], id.as_str());
    assert_eq!(msg["type"], "task.event");
    assert_eq!(msg["source"], "machine-1");
    assert_eq!(msg["target"], serde_json::Value::Null);
    assert_eq!(msg["priority"], "normal");
    assert_eq!(msg["payload"]["job"], "build");
    let created = msg["created_at"].as_str().unwrap();
    assert!(
        created.ends_with("+00:00") && created.len() == 32,
        "{created}"
    );
    // No temp file is left behind anywhere visible.
    assert_eq!(std::fs::read_dir(m.dir("outbox")).unwrap().count(), 1);
}

#[test]
fn base_dir_is_created_private() {
    let m = machine();
    m.send("t", &[]);
    let mode = std::fs::metadata(&m.base).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn send_reads_payload_from_file_and_stdin_with_priority_and_target() {
    let m = machine();
    let file = m._tmp.path().join("payload.json");
    std::fs::write(&file, r#"{"from":"file"}"#).unwrap();
    m.send(
        "a.b",
        &[
            "--payload-file",
            file.to_str().unwrap(),
            "--priority",
            "high",
        ],
    );

    let mut child = m
        .cmd()
        .args([
            "send",
            "c.d",
            "--payload",
            "-",
            "--target",
            "machine-2",
            "--priority",
            "low",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"[1,2,3]"#)
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());

    let msgs = m.messages("outbox");
    let by_type = |t: &str| msgs.iter().find(|m| m["type"] == t).unwrap().clone();
    assert_eq!(by_type("a.b")["payload"]["from"], "file");
    assert_eq!(by_type("a.b")["priority"], "high");
    assert_eq!(by_type("c.d")["payload"], serde_json::json!([1, 2, 3]));
    assert_eq!(by_type("c.d")["target"], "machine-2");
    assert_eq!(by_type("c.d")["priority"], "low");
}

#[test]
fn bad_send_input_exits_2_with_one_line_and_writes_nothing() {
    let m = machine();
    let cases: &[&[&str]] = &[
        &["send", "../x"],
        &["send", ".hidden"],
        &["send", "t", "--payload", "{not json"],
        &["send", "t", "--priority", "urgent"],
        &["send", "t", "--target", "a/b"],
        &["send", "t", "--payload-file", "/nonexistent/payload.json"],
    ];
    for args in cases {
        let out = m.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{err}");
    }
    assert!(m.files("outbox").is_empty());
}

#[test]
fn oversized_message_is_refused() {
    let m = machine();
    let big = format!("\"{}\"", "x".repeat(2000));
    let out = m
        .cmd()
        .env("MESYNC_MAX_MESSAGE_BYTES", "1000")
        .args(["send", "t", "--payload", &big])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("max_message_bytes"),
        "{}",
        stderr(&out)
    );
    assert!(m.files("outbox").is_empty());
}

#[test]
fn list_shows_an_aligned_table_and_json_lines() {
    let m = machine();
    let a = m.send("first.type", &["--target", "machine-2"]);
    let b = m.send("second", &["--priority", "high"]);
    let out = m.run(&["list", "outbox"]);
    assert!(out.status.success());
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("TIME"));
    let col = lines[0].find("TYPE").unwrap();
    assert_eq!(lines[1].find("first.type"), Some(col), "{text}");
    assert!(lines[1].contains(&a) && lines[1].contains("machine-1 -> machine-2"));
    assert!(lines[2].contains(&b) && lines[2].contains("high"));

    let out = m.run(&["list", "outbox", "--json"]);
    let ids: Vec<String> = stdout(&out)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids, vec![a, b]);
    assert!(m.run(&["list", "inbox"]).status.success());
    assert_eq!(m.run(&["list", "nowhere"]).status.code(), Some(2));
}

#[test]
fn retry_moves_failed_back_to_outbox_and_flush_empties_a_queue() {
    let m = machine();
    let a = m.send("a", &[]);
    let b = m.send("b", &[]);
    std::fs::create_dir_all(m.dir("failed")).unwrap();
    for name in m.files("outbox") {
        std::fs::rename(m.dir("outbox").join(&name), m.dir("failed").join(&name)).unwrap();
        std::fs::write(m.dir("failed").join(format!("{name}.error")), "rejected").unwrap();
    }
    let out = m.run(&["retry", &a]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(m.files("outbox").len(), 1);
    assert!(m.files("outbox")[0].contains(&a));
    assert!(std::fs::read_dir(m.dir("failed")).unwrap().count() == 2);

    let out = m.run(&["retry", "01234567-89ab-7def-8123-456789abcdef"]);
    assert_eq!(out.status.code(), Some(2));

    assert!(m.run(&["retry"]).status.success());
    assert_eq!(m.files("outbox").len(), 2);
    assert_eq!(
        std::fs::read_dir(m.dir("failed")).unwrap().count(),
        0,
        "no .error left"
    );
    let _ = b;

    for name in m.files("outbox") {
        std::fs::rename(m.dir("outbox").join(&name), m.dir("inbox").join(&name)).unwrap();
    }
    let out = m.run(&["flush", "inbox"]);
    assert!(out.status.success());
    assert!(m.files("inbox").is_empty());
    assert_eq!(
        m.run(&["flush", "outbox"]).status.code(),
        Some(2),
        "outbox cannot be flushed"
    );
}

#[test]
fn status_shows_settings_sources_daemon_hub_and_queues() {
    let m = machine();
    std::fs::create_dir_all(&m.base).unwrap();
    std::fs::write(m.base.join("config.toml"), "sent_ttl = 60\n").unwrap();
    m.send("t", &[]);
    let out = m
        .cmd()
        .env("MESYNC_HOOK_TIMEOUT", "7")
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let line = |key: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        line("sent_ttl").contains("60") && line("sent_ttl").contains("config.toml"),
        "{text}"
    );
    assert!(
        line("hook_timeout").contains("env MESYNC_HOOK_TIMEOUT"),
        "{text}"
    );
    assert!(line("keepalive").contains("default"), "{text}");
    assert!(line("host_id").contains("machine-1"), "{text}");
    assert!(text.contains("daemon:  not running"), "{text}");
    assert!(text.contains("not reachable"), "{text}");
    assert!(line("outbox").contains('1'), "{text}");
}

#[test]
fn bad_settings_exit_2_naming_key_and_source() {
    let m = machine();
    std::fs::create_dir_all(&m.base).unwrap();
    std::fs::write(m.base.join("config.toml"), "poll_intervall = 5\n").unwrap();
    let out = m.run(&["status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("poll_intervall"), "{}", stderr(&out));

    std::fs::write(m.base.join("config.toml"), "retention = \"soon\"\n").unwrap();
    let out = m.run(&["send", "t"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("retention") && err.contains("config.toml") && err.contains("seconds"),
        "{err}"
    );

    std::fs::write(m.base.join("config.toml"), "").unwrap();
    let out = m
        .cmd()
        .env("MESYNC_SENT_TTL", "-1")
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("MESYNC_SENT_TTL"), "{}", stderr(&out));
}

#[test]
fn every_invalid_fixture_is_refused_with_a_reason() {
    let m = machine();
    for file in fixtures("invalid") {
        let out = m.run(&["check", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}", file.display());
        let text = stdout(&out);
        assert!(text.starts_with("bad "), "{}: {text}", file.display());
    }
}

#[test]
fn every_valid_fixture_passes_check() {
    let m = machine();
    let files = fixtures("valid");
    let mut args = vec!["check"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let out = m.run(&args);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        stdout(&out)
            .lines()
            .filter(|l| l.starts_with("ok "))
            .count(),
        files.len()
    );
}

#[test]
fn sample_config_is_valid() {
    let m = machine();
    std::fs::create_dir_all(&m.base).unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/config.toml");
    std::fs::copy(sample, m.base.join("config.toml")).unwrap();
    let out = mesync_without_host(&m).arg("status").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("hub.internal"));
}

fn mesync_without_host(m: &Machine) -> std::process::Command {
    common::mesync_cmd(&m.base)
}

#[test]
fn every_command_has_help_with_an_example() {
    let m = machine();
    for cmd in [
        "serve", "start", "send", "list", "retry", "flush", "status", "hosts", "watch", "check",
    ] {
        let out = m.run(&[cmd, "--help"]);
        assert!(out.status.success(), "{cmd}");
        assert!(
            stdout(&out).contains("Example"),
            "{cmd} --help has no example"
        );
    }
    assert!(stdout(&m.run(&["--help"])).contains("Example"));
}

/// Runs `args` with stdout a pipe whose reading end is already closed, as
/// when the reader (`head`, a pager) has gone.
fn into_closed_pipe(m: &Machine, args: &[&str]) -> std::process::Output {
    let mut child = m
        .cmd()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

#[test]
fn output_into_a_closed_pipe_ends_quietly_with_success() {
    let m = machine();
    m.send("t", &[]);
    let valid = fixtures("valid");
    let commands: &[&[&str]] = &[
        &["list", "outbox"],
        &["list", "outbox", "--json"],
        &["status"],
        &["check", valid[0].to_str().unwrap()],
        &["send", "t"],
        &["retry"],
        &["flush", "sent"],
        &["--help"],
    ];
    for args in commands {
        let out = into_closed_pipe(&m, args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}");
    }
}

#[test]
fn list_piped_into_head_prints_one_line_and_exits_0() {
    let m = machine();
    // Far more than a pipe holds, so `list` is still writing when head exits.
    common::daemon::fill_outbox(&m, "t", None, 2000);
    let script = format!("set -o pipefail; '{}' list outbox | head -1", common::bin());
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &m.base)
        .env("MESYNC_BASE_DIR", &m.base)
        .env("MESYNC_HOST_ID", &m.host)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("TIME"), "{text}");
}

#[test]
fn durations_take_units_and_flags_beat_the_environment() {
    let m = machine();
    let out = m
        .cmd()
        .env("MESYNC_SENT_TTL", "3h")
        .env("MESYNC_HTTP_TIMEOUT", "1")
        .args(["status", "--http-timeout", "2m"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let line = |key: &str| text.lines().find(|l| l.trim_start().starts_with(key));
    assert!(
        line("sent_ttl").is_some_and(|l| l.contains("3h") && l.contains("env")),
        "{text}"
    );
    assert!(
        line("http_timeout").is_some_and(|l| l.contains("2m") && l.contains("flag")),
        "{text}"
    );
}

#[test]
fn a_malformed_config_names_file_line_and_column() {
    let m = machine();
    std::fs::create_dir_all(&m.base).unwrap();
    std::fs::write(
        m.base.join("config.toml"),
        "sent_ttl = 60\nretention = 7d\n",
    )
    .unwrap();
    let out = m.run(&["status"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("config.toml") && err.contains("line 2, column"),
        "{err}"
    );
}
