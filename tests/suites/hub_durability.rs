//! The hub's promises across crashes and restarts, against a real
//! `mesync serve`: nothing accepted is lost by `kill -9`, nothing acked comes
//! back, hosts and sequence numbers and the dedupe window survive, a torn
//! last line is ignored, old segments are compacted, SIGTERM exits cleanly.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{mesync_cmd, wait_until, Hub, DEADLINE};
use crate::hub_tools::*;
use serde_json::{json, Value};

#[test]
fn kill9_keeps_unacked_forgets_acked_and_still_dedupes() {
    let mut hub = Hub::start();
    poll(&hub, "b", "");
    poll(&hub, "c", "");
    let (m1, m2) = (message("a", None, "t"), message("a", None, "t"));
    post(&hub, &json!([m1, m2]));
    let m3 = message("a", Some("late"), "t");
    send(&hub, &m3);
    assert_eq!(ack(&hub, "b", &[id_of(&m1)]), 1);
    // last_seen is kept in memory only; the rest must survive.
    let before = fleet(&hub);

    hub.proc.kill9();
    hub.restart(&[]);

    assert_eq!(fleet(&hub), before);
    assert_eq!(poll(&hub, "b", ""), [(2, m2.clone())]);
    assert_eq!(poll(&hub, "c", ""), [(1, m1.clone()), (2, m2.clone())]);
    // Sequence numbers are the log's: m3 is the third message accepted.
    assert_eq!(poll(&hub, "late", ""), [(3, m3)]);
    assert_eq!(post(&hub, &m1)[0]["status"], "duplicate");
    send(&hub, &message("a", None, "t"));
    let seqs: Vec<u64> = poll(&hub, "b", "").iter().map(|(s, _)| *s).collect();
    // After a crash, numbering resumes above the store's high-water mark:
    // never a number issued before, perhaps with a gap.
    assert_eq!(seqs.len(), 2);
    assert!(seqs[0] == 2 && seqs[1] > 3, "{seqs:?}");
}

#[test]
fn kill9_mid_burst_loses_no_accepted_message() {
    let mut hub = Hub::start();
    poll(&hub, "b", "");
    let url = hub.url.clone();
    // Answers the clients have read: what the kill must come after.
    let answered = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let (url, answered) = (url.clone(), answered.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                let mut accepted = Vec::new();
                for _ in 0..40 {
                    let batch: Vec<Value> = (0..50).map(|_| message("a", None, "t")).collect();
                    let Ok(resp) = client
                        .post(format!("{url}/v1/messages"))
                        .json(&batch)
                        .send()
                    else {
                        break;
                    };
                    let Ok(v) = resp.json::<Value>() else { break };
                    for r in v["results"].as_array().unwrap() {
                        assert_eq!(r["status"], "accepted");
                        accepted.push(r["id"].as_str().unwrap().to_string());
                    }
                    answered.fetch_add(1, Ordering::SeqCst);
                }
                accepted
            })
        })
        .collect();
    wait_until("a client to read an accepted batch", DEADLINE, || {
        answered.load(Ordering::SeqCst) > 0
    });
    hub.proc.kill9();
    let accepted: Vec<String> = senders
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(!accepted.is_empty());
    hub.restart(&[]);
    let mut queued = HashSet::new();
    let mut after = 0;
    loop {
        let page = poll(&hub, "b", &format!("after={after}&limit=1000"));
        let Some((last, _)) = page.last() else { break };
        after = *last;
        queued.extend(page.iter().map(|(_, m)| id_of(m)));
    }
    let lost: Vec<_> = accepted.iter().filter(|id| !queued.contains(*id)).collect();
    assert!(lost.is_empty(), "{} accepted messages lost", lost.len());
}

#[test]
fn torn_last_line_is_ignored_after_a_crash() {
    let mut hub = Hub::start();
    if hub.on_nats() {
        return; // about the file store's own files
    }
    poll(&hub, "b", "");
    let m = message("a", None, "t");
    send(&hub, &m);
    hub.proc.kill9();
    let last = segments(&hub).pop().unwrap();
    let mut text = std::fs::read(&last).unwrap();
    text.extend_from_slice(br#"{"op":"msg","id":"0193a0a4-7c1e-7d7e-9a2b"#);
    std::fs::write(&last, &text).unwrap();
    hub.restart(&[]);
    assert_eq!(poll(&hub, "b", ""), [(1, m)]);
    assert!(std::fs::read(&last).unwrap().ends_with(b"\n"));
}

#[test]
fn segment_files_are_json_lines_anyone_can_read() {
    let hub = Hub::start();
    if hub.on_nats() {
        return; // about the file store's own files
    }
    poll(&hub, "b", "");
    let m = message("a", None, "t");
    send(&hub, &m);
    ack(&hub, "b", &[id_of(&m)]);
    let text = std::fs::read_to_string(&segments(&hub)[0]).unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ops: Vec<&str> = records.iter().map(|r| r["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["log", "register", "register", "msg", "ack"]);
    assert_eq!(records[3]["msg"], m);
    assert_eq!(records[3]["seq"], 1);
    // A broadcast: stored once, for every registered host but its sender.
    assert_eq!(records[3]["to"], Value::Null);
    // Each record ends in its checksum; without it, the record itself.
    let mut ack = records[4].clone();
    assert!(ack.as_object_mut().unwrap().remove("crc").unwrap().is_u64());
    assert_eq!(ack, json!({"op": "ack", "host": "b", "seqs": [1]}));
}

#[test]
fn old_segments_are_compacted_without_losing_state() {
    let env = [("MESYNC_DEDUPE_WINDOW", "1")];
    let mut hub = Hub::start_with(&env);
    if hub.on_nats() {
        return; // about the file store's own files
    }
    poll(&hub, "b", "");
    let (m1, m2) = (message("a", None, "t"), message("a", None, "t"));
    post(&hub, &json!([m1, m2]));
    ack(&hub, "b", &[id_of(&m1)]);
    let posted = Instant::now();
    assert!(hub.proc.terminate().success());
    let first = segments(&hub)[0].clone();
    // Compaction waits until the ids in a segment are older than the window.
    wait_until("the dedupe window to pass", DEADLINE, || {
        posted.elapsed() > Duration::from_millis(1100)
    });
    hub.restart(&env);
    // What is left of it is the one message still queued.
    let acked = id_of(&m1);
    wait_until("the old segment to be compacted", DEADLINE, || {
        std::fs::read_to_string(&first).is_ok_and(|t| !t.contains(&acked) && t.lines().count() == 2)
    });
    assert_eq!(poll(&hub, "b", ""), [(2, m2.clone())]);
    hub.proc.kill9();
    hub.restart(&env);
    assert_eq!(poll(&hub, "b", ""), [(2, m2)]);
    send(&hub, &message("a", None, "t"));
    assert_eq!(poll(&hub, "b", "after=2")[0].0, 3);
    assert!(host_info(&hub, "a").is_some());
}

#[test]
fn sigterm_with_an_open_stream_exits_zero() {
    let mut hub = Hub::start_with(&[("MESYNC_KEEPALIVE", "1")]);
    let mut s = Sse::open(&hub, "/v1/hosts/b/stream", &[]);
    send(&hub, &message("a", None, "t"));
    s.events(1);
    assert!(hub.proc.terminate().success());
    assert!(s.next_event(DEADLINE).is_none());
}

#[test]
fn a_second_hub_on_the_same_data_dir_is_refused() {
    let hub = Hub::start();
    if hub.on_nats() {
        return; // about the file store's own files
    }
    let out = mesync_cmd(&hub.base)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another mesync hub"), "{err}");
}

#[test]
fn last_seen_survives_a_clean_restart() {
    let mut hub = Hub::start();
    poll(&hub, "b", "");
    let registered = Instant::now();
    wait_until("time to pass", DEADLINE, || {
        registered.elapsed() > Duration::from_millis(20)
    });
    poll(&hub, "b", "");
    let before = host_info(&hub, "b").unwrap();
    assert_ne!(before["last_seen"], before["registered_at"]);
    assert!(hub.proc.terminate().success());
    hub.restart(&[]);
    let after = host_info(&hub, "b").unwrap();
    assert_eq!(after["last_seen"], before["last_seen"]);
    assert_eq!(after["registered_at"], before["registered_at"]);
}
