//! The command line around a running service: finding the hub the daemon
//! uses, warnings about unknown targets, listing without side effects,
//! commands that refuse to suggest harm, completions and the man page.

mod common;

use std::process::Output;

use common::{Hub, Machine, Proc, NO_HUB};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn status_hosts_and_watch_in_another_shell_find_the_hub_the_daemon_uses() {
    let m = Machine::new("m1", NO_HUB);
    // The daemon's own hub, on a port chosen at start; no server_url set.
    let mut cmd = common::mesync_cmd(&m.base);
    cmd.env("MESYNC_HOST_ID", "m1")
        .args(["start", "--with-hub", "--bind", "127.0.0.1:0"]);
    let mut daemon = Proc::spawn("daemon-with-hub", cmd);
    let addr = daemon.hub_addr().expect("the hub binds");
    let url = format!("http://{addr}");
    // Another shell: the same base dir, no MESYNC_SERVER_URL.
    let shell = |args: &[&str]| {
        let mut cmd = common::mesync_cmd(&m.base);
        cmd.env("MESYNC_HOST_ID", "m1").args(args);
        cmd.output().unwrap()
    };
    common::wait_until("m1 registered at its hub", common::DEADLINE, || {
        stdout(&shell(&["hosts"])).contains("m1")
    });
    let status = stdout(&shell(&["status"]));
    assert!(status.contains(&format!("reachable at {url}")), "{status}");
    assert!(status.contains("running daemon"), "{status}");
    let mut cmd = common::mesync_cmd(&m.base);
    cmd.env("MESYNC_HOST_ID", "m1").arg("watch");
    let watch = Proc::spawn("watch", cmd);
    common::wait_until("watch to follow the daemon's hub", common::DEADLINE, || {
        watch.log().contains(&format!("watching m1 at {url}"))
    });
    // A server_url that was set still wins.
    let mut cmd = common::mesync_cmd(&m.base);
    cmd.env("MESYNC_HOST_ID", "m1")
        .env("MESYNC_SERVER_URL", NO_HUB)
        .arg("status");
    let status = stdout(&cmd.output().unwrap());
    assert!(
        status.contains(&format!("not reachable at {NO_HUB}")),
        "{status}"
    );

    assert!(daemon.terminate().success(), "{}", daemon.log());
    assert!(!m.base.join("daemon.hub").exists(), "removed at stop");
}

#[test]
fn send_to_a_host_the_hub_does_not_know_warns_and_still_queues() {
    let hub = Hub::start();
    let m = hub.machine("m1");
    let out = m.run(&["send", "x.y", "--target", "nobody-here"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let warning = stderr(&out);
    assert!(
        warning.contains("warning") && warning.contains("nobody-here"),
        "{warning}"
    );
    assert_eq!(m.files("outbox").len(), 1);

    // A host the hub knows: no warning.
    let known = hub.machine("known");
    let _ = known.run(&["start", "--once"]);
    let out = m.run(&["send", "x.y", "--target", "known"]);
    assert!(
        out.status.success() && stderr(&out).is_empty(),
        "{}",
        stderr(&out)
    );

    // No hub: no warning (and no wait worth the name).
    let offline = Machine::new("m2", NO_HUB);
    let out = offline.run(&["send", "x.y", "--target", "nobody-here"]);
    assert!(
        out.status.success() && stderr(&out).is_empty(),
        "{}",
        stderr(&out)
    );
}

#[test]
fn list_creates_nothing_and_marks_a_drafts_id_as_not_assigned() {
    let m = Machine::new("m1", NO_HUB);
    let out = m.run(&["list", "outbox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!m.base.exists(), "list created the base dir");

    std::fs::create_dir_all(m.dir("outbox")).unwrap();
    std::fs::write(
        m.dir("outbox").join("draft.json"),
        r#"{"type":"hand.made"}"#,
    )
    .unwrap();
    let table = stdout(&m.run(&["list", "outbox"]));
    assert!(
        table.contains("(not assigned yet)") && table.contains("hand.made"),
        "{table}"
    );
    assert_eq!(
        table,
        stdout(&m.run(&["list", "outbox"])),
        "the same on every call"
    );
    let line: serde_json::Value =
        serde_json::from_str(stdout(&m.run(&["list", "outbox", "--json"])).trim()).unwrap();
    assert_eq!(line["id"], serde_json::Value::Null);
    assert_eq!(line["type"], "hand.made");
    assert_eq!(line["source"], "m1");
    assert!(!m.dir("inbox").exists(), "list created a queue");
}

#[test]
fn flush_outbox_is_refused_without_suggesting_another_queue() {
    let m = Machine::new("m1", NO_HUB);
    m.send("x.y", &[]);
    let out = m.run(&["flush", "outbox"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("waiting to be sent"), "{err}");
    assert!(
        !err.contains("similar") && !err.contains("'inbox'"),
        "{err}"
    );
    assert_eq!(m.files("outbox").len(), 1);
}

#[test]
fn completions_and_man_page_describe_every_command() {
    // No base dir, no HOME: these need no settings.
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(common::bin());
        cmd.env_clear().args(args);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef mesync"),
        ("fish", "complete -c mesync"),
    ] {
        let script = run(&["completions", shell]);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("with-hub"), "{shell} lacks start's flags");
    }
    let man = run(&["man"]);
    assert!(
        man.starts_with(".ie") || man.contains(".TH mesync 1"),
        "{man}"
    );
    for sub in ["serve", "start", "send", "list", "flush", "status", "watch"] {
        assert!(
            man.contains(&format!(".SS \"mesync {sub}\"")),
            "man lacks {sub}"
        );
    }
}

#[test]
fn start_help_shows_the_bind_default() {
    let out = std::process::Command::new(common::bin())
        .args(["start", "--help"])
        .output()
        .unwrap();
    let help = stdout(&out);
    assert!(
        help.contains("--bind <ADDR>") && help.contains("[default: 0.0.0.0:8080]"),
        "{help}"
    );
    assert!(help.contains("--data-dir <DIR>"), "{help}");
}
