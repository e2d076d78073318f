//! `mesync hosts`, `mesync watch` and `mesync status` against a real hub and
//! daemon.

mod common;

use common::daemon::*;
use common::{Hub, Proc};

#[test]
fn hosts_lists_the_registered_hosts() {
    let c = Cluster::start(&["m1", "m2"], &[]);
    let out = c.m(0).run(&["hosts"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows = text.lines();
    assert!(rows.next().unwrap().starts_with("HOST"), "{text}");
    let hosts: Vec<&str> = rows.filter_map(|r| r.split_whitespace().next()).collect();
    assert!(hosts.contains(&"m1") && hosts.contains(&"m2"), "{text}");
}

#[test]
fn watch_prints_messages_and_acks_nothing() {
    let hub = Hub::start();
    let (a, b) = (hub.machine("a"), hub.machine("b"));
    // Queued before the watch starts: a watch replays the backlog too, so
    // it needs no registration (and makes none).
    let msg = message_json("t", "a", Some("b"));
    assert_eq!(post(&hub, &msg).0, 200);
    let mut cmd = b.cmd();
    cmd.arg("watch");
    let mut watch = Proc::spawn("watch-b", cmd);
    let line = watch.wait_line("").expect("watch printed the message");
    let got: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(got, msg);
    let info = host_info(&hub, "b").unwrap();
    assert_eq!(info["pending"], 1, "watch acked");
    assert_eq!(
        info["registered_at"],
        serde_json::Value::Null,
        "watch registered b"
    );
    drop(a);
}

#[test]
fn status_sees_the_running_daemon_and_the_hub() {
    let c = Cluster::start(&["m1"], &[]);
    let out = c.m(0).run(&["status"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let pid = c.daemons[0].pid();
    assert!(
        text.contains(&format!("daemon:  running (pid {pid})")),
        "{text}"
    );
    assert!(text.contains("hub:     reachable at"), "{text}");
}
