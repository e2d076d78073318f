//! What the daemon does with the files and processes around it: bad outbox
//! files, the base-dir lock, signals and `--once`.

mod common;

use common::daemon::*;
use common::{wait_until, Hub, DEADLINE};

#[test]
fn bad_outbox_files_end_in_failed_with_a_reason() {
    let hub = Hub::start();
    let m = hub.machine("m1");
    let _d = m.start_daemon();
    let outbox = m.dir("outbox");
    wait_until("outbox/ created", DEADLINE, || outbox.is_dir());
    let cases = [
        ("invalid.json", "{\"type\": ", "JSON"),
        ("badtype.json", r#"{"type":"no spaces"}"#, "type"),
        (
            "unknown.json",
            r#"{"type":"t","priorty":"high"}"#,
            "priorty",
        ),
    ];
    for (name, text, _) in cases {
        std::fs::write(outbox.join(name), text).unwrap();
    }
    std::fs::write(outbox.join(".partial.json"), "{").unwrap();
    std::fs::write(outbox.join("notes.txt"), "{").unwrap();
    std::fs::write(outbox.join("good.json"), r#"{"type":"ok"}"#).unwrap();

    wait_until("bad files failed", DEADLINE, || {
        m.files("failed").len() == 3
    });
    for (name, _, why) in cases {
        let error = std::fs::read_to_string(m.dir("failed").join(format!("{name}.error"))).unwrap();
        assert!(error.contains(why), "{name}: {error}");
    }
    wait_until("good file sent", DEADLINE, || {
        m.files("sent") == ["good.json"]
    });
    let sent = &m.messages("sent")[0];
    assert_eq!(sent["source"], "m1", "missing fields are filled in");
    assert!(outbox.join(".partial.json").exists() && outbox.join("notes.txt").exists());
}

#[test]
fn a_second_daemon_on_the_same_base_dir_exits_with_the_reason() {
    let hub = Hub::start();
    let m = hub.machine("m1");
    let _first = m.start_daemon();
    wait_until("first daemon holds the lock", DEADLINE, || {
        std::fs::read_to_string(m.base.join("daemon.lock")).is_ok_and(|t| !t.trim().is_empty())
    });
    let out = m.run(&["start"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another mesync daemon"), "{err}");
}

#[test]
fn sigterm_exits_zero() {
    let hub = Hub::start();
    let m = hub.machine("m1");
    let mut d = m.start_daemon();
    wait_until("daemon streaming", DEADLINE, || {
        host_info(&hub, "m1").is_some_and(|h| h["streams"] == 1)
    });
    assert!(d.terminate().success());
}

#[test]
fn once_sends_and_receives_then_exits() {
    let hub = Hub::start();
    let (a, b) = (hub.machine("a"), hub.machine("b"));
    let log = record_hook(&b, "t");
    let id = a.send("t", &["--target", "b"]);
    let out = a.run(&["start", "--once"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(a.files("sent").len(), 1);
    let out = b.run(&["start", "--once"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        inbox_ids(&b).into_iter().collect::<Vec<_>>(),
        vec![id.clone()]
    );
    assert_eq!(lines(&log).len(), 1, "hook waited for");
    assert_eq!(host_info(&hub, "b").unwrap()["pending"], 0, "acked");
}

#[test]
fn once_with_the_hub_down_fails_and_keeps_the_file() {
    let mut hub = Hub::start();
    let a = hub.machine("a");
    hub.proc.kill9();
    a.send("t", &[]);
    let out = a.run(&["start", "--once"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(a.files("outbox").len(), 1);
}
