//! The hub's one-log model against a real `mesync serve`: a broadcast is
//! stored once however many hosts are registered, a backlog is served from
//! the segment files after a restart, compaction keeps what is still queued
//! when it rewrites and deletes old segments, and `kill -9` amid broadcasts,
//! targeted messages and acks loses nothing accepted and revives nothing acked.

mod common;
#[path = "common/hub_tools.rs"]
mod hub_tools;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{wait_until, Hub, DEADLINE};
use hub_tools::*;
use serde_json::{json, Value};

fn data_bytes(hub: &Hub) -> u64 {
    segments(hub)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

/// Every message of a host's queue, page by page.
fn whole_queue(hub: &Hub, host: &str) -> Vec<(u64, Value)> {
    let mut all: Vec<(u64, Value)> = Vec::new();
    loop {
        let after = all.last().map_or(0, |(s, _)| *s);
        let page = poll(hub, host, &format!("after={after}&limit=1000"));
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// Registers `n` hosts `h0..` with long-polls from a few keep-alive clients.
fn register_many(hub: &Hub, n: usize) {
    std::thread::scope(|s| {
        for t in 0..4 {
            let url = hub.url.clone();
            s.spawn(move || {
                let client = reqwest::blocking::Client::new();
                for i in (t..n).step_by(4) {
                    let resp = client
                        .get(format!("{url}/v1/hosts/h{i}/messages?wait=0"))
                        .send()
                        .unwrap();
                    assert_eq!(resp.status(), 200);
                }
            });
        }
    });
}

#[test]
fn a_broadcast_is_stored_once_however_many_hosts_are_registered() {
    let hub = Hub::start();
    register_many(&hub, 1000);
    assert_eq!(hosts(&hub).len(), 1000);
    let before = data_bytes(&hub);
    let m = message("h0", None, "t");
    send(&hub, &m);
    let written = data_bytes(&hub) - before;
    // One line holding the message once (about 300 bytes); one (host, seq)
    // pair per host would be over 10 KiB.
    assert!(written < 1024, "one broadcast wrote {written} bytes");
    assert_eq!(poll(&hub, "h999", "")[0].1, m);
    assert!(poll(&hub, "h0", "").is_empty());
    let pending: u64 = hosts(&hub)
        .iter()
        .map(|h| h["pending"].as_u64().unwrap())
        .sum();
    assert_eq!(pending, 999);
}

#[test]
fn a_backlog_is_served_from_the_files_after_a_restart() {
    let mut hub = Hub::start_with(&[("MESYNC_KEEPALIVE", "1")]);
    poll(&hub, "b", "");
    // About 6 MB of bodies: read back from the segments, not from memory.
    let filler = "x".repeat(2000);
    let mut sent = Vec::new();
    for _ in 0..30 {
        let batch: Vec<Value> = (0..100)
            .map(|i| {
                let mut m = message("a", if i % 3 == 0 { Some("b") } else { None }, "t");
                m["payload"] = json!({"filler": filler, "quote": "\" \\ ü"});
                m
            })
            .collect();
        post(&hub, &json!(batch));
        sent.extend(batch);
    }
    hub.proc.kill9();
    hub.restart(&[("MESYNC_KEEPALIVE", "1")]);
    let got = whole_queue(&hub, "b");
    assert_eq!(got.len(), sent.len());
    assert!(
        got.iter().zip(&sent).all(|((_, g), s)| g == s),
        "bodies differ"
    );
    let mut s = Sse::open(&hub, "/v1/hosts/b/stream", &[("Last-Event-ID", "2900")]);
    let tail = s.events(100);
    assert!(tail
        .iter()
        .zip(&sent[2900..])
        .all(|(e, m)| e.message() == *m));
}

#[test]
fn compaction_keeps_what_is_queued_when_it_rewrites_and_deletes_segments() {
    let env = [("MESYNC_DEDUPE_WINDOW", "1")];
    let mut hub = Hub::start_with(&env);
    poll(&hub, "b", "");
    let first: Vec<Value> = (0..50).map(|_| message("a", None, "t")).collect();
    post(&hub, &json!(first));
    let keep = [first[7].clone(), first[42].clone()];
    let acked: Vec<String> = first
        .iter()
        .filter(|m| !keep.contains(m))
        .map(id_of)
        .collect();
    assert_eq!(ack(&hub, "b", &acked), 48);
    assert!(hub.proc.terminate().success());
    hub.restart(&env);
    let second: Vec<Value> = (0..20).map(|_| message("a", Some("b"), "t")).collect();
    post(&hub, &json!(second));
    assert_eq!(
        ack(&hub, "b", &second.iter().map(id_of).collect::<Vec<_>>()),
        20
    );
    let written = Instant::now();
    assert!(hub.proc.terminate().success());
    let [one, two] = <[PathBuf; 2]>::try_from(segments(&hub)).unwrap();
    let full = std::fs::metadata(&one).unwrap().len();
    wait_until("the dedupe window to pass", DEADLINE, || {
        written.elapsed() > Duration::from_millis(1100)
    });
    hub.restart(&env);
    wait_until("old segments to be compacted", DEADLINE, || {
        !two.exists() && std::fs::metadata(&one).is_ok_and(|m| m.len() < full / 10)
    });
    assert_eq!(
        whole_queue(&hub, "b")
            .into_iter()
            .map(|(_, m)| m)
            .collect::<Vec<_>>(),
        keep
    );
    hub.proc.kill9();
    hub.restart(&env);
    let after = whole_queue(&hub, "b");
    assert_eq!(
        after.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>(),
        keep
    );
    assert_eq!(after.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [8, 43]);
    send(&hub, &message("a", None, "t"));
    assert_eq!(whole_queue(&hub, "b").last().unwrap().0, 71);
}

/// What the senders and the acker saw answered before the crash.
#[derive(Default)]
struct Seen {
    /// Accepted ids with their target (`None`: broadcast).
    accepted: Vec<(String, Option<String>)>,
    /// Ids b's acks were answered for.
    acked: HashSet<String>,
    /// Ids of the ack the crash may have cut off: durable or not, unanswered.
    in_flight: HashSet<String>,
}

#[test]
fn kill9_amid_broadcasts_targeted_messages_and_acks_loses_nothing_accepted() {
    let mut hub = Hub::start();
    for h in ["b", "c"] {
        poll(&hub, h, "");
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for n in 0..3 {
        let (url, seen, stop) = (hub.url.clone(), seen.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            let targets = [None, Some("c"), Some("late")];
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<Value> = (0..20)
                    .map(|i| message("a", targets[(i + n) % 3], "t"))
                    .collect();
                let Ok(resp) = client
                    .post(format!("{url}/v1/messages"))
                    .json(&batch)
                    .send()
                else {
                    break;
                };
                let Ok(v) = resp.json::<Value>() else { break };
                let mut seen = seen.lock().unwrap();
                for (r, m) in v["results"].as_array().unwrap().iter().zip(&batch) {
                    assert_eq!(r["status"], "accepted");
                    seen.accepted
                        .push((id_of(m), m["target"].as_str().map(String::from)));
                }
            }
        }));
    }
    let (url, acker_seen, acker_stop) = (hub.url.clone(), seen.clone(), stop.clone());
    workers.push(std::thread::spawn(move || {
        let client = reqwest::blocking::Client::new();
        while !acker_stop.load(Ordering::Relaxed) {
            let Ok(page) = client
                .get(format!("{url}/v1/hosts/b/messages?wait=1"))
                .send()
                .and_then(|r| r.json::<Value>())
            else {
                break;
            };
            let ids: Vec<String> = page["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| id_of(&e["message"]))
                .collect();
            acker_seen.lock().unwrap().in_flight = ids.iter().cloned().collect();
            let acked = client
                .post(format!("{url}/v1/hosts/b/ack"))
                .json(&json!({"ids": ids}))
                .send();
            if !acked.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            let mut seen = acker_seen.lock().unwrap();
            seen.in_flight.clear();
            seen.acked.extend(ids);
        }
    }));
    wait_until("traffic to flow", DEADLINE, || {
        seen.lock().unwrap().acked.len() > 200
    });
    hub.proc.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    hub.restart(&[]);
    let seen = seen.lock().unwrap();
    let queues: HashMap<&str, Vec<(u64, Value)>> = ["b", "c", "late"]
        .into_iter()
        .map(|h| (h, whole_queue(&hub, h)))
        .collect();
    for (host, q) in &queues {
        assert!(
            q.windows(2).all(|w| w[0].0 < w[1].0),
            "{host}: sequence numbers out of order"
        );
    }
    let ids = |h: &str| {
        queues[h]
            .iter()
            .map(|(_, m)| id_of(m))
            .collect::<HashSet<_>>()
    };
    let (b, c, late) = (ids("b"), ids("c"), ids("late"));
    for (id, target) in &seen.accepted {
        match target.as_deref() {
            None => {
                assert!(c.contains(id), "broadcast {id} lost for c");
                if seen.acked.contains(id) {
                    assert!(
                        !b.contains(id),
                        "broadcast {id} acked by b and queued again"
                    );
                } else if !seen.in_flight.contains(id) {
                    assert!(b.contains(id), "broadcast {id} lost for b");
                }
            }
            Some("c") => assert!(c.contains(id), "{id} lost for c"),
            _ => assert!(late.contains(id), "{id} lost for late"),
        }
    }
}
