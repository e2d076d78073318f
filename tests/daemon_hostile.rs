//! The daemon among hostile files and abrupt ends: outbox entries that are
//! not plain message files, and restarts right after `kill -9`.

mod common;

use common::daemon::*;
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
