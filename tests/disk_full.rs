//! A full disk, on a real 2 MiB tmpfs: a receiver that cannot write its
//! inbox acks nothing, holds on to what it read instead of reconnecting, and
//! delivers everything once space is back; a hub answers 503, never
//! `accepted`, and takes messages again by itself. Skipped (with a message)
//! where mounting a tmpfs is not allowed.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::daemon::*;
use common::{mesync_cmd, wait_until, Hub, Proc, DEADLINE};

/// A tmpfs mounted on a directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!(
                "skipped: cannot mount a tmpfs here (needs root); the disk-full cases were not run"
            );
        }
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` to the last byte.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    while f.write_all(&[0]).is_ok() {}
    path
}

fn metric(hub: &Hub, name: &str) -> u64 {
    let text = hub.get("/metrics").send().unwrap().text().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_receiver_with_a_full_disk_backs_off_and_delivers_all_once_space_is_back() {
    let hub = Hub::start();
    let (a, b) = (hub.machine("a"), hub.machine("b"));
    let Some(_fs) = Tmpfs::mount(&b.base) else {
        return;
    };
    let _da = a.start_daemon();
    let mut db = b.start_daemon();
    hub.wait_streaming("b");
    let filler = fill(&b.base);

    let ids = fill_outbox(&a, "t", Some("b"), 20);
    wait_until("b to report its full disk", DEADLINE, || {
        db.log().contains("cannot write to inbox/")
    });
    wait_until("all 20 queued for b at the hub", DEADLINE, || {
        hub.host("b").is_some_and(|h| h["pending"] == 20)
    });
    assert!(b.files("inbox").is_empty());

    std::fs::remove_file(filler).unwrap();
    wait_inbox_has(&b, &ids, DEADLINE);
    wait_until("b acked all", DEADLINE, || {
        hub.host("b").is_some_and(|h| h["pending"] == 0)
    });
    assert_exactly_once(&b, &ids);
    let log = db.log();
    assert_eq!(
        log.matches("stream connected").count(),
        1,
        "no reconnects: {log}"
    );
    let sent = metric(&hub, "mesync_messages_delivered_total");
    assert!(sent <= 40, "the hub re-sent {sent} times for 20 messages");
    assert!(db.terminate().success());
}

#[test]
fn a_hub_with_a_full_disk_answers_503_and_recovers_by_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let Some(_fs) = Tmpfs::mount(&data) else {
        return;
    };
    let mut cmd = mesync_cmd(tmp.path());
    cmd.env("MESYNC_HOST_ID", "hub")
        .env("MESYNC_DATA_DIR", &data)
        .args(["serve", "--bind", "127.0.0.1:0"]);
    let mut proc = Proc::spawn("hub", cmd);
    let url = format!("http://{}", proc.hub_addr().expect("hub binds"));
    let http = reqwest::blocking::Client::new();
    let poll = || -> serde_json::Value {
        http.get(format!("{url}/v1/hosts/b/messages?wait=0"))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    poll();
    let filler = fill(&data);
    // Larger than the room left in the segment's last page, which a full
    // tmpfs still has.
    let mut m = message_json("t", "a", Some("b"));
    m["payload"] = serde_json::json!({ "pad": "x".repeat(20_000) });
    let post = || {
        http.post(format!("{url}/v1/messages"))
            .json(&m)
            .send()
            .unwrap()
    };
    let full = post();
    assert_eq!(full.status(), 503, "{}", full.text().unwrap_or_default());

    std::fs::remove_file(filler).unwrap();
    let again = post();
    assert_eq!(again.status(), 200);
    let body: serde_json::Value = again.json().unwrap();
    assert_eq!(body["results"][0]["status"], "accepted", "{body}");
    let got = poll();
    assert_eq!(got["messages"].as_array().unwrap().len(), 1, "{got}");
    assert!(proc.terminate().success());
}
