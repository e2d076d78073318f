//! The daemon among hostile files and abrupt ends: outbox entries that are
//! not plain message files, and restarts right after `kill -9`.

mod common;

use common::{wait_until, Hub, DEADLINE};

#[test]
fn outbox_entries_that_are_not_plain_files_go_to_failed_and_block_nothing() {
    let hub = Hub::start();
    let m = hub.machine("m1");
    let outside = m.base.with_file_name("secret.json");
    std::fs::write(&outside, r#"{"type":"leak"}"#).unwrap();
    // Created before the daemon starts, so its first pass meets all of them.
    std::fs::create_dir_all(m.dir("outbox").join("dir.json")).unwrap();
    let fifo = m.dir("outbox").join("fifo.json");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink(&outside, m.dir("outbox").join("link.json")).unwrap();
    let sparse = std::fs::File::create(m.dir("outbox").join("sparse.json")).unwrap();
    sparse.set_len(2 << 30).unwrap();
    std::fs::write(m.dir("outbox").join("good.json"), r#"{"type":"ok"}"#).unwrap();

    let mut d = m.start_daemon();
    wait_until("good file sent", DEADLINE, || {
        m.files("sent") == ["good.json"]
    });
    wait_until("hostile entries failed", DEADLINE, || {
        m.files("failed").len() == 4
    });
    let reason = |name: &str| {
        std::fs::read_to_string(m.dir("failed").join(format!("{name}.error"))).unwrap()
    };
    assert!(reason("dir.json").contains("directory"));
    assert!(reason("fifo.json").contains("FIFO"));
    assert!(reason("link.json").contains("symbolic link"));
    assert!(reason("sparse.json").contains("max_message_bytes"));
    // The link itself moved, never what it points to, which was never sent.
    assert!(outside.exists());
    assert!(std::fs::symlink_metadata(m.dir("failed").join("link.json"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(d.terminate().success(), "a FIFO never holds the daemon");
}

#[test]
fn a_daemon_restarted_right_after_kill_9_starts() {
    let hub = Hub::start();
    let m = hub.machine("m1");
    let mut d = m.start_daemon();
    for round in 0..10 {
        hub.wait_streaming("m1");
        d.kill9();
        d = m.start_daemon();
        let pid = d.pid().to_string();
        wait_until("restarted daemon holds the lock", DEADLINE, || {
            assert!(d.is_running(), "round {round}: {}", d.log());
            std::fs::read_to_string(m.base.join("daemon.lock")).is_ok_and(|t| t.trim() == pid)
        });
    }
}

#[test]
fn a_payload_arrives_byte_for_byte_and_a_bad_created_at_is_refused() {
    let hub = Hub::start();
    let (a, b) = (hub.machine("a"), hub.machine("b"));
    let payload = r#"{"z":123456789012345678901234567890,"a":1e-400,"m":[1.50,-0]}"#;
    let id = a.send("t", &["--target", "b", "--payload", payload]);
    let year0 = a.base.with_file_name("year0.json");
    std::fs::write(
        &year0,
        r#"{"type":"t","created_at":"0000-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    let checked = a.run(&["check", year0.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&checked.stdout).to_string()
        + &String::from_utf8_lossy(&checked.stderr);
    assert!(!checked.status.success(), "{said}");
    assert!(
        said.contains("created_at") && said.contains("0000"),
        "{said}"
    );
    let out = a.run(&["start", "--once"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = b.run(&["start", "--once"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inbox = b.files("inbox");
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert!(inbox[0].contains(&id));
    let text = std::fs::read_to_string(b.dir("inbox").join(&inbox[0])).unwrap();
    assert!(text.contains(&format!(r#""payload":{payload}"#)), "{text}");
}
