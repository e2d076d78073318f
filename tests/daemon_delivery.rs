//! Delivery between daemons through a real hub: who gets what, hooks, and
//! de-duplication.

mod common;

use common::daemon::*;
use common::{wait_until, DEADLINE};

#[test]
fn broadcast_reaches_all_but_sender_and_targeted_only_its_target() {
    let c = Cluster::start(&["m1", "m2", "m3"], &[]);
    let all = c
        .m(0)
        .send("task.event", &["--payload", r#"{"job":"build"}"#]);
    let only3 = c.m(0).send("task.event", &["--target", "m3"]);

    wait_inbox_has(c.m(1), std::slice::from_ref(&all), DEADLINE);
    wait_inbox_has(c.m(2), &[all.clone(), only3.clone()], DEADLINE);
    wait_until("m1 outbox empty", DEADLINE, || {
        c.m(0).files("outbox").is_empty()
    });
    assert_eq!(c.m(0).files("sent").len(), 2);
    assert!(
        c.m(0).files("inbox").is_empty(),
        "the sender got its own broadcast"
    );
    assert_eq!(
        inbox_ids(c.m(1)).len(),
        1,
        "m2 got the message targeted at m3"
    );
    let got = c.m(1).messages("inbox");
    assert_eq!(got[0]["payload"]["job"], "build");
    assert_eq!(got[0]["source"], "m1");
}

#[test]
fn hook_runs_once_with_stdin_and_env_and_a_duplicate_is_dropped() {
    // A one-second dedupe window (swept every `retention` seconds) lets the hub
    // accept the same id again, so the daemon's own ledger must stop it.
    let env = [("MESYNC_DEDUPE_WINDOW", "1"), ("MESYNC_RETENTION", "2")];
    let c = Cluster::start(&["m1", "m2"], &env);
    let log = record_hook(c.m(1), "job.done");
    let msg = message_json("job.done", "m1", Some("m2"));
    let id = msg["id"].as_str().unwrap().to_string();
    let (status, body) = post(&c.hub, &msg);
    assert_eq!(status, 200, "{body}");

    wait_until("hook ran", DEADLINE, || lines(&log).len() == 1);
    let inbox_file = c.m(1).dir("inbox").join(&c.m(1).files("inbox")[0]);
    let fields: Vec<String> = lines(&log)[0].split(' ').map(String::from).collect();
    assert_eq!(fields[..3], [id.clone(), "job.done".into(), "m1".into()]);
    assert_eq!(std::path::Path::new(&fields[3]), inbox_file);
    let stdin: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c.m(1).base.join("hook-stdin").join(&id)).unwrap())
            .unwrap();
    assert_eq!(stdin, msg);

    // The consumer deletes the file; the hub delivers the same id again.
    std::fs::remove_file(&inbox_file).unwrap();
    wait_until("hub accepts the id again", DEADLINE, || {
        post(&c.hub, &msg).1["results"][0]["status"] == "accepted"
    });
    wait_until("m2 acked the re-delivery", DEADLINE, || {
        host_info(&c.hub, "m2").is_some_and(|h| h["pending"] == 0)
    });
    assert!(c.m(1).files("inbox").is_empty(), "written a second time");
    assert_eq!(lines(&log).len(), 1, "hook ran a second time");
}

#[test]
fn hostile_types_never_run_anything_outside_hooks() {
    let c = Cluster::start(&["m1", "m2"], &[]);
    let marker = c.m(1).base.join("escaped");
    let evil = format!("touch {}\n", marker.display());
    // Executables where a climbing type would point.
    install_script(&c.m(1).base.join("x"), &evil);
    install_script(&c.m(1).base.join("evil"), &evil);
    for kind in ["..", "../x", "../evil", ".x", "a/b"] {
        let mut msg = message_json("t", "m1", Some("m2"));
        msg["type"] = kind.into();
        let (status, body) = post(&c.hub, &msg);
        let refused = status == 400 || body["results"][0]["status"] == "rejected";
        assert!(refused, "type {kind:?} was accepted: {status} {body}");
    }
    std::fs::write(c.m(0).dir("outbox").join("evil.json"), r#"{"type":"../x"}"#).unwrap();
    wait_until("hostile outbox file failed", DEADLINE, || {
        c.m(0).files("failed") == ["evil.json"]
    });
    let why = std::fs::read_to_string(c.m(0).dir("failed").join("evil.json.error")).unwrap();
    assert!(why.contains("type"), "{why}");

    // A legitimate message whose type matches the outside file runs nothing.
    let id = c.m(0).send("x", &["--target", "m2"]);
    wait_inbox_has(c.m(1), &[id], DEADLINE);
    assert!(!marker.exists(), "a file outside hooks/ was run");
}

#[test]
fn start_with_hub_runs_both_roles_in_one_process() {
    let mut a = common::Machine::new("a", "");
    // No server_url: the daemon must find its own hub, on the port it got.
    let mut cmd = common::mesync_cmd(&a.base);
    cmd.env("MESYNC_HOST_ID", "a")
        .env("MESYNC_POLL_INTERVAL", "1")
        .args(["start", "--with-hub", "--bind", "127.0.0.1:0"]);
    let mut both = common::Proc::spawn("with-hub-a", cmd);
    let addr = both.hub_addr().expect("the address of the hub");
    a.server_url = format!("http://{addr}");
    let health = format!("{}/healthz", a.server_url);
    wait_until("hub answers", DEADLINE, || {
        reqwest::blocking::get(&health).is_ok_and(|r| r.status().is_success())
    });
    let b = common::Machine::new("b", &a.server_url);
    let _db = b.start_daemon();
    let to_a = b.send("t", &["--target", "a"]);
    wait_inbox_has(&a, &[to_a], DEADLINE);
    let to_b = a.send("t", &["--target", "b"]);
    wait_inbox_has(&b, &[to_b], DEADLINE);
    assert!(both.terminate().success());
}

#[test]
fn a_token_protected_hub_delivers_to_daemons_with_the_token() {
    let hub = common::Hub::start_with(&[("MESYNC_TOKEN", "s3cret")]);
    let (a, b) = (hub.machine("a"), hub.machine("b"));
    let token = [("MESYNC_TOKEN", "s3cret")];
    let (_da, _db) = (start_daemon_with(&a, &token), start_daemon_with(&b, &token));
    let id = a.send("t", &["--target", "b"]);
    wait_inbox_has(&b, &[id], DEADLINE);
    wait_until("acked", DEADLINE, || {
        host_info(&hub, "b").is_some_and(|h| h["pending"] == 0)
    });
}

#[test]
fn a_slow_hook_neither_holds_up_receiving_nor_outlives_its_timeout() {
    let hub = common::Hub::start();
    let (a, b) = (hub.machine("a"), hub.machine("b"));
    let pids = b.base.join("slow.pids");
    let body = format!("echo $$ >> {}\nexec sleep 30\n", pids.display());
    install_script(&b.base.join("hooks").join("slow"), &body);
    let env = [
        ("MESYNC_HOOK_TIMEOUT", "2"),
        ("MESYNC_HOOK_CONCURRENCY", "1"),
    ];
    let _db = start_daemon_with(&b, &env);
    let _da = a.start_daemon();
    let ids: Vec<String> = (0..3).map(|_| a.send("slow", &["--target", "b"])).collect();
    // All three arrive while the first hook is still sleeping.
    wait_inbox_has(&b, &ids, DEADLINE);
    assert!(lines(&pids).len() <= 1, "receiving waited for hooks");
    // One at a time, each killed after its timeout.
    wait_until("three hooks started", DEADLINE, || lines(&pids).len() == 3);
    wait_until("every hook killed", DEADLINE, || {
        lines(&pids)
            .iter()
            .all(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
    });
}

#[test]
fn a_hook_still_queued_at_shutdown_runs_after_the_restart_and_none_runs_twice() {
    let hub = common::Hub::start();
    let (a, b) = (hub.machine("a"), hub.machine("b"));
    let started = b.base.join("started.log");
    // The first run blocks (and is killed at shutdown); later runs return at once.
    let gate = b.base.join("gate");
    let body = format!(
        "echo $MESYNC_MESSAGE_ID >> {log}\nif [ ! -e {gate} ]; then touch {gate}; exec sleep 30; fi\n",
        log = started.display(),
        gate = gate.display()
    );
    install_script(&b.base.join("hooks").join("queued.job"), &body);
    let env = [("MESYNC_HOOK_CONCURRENCY", "1")];
    let mut db = start_daemon_with(&b, &env);
    let _da = a.start_daemon();
    let first = a.send("queued.job", &["--target", "b"]);
    wait_until("first hook started", DEADLINE, || {
        lines(&started).len() == 1
    });
    let second = a.send("queued.job", &["--target", "b"]);
    wait_inbox_has(&b, &[first.clone(), second.clone()], DEADLINE);
    assert_eq!(
        lines(&started),
        std::slice::from_ref(&first),
        "the second hook must wait"
    );

    assert!(db.terminate().success());
    let _db = start_daemon_with(&b, &env);
    wait_until("owed hook ran after the restart", DEADLINE, || {
        lines(&started).len() == 2
    });
    assert_eq!(
        lines(&started),
        [first, second],
        "a hook ran twice or not at all"
    );
    assert_eq!(b.files("inbox").len(), 2);
}
