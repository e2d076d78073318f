//! The hub's store against damage on disk, with a real `mesync serve`: a
//! changed byte is caught by its checksum, a missing segment or a torn line
//! in an older segment stops the start (and `--repair` goes on, saying what
//! was lost), and sequence numbers never go backwards.

mod common;
#[path = "common/hub_tools.rs"]
mod hub_tools;

use common::{mesync_cmd, Hub, Proc};
use hub_tools::*;
use serde_json::json;

/// `mesync serve` on the hub's data dir with `args`, run to its exit.
fn serve_fails(hub: &Hub, args: &[&str]) -> String {
    let out = mesync_cmd(&hub.base)
        .env("MESYNC_HOST_ID", "hub")
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the hub started");
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Restarts the hub (stopped) with `--repair`, on a new port.
fn restart_repairing(hub: &mut Hub) {
    let mut cmd = mesync_cmd(&hub.base);
    cmd.env("MESYNC_HOST_ID", "hub")
        .args(["serve", "--bind", "127.0.0.1:0", "--repair"]);
    hub.proc = Proc::spawn("hub", cmd);
    let addr = hub.proc.hub_addr().expect("the repairing hub binds");
    hub.url = format!("http://{addr}");
    hub.port = addr.port();
    hub.wait_healthy();
}

/// Three segments: each start begins one; `per` messages to b in each.
fn three_segments(per: usize) -> (Hub, Vec<String>) {
    let mut hub = Hub::start();
    poll(&hub, "b", "");
    let mut ids = Vec::new();
    for round in 0..3 {
        for _ in 0..per {
            let m = message("a", Some("b"), "t");
            send(&hub, &m);
            ids.push(id_of(&m));
        }
        assert!(hub.proc.terminate().success());
        if round < 2 {
            hub.restart(&[]);
        }
    }
    (hub, ids)
}

fn metric(hub: &Hub, name: &str) -> u64 {
    let text = hub.get("/metrics").send().unwrap().text().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[test]
fn a_record_changed_on_disk_is_not_replayed_and_is_counted() {
    let mut hub = Hub::start();
    poll(&hub, "b", "");
    let (m1, m2) = (message("a", None, "t"), message("a", None, "t"));
    post(&hub, &json!([m1, m2]));
    hub.proc.kill9();
    let seg = segments(&hub).pop().unwrap();
    let text = std::fs::read_to_string(&seg).unwrap();
    // Still valid JSON, still a record: only the checksum can tell.
    let changed = text.replacen(r#""payload":{"n":1}"#, r#""payload":{"n":2}"#, 1);
    assert_ne!(changed, text);
    std::fs::write(&seg, changed).unwrap();
    hub.restart(&[]);
    assert_eq!(poll(&hub, "b", ""), [(2, m2)]);
    assert_eq!(metric(&hub, "mesync_store_corrupt_records_total"), 1);
    let log = hub.proc.log();
    assert!(
        log.contains("corrupt record not replayed") && log.contains("segment-0000000001.jsonl"),
        "{log}"
    );
    assert!(
        log.contains("line=4") && log.contains(r#""payload":{"n":2}"#),
        "{log}"
    );
}

#[test]
fn a_missing_segment_stops_the_start_and_repair_says_what_was_lost() {
    let (mut hub, ids) = three_segments(3);
    let segs = segments(&hub);
    assert_eq!(segs.len(), 3);
    std::fs::remove_file(&segs[1]).unwrap();
    let err = serve_fails(&hub, &[]);
    assert!(
        err.contains("segment-0000000002.jsonl") && err.contains("--repair"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    restart_repairing(&mut hub);
    let log = hub.proc.log();
    assert!(
        log.contains("segment missing") && log.contains("first_seq=4"),
        "{log}"
    );
    let left: Vec<String> = poll(&hub, "b", "").iter().map(|(_, m)| id_of(m)).collect();
    assert_eq!(left, [&ids[..3], &ids[6..]].concat());
}

#[test]
fn a_torn_line_in_an_older_segment_stops_the_start() {
    let (mut hub, ids) = three_segments(1);
    let first = segments(&hub)[0].clone();
    let mut text = std::fs::read(&first).unwrap();
    text.truncate(text.len() - 10);
    std::fs::write(&first, &text).unwrap();
    let err = serve_fails(&hub, &[]);
    assert!(
        err.contains("segment-0000000001.jsonl") && err.contains("incomplete"),
        "{err}"
    );

    // The torn line is a host's cursor written at shutdown: nothing is lost.
    restart_repairing(&mut hub);
    assert!(hub
        .proc
        .log()
        .contains("cutting off an incomplete last line"));
    let left: Vec<String> = poll(&hub, "b", "").iter().map(|(_, m)| id_of(m)).collect();
    assert_eq!(left, ids);
}

#[test]
fn sequence_numbers_never_go_backwards_after_records_are_lost() {
    let mut hub = Hub::start();
    poll(&hub, "b", "");
    for _ in 0..5 {
        send(&hub, &message("a", Some("b"), "t"));
    }
    let seen = poll(&hub, "b", "").last().unwrap().0;
    assert_eq!(seen, 5);
    hub.proc.kill9();
    // The newest segment loses its last records, as a bad disk could.
    let seg = segments(&hub).pop().unwrap();
    let text = std::fs::read_to_string(&seg).unwrap();
    let kept: Vec<&str> = text.lines().take(text.lines().count() - 3).collect();
    std::fs::write(&seg, kept.join("\n") + "\n").unwrap();
    hub.restart(&[]);
    let m = message("a", Some("b"), "t");
    send(&hub, &m);
    let after = poll(&hub, "b", &format!("after={seen}"));
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(after[0].0 > seen, "{after:?}");
    assert_eq!(after[0].1, m);
}

#[test]
fn start_with_hub_refuses_a_missing_segment_too_and_takes_repair() {
    let (hub, _) = three_segments(1);
    let segs = segments(&hub);
    std::fs::remove_file(&segs[1]).unwrap();
    let start = |extra: &[&str]| {
        let mut cmd = mesync_cmd(&hub.base);
        cmd.env("MESYNC_HOST_ID", "hub")
            .args(["start", "--with-hub", "--bind", "127.0.0.1:0"])
            .args(extra);
        Proc::spawn("start-with-hub", cmd)
    };
    let mut refused = start(&[]);
    let status = refused.wait_exit(common::DEADLINE);
    assert_eq!(status.code(), Some(1), "{}", refused.log());
    let log = refused.log();
    assert!(
        log.contains("segment-0000000002.jsonl") && log.contains("start --with-hub --repair"),
        "{log}"
    );

    let mut repairing = start(&["--repair"]);
    let addr = repairing.hub_addr().expect("the repairing hub binds");
    common::wait_until("the repairing hub to answer", common::DEADLINE, || {
        reqwest::blocking::get(format!("http://{addr}/healthz"))
            .is_ok_and(|r| r.status().is_success())
    });
    assert!(
        repairing.log().contains("segment missing"),
        "{}",
        repairing.log()
    );
    assert!(repairing.terminate().success());
}
