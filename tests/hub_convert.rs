//! A data dir written in the first segment format (fixtures/hub-data-v1,
//! made by `mesync serve` 0.1.0; its README says what happened in it) loads
//! in the current hub: every host's queue, registrations and deletions, the
//! dedupe window, and sequence numbers that never go backwards for any
//! host, so a daemon resuming with an old Last-Event-ID skips nothing.

mod common;
#[path = "common/hub_tools.rs"]
mod hub_tools;

use std::collections::HashMap;
use std::path::Path;

use common::Hub;
use hub_tools::*;
use serde_json::{json, Value};

/// The fixture was written long ago: keep everything it holds (100 years).
const ENV: [(&str, &str); 2] = [
    ("MESYNC_RETENTION", "3153600000"),
    ("MESYNC_DEDUPE_WINDOW", "3153600000"),
];

fn id(n: u32) -> String {
    format!("01900000-0000-7000-8000-00000000000{n}")
}

/// A hub started on a copy of the fixture.
fn converted_hub() -> Hub {
    let mut hub = Hub::start_with(&ENV);
    hub.proc.kill9();
    let dir = hub.data_dir();
    for entry in std::fs::read_dir(&dir).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    for entry in std::fs::read_dir(fixture()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    hub.restart(&ENV);
    hub
}

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hub-data-v1")
}

/// Every message the fixture holds, by id, as it was accepted.
fn original_messages() -> HashMap<String, Value> {
    let mut all = HashMap::new();
    for entry in std::fs::read_dir(fixture()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let rec: Value = serde_json::from_str(line).unwrap();
            if rec["op"] == "msg" {
                all.insert(rec["id"].as_str().unwrap().to_string(), rec["msg"].clone());
            }
        }
    }
    all
}

/// (id, seq) of a host's queue, checking each body against the original.
fn queue(hub: &Hub, host: &str, originals: &HashMap<String, Value>) -> Vec<(String, u64)> {
    poll(hub, host, "")
        .into_iter()
        .map(|(seq, m)| {
            let id = id_of(&m);
            assert_eq!(m, originals[&id], "{host}'s copy of {id} differs");
            (id, seq)
        })
        .collect()
}

#[test]
fn a_first_format_data_dir_converts_without_losing_anything() {
    let mut hub = converted_hub();
    let originals = original_messages();
    let pending = pending_by_host(&hub);
    let names = |v: &[(&str, u64)]| {
        v.iter()
            .map(|(h, n)| (h.to_string(), *n))
            .collect::<Vec<_>>()
    };
    // ghost never registered; it is listed for what is queued for it.
    let listed = [("a", 0), ("b", 2), ("c", 3), ("e", 1), ("ghost", 1)];
    assert_eq!(pending, names(&listed));
    let expected = [
        ("b", vec![3, 5], 4),
        ("c", vec![1, 4, 5], 5),
        ("e", vec![5], 2),
        ("ghost", vec![2], 1),
        ("a", vec![], 0),
    ];
    let mut before = HashMap::new();
    for (host, ids, old_last_seq) in expected {
        let q = queue(&hub, host, &originals);
        assert_eq!(
            q.iter().map(|(i, _)| i.clone()).collect::<Vec<_>>(),
            ids.iter().map(|n| id(*n)).collect::<Vec<_>>(),
            "{host}"
        );
        // Never backwards: every queued message is numbered after anything
        // the old files issued to this host.
        assert!(
            q.iter().all(|(_, seq)| *seq > old_last_seq),
            "{host}: {q:?}"
        );
        before.insert(host, q);
    }
    // A daemon of c that had seen everything up to m5 (its old seq 4) resumes.
    let mut s = Sse::open(&hub, "/v1/hosts/c/stream", &[("Last-Event-ID", "4")]);
    let resumed: Vec<String> = s.events(3).iter().map(|e| id_of(&e.message())).collect();
    assert_eq!(resumed, [id(1), id(4), id(5)]);
    drop(s);
    for n in 1..=6 {
        let again = originals[&id(n)].clone();
        assert_eq!(post(&hub, &again)[0]["status"], "duplicate", "m{n}");
    }
    // The deleted host stays deleted: a broadcast skips it.
    let fresh = message("a", None, "t");
    send(&hub, &fresh);
    assert!(poll(&hub, "d", "").is_empty());
    let b = poll(&hub, "b", "");
    assert!(b.last().unwrap().0 > before["b"].last().unwrap().1);
    assert_eq!(b.last().unwrap().1, fresh);

    assert!(hub.proc.terminate().success());
    hub.restart(&ENV);
    let fresh_id = id_of(&fresh);
    let mut originals = originals;
    originals.insert(fresh_id.clone(), fresh);
    for host in ["c", "e", "ghost"] {
        let mut q = queue(&hub, host, &originals);
        // ghost registered (by polling) before the fresh broadcast: it has it too.
        assert_eq!(q.pop().map(|(i, _)| i).as_ref(), Some(&fresh_id), "{host}");
        assert_eq!(q, before[host], "{host} after a restart");
    }
    for entry in std::fs::read_dir(hub.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.starts_with(r#"{"op":"log""#),
                "{} is not converted",
                path.display()
            );
        }
    }
    assert_eq!(
        post(&hub, &json!([originals[&id(6)]]))[0]["status"],
        "duplicate"
    );
}
