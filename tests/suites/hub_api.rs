//! The hub's HTTP API against a real `mesync serve`: posting, fan-out,
//! long-poll, ack, hosts, metrics, auth and every kind of bad input.

use std::time::Duration;

use crate::common::{wait_until, Hub, DEADLINE};
use crate::hub_tools::*;
use serde_json::{json, Value};

#[test]
fn batch_results_come_in_input_order_with_reasons() {
    let hub = Hub::start_with(&[("MESYNC_MAX_MESSAGE_BYTES", "2048")]);
    let ok = message("m1", None, "task.event");
    let mut bad_type = message("m1", None, "x");
    bad_type["type"] = json!("../evil");
    let mut too_big = message("m1", None, "big");
    too_big["payload"] = json!("x".repeat(4000));
    let results = post(
        &hub,
        &json!([ok, ok, bad_type, {"type": "t", "colour": "red"}, 42, too_big]),
    );
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "accepted",
            "duplicate",
            "rejected",
            "rejected",
            "rejected",
            "rejected"
        ]
    );
    assert_eq!(results[0]["id"], ok["id"]);
    assert_eq!(results[1]["id"], ok["id"]);
    assert_eq!(results[2]["id"], bad_type["id"]);
    assert!(
        results[2]["error"].as_str().unwrap().contains("type"),
        "{results:?}"
    );
    assert_eq!(results[3]["id"], Value::Null);
    assert!(results[3]["error"].as_str().unwrap().contains("colour"));
    assert_eq!(results[4]["id"], Value::Null);
    assert!(results[5]["error"]
        .as_str()
        .unwrap()
        .contains("max_message_bytes"));
    assert!(results[0].get("error").is_none());
}

#[test]
fn single_object_answers_like_a_batch_of_one_and_dedupes_across_requests() {
    let hub = Hub::start();
    let m = message("m1", None, "t");
    let first = post(&hub, &m);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["status"], "accepted");
    assert_eq!(post(&hub, &m)[0]["status"], "duplicate");
    assert_eq!(post(&hub, &json!([m]))[0]["status"], "duplicate");
}

#[test]
fn broadcast_reaches_every_registered_host_but_the_sender() {
    let hub = Hub::start();
    for h in ["a", "b", "c"] {
        assert!(poll(&hub, h, "").is_empty());
    }
    let m = message("a", None, "t");
    send(&hub, &m);
    assert_eq!(poll(&hub, "b", "")[0].1, m);
    assert_eq!(poll(&hub, "c", "").len(), 1);
    assert!(poll(&hub, "a", "").is_empty());
    let pending = pending_by_host(&hub);
    assert_eq!(pending, [("a".into(), 0), ("b".into(), 1), ("c".into(), 1)]);
}

#[test]
fn targeted_message_waits_for_a_host_that_never_registered() {
    let hub = Hub::start();
    poll(&hub, "bystander", "");
    let m = message("sender", Some("late"), "t");
    send(&hub, &m);
    // Posting registers the sender; the target is not registered yet, but
    // listed with what waits for it.
    let listed: Vec<(Value, bool)> = hosts(&hub)
        .iter()
        .map(|h| (h["id"].clone(), h["registered_at"].is_null()))
        .collect();
    let expected = [("bystander", false), ("late", true), ("sender", false)];
    assert_eq!(listed, expected.map(|(h, never)| (json!(h), never)));
    assert_eq!(host_info(&hub, "late").unwrap()["last_seen"], Value::Null);
    assert!(poll(&hub, "bystander", "").is_empty());
    let got = poll(&hub, "late", "");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, m);
    let late = host_info(&hub, "late").unwrap();
    assert_eq!(late["pending"], 1);
    assert_eq!(late["streams"], 0);
    for field in ["registered_at", "last_seen"] {
        let t = late[field].as_str().unwrap();
        assert!(t.contains('T') && t.ends_with('Z'), "{field}: {t}");
    }
}

#[test]
fn long_poll_honours_after_limit_and_a_cursor_beyond_the_end() {
    let hub = Hub::start();
    poll(&hub, "b", "");
    let sent: Vec<Value> = (0..5).map(|_| message("a", None, "t")).collect();
    post(&hub, &json!(sent));
    let all = poll(&hub, "b", "");
    let seqs: Vec<u64> = all.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(all.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>(), sent);
    let page: Vec<u64> = poll(&hub, "b", "after=2&limit=2")
        .iter()
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(page, [3, 4]);
    assert!(poll(&hub, "b", "after=5").is_empty());
    // A cursor the hub never issued replays the whole backlog.
    assert_eq!(poll(&hub, "b", "after=99").len(), 5);
}

#[test]
fn long_poll_wait_returns_when_a_message_arrives() {
    let hub = Hub::start();
    poll(&hub, "b", "");
    let url = format!("{}/v1/hosts/b/messages?wait=30", hub.url);
    let waiter = std::thread::spawn(move || {
        let v: Value = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap()
            .get(url)
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["messages"].as_array().unwrap().clone()
    });
    let m = message("a", None, "t");
    send(&hub, &m);
    let got = waiter.join().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["message"], m);
}

#[test]
fn acked_messages_are_not_delivered_again() {
    let hub = Hub::start();
    poll(&hub, "b", "");
    let (m1, m2) = (message("a", None, "t"), message("a", None, "t"));
    post(&hub, &json!([m1, m2]));
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(ack(&hub, "b", &[id_of(&m1), unknown.clone()]), 1);
    assert_eq!(ack(&hub, "b", &[id_of(&m1)]), 0);
    assert_eq!(ack(&hub, "nobody", &[unknown]), 0);
    let left = poll(&hub, "b", "");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0], (2, m2));
    assert_eq!(host_info(&hub, "b").unwrap()["pending"], 1);
}

#[test]
fn deleting_a_host_drops_its_queue_and_never_reuses_sequence_numbers() {
    let hub = Hub::start();
    poll(&hub, "b", "");
    post(
        &hub,
        &json!([message("a", None, "t"), message("a", None, "t")]),
    );
    let resp = hub.delete("/v1/hosts/b").send().unwrap();
    assert_eq!(resp.status(), 204);
    assert!(host_info(&hub, "b").is_none());
    expect_error(hub.delete("/v1/hosts/b").send().unwrap(), 404);
    // Not registered any more: a broadcast skips it.
    send(&hub, &message("a", None, "t"));
    assert!(poll(&hub, "b", "").is_empty());
    send(&hub, &message("a", None, "t"));
    let got = poll(&hub, "b", "");
    assert_eq!(got.len(), 1);
    assert!(got[0].0 > 2, "sequence reused: {got:?}");
}

#[test]
fn token_guards_everything_but_healthz_and_the_dashboard_page() {
    let hub = Hub::start_with(&[("MESYNC_TOKEN", "s3cret")]);
    let open = reqwest::blocking::Client::new();
    let get = |path: &str| open.get(format!("{}{path}", hub.url)).send().unwrap();
    let health: Value = get("/healthz").json().unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    for path in [
        "/v1/hosts",
        "/metrics",
        "/v1/hosts/a/messages",
        "/v1/hosts?token=s3cret",
    ] {
        let e = expect_error(get(path), 401);
        assert!(e.contains("token"), "{e}");
    }
    let wrong = open
        .get(format!("{}/v1/hosts", hub.url))
        .bearer_auth("s3cres")
        .send()
        .unwrap();
    expect_error(wrong, 401);
    expect_error(get("/v1/hosts/a/stream?token=nope"), 401);
    // With the header, or on a stream with ?token=, it works.
    assert_eq!(hosts(&hub).len(), 0);
    let s = Sse::open(&hub, "/v1/hosts/a/stream?token=s3cret", &[]);
    assert!(s.resp_headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let unauth_post = open
        .post(format!("{}/v1/messages", hub.url))
        .json(&message("x", None, "t"));
    expect_error(unauth_post.send().unwrap(), 401);
}

#[test]
fn bad_host_ids_in_paths_are_refused_before_touching_anything() {
    let hub = Hub::start();
    let long = "h".repeat(65);
    let bad = [
        "..",
        "%2e%2e",
        "%2E%2E",
        "a%2Fb",
        "%2F",
        ".hidden",
        "-x",
        "a%20b",
        long.as_str(),
        "%00",
        "%FF",
    ];
    for host in bad {
        for (method, path) in [
            ("GET", format!("/v1/hosts/{host}/messages")),
            ("GET", format!("/v1/hosts/{host}/stream")),
            ("POST", format!("/v1/hosts/{host}/ack")),
            ("DELETE", format!("/v1/hosts/{host}")),
        ] {
            let (status, body) = raw_request(&hub, method, &path);
            assert_eq!(status, 400, "{method} {path}: {body}");
            let e: Value = serde_json::from_str(&body).unwrap();
            assert!(
                e["error"].as_str().unwrap().contains("host id"),
                "{path}: {body}"
            );
        }
    }
    assert!(hosts(&hub).is_empty());
    if hub.on_nats() {
        return;
    }
    let mut names: Vec<String> = std::fs::read_dir(hub.data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["hub.lock", "segment-0000000001.jsonl", "store.json"]
    );
}

#[test]
fn bad_bodies_and_queries_get_json_errors() {
    let hub = Hub::start();
    let raw = |body: &str| {
        hub.post("/v1/messages")
            .body(body.to_string())
            .send()
            .unwrap()
    };
    assert!(expect_error(raw("{not json"), 400).contains("JSON"));
    expect_error(raw(""), 400);
    expect_error(raw("[1,"), 400);
    let huge = vec![b' '; 17 * 1024 * 1024];
    let e = expect_error(hub.post("/v1/messages").body(huge).send().unwrap(), 413);
    assert!(e.contains("16 MiB"), "{e}");
    let batch: Vec<Value> = (0..1001).map(|_| json!({"type": "t"})).collect();
    let e = expect_error(hub.post("/v1/messages").json(&batch).send().unwrap(), 413);
    assert!(e.contains("1000"), "{e}");
    let ack = hub
        .post("/v1/hosts/a/ack")
        .body("{\"ids\": [\"nope\"]}")
        .send()
        .unwrap();
    assert!(expect_error(ack, 400).contains("ids"));
    expect_error(
        hub.get("/v1/hosts/a/messages?limit=lots").send().unwrap(),
        400,
    );
    expect_error(hub.get("/v1/hosts/a/stream?since=-1").send().unwrap(), 400);
    expect_error(hub.get("/v1/nothing").send().unwrap(), 404);
    expect_error(hub.delete("/v1/messages").send().unwrap(), 405);
}

#[test]
fn metrics_count_what_happened() {
    let hub = Hub::start();
    poll(&hub, "b", "");
    let m = message("a", None, "t");
    post(&hub, &json!([m, m, {"type": "../x"}]));
    poll(&hub, "b", "");
    ack(&hub, "b", &[id_of(&m)]);
    let text = hub.get("/metrics").send().unwrap().text().unwrap();
    for line in [
        "mesync_messages_accepted_total 1",
        "mesync_messages_duplicate_total 1",
        "mesync_messages_rejected_total 1",
        "mesync_messages_delivered_total 1",
        "mesync_messages_acked_total 1",
        "mesync_messages_expired_total 0",
        "mesync_pending{host=\"b\"} 0",
        "mesync_open_streams 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(text.contains("mesync_request_duration_seconds_bucket{route=\"/v1/messages\""));
    let page = hub.get("/").send().unwrap().text().unwrap();
    assert!(page.contains("<html"));
}

#[test]
fn retention_expires_unacked_messages() {
    let hub = Hub::start_with(&[("MESYNC_RETENTION", "1")]);
    poll(&hub, "b", "");
    send(&hub, &message("a", None, "t"));
    wait_until("the message to expire", DEADLINE, || {
        poll(&hub, "b", "").is_empty()
    });
    let text = hub.get("/metrics").send().unwrap().text().unwrap();
    assert!(text.contains("mesync_messages_expired_total 1"), "{text}");
}

/// Every fixture in fixtures/invalid/ that is JSON is rejected by the hub for
/// the rule it breaks, even with the other required fields filled in.
#[test]
fn every_invalid_fixture_is_rejected_naming_its_field() {
    let hub = Hub::start();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/invalid");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read(&path).unwrap();
        let Ok(mut value) = serde_json::from_slice::<Value>(&text) else {
            let resp = hub.post("/v1/messages").body(text).send().unwrap();
            assert_eq!(resp.status(), 400, "{name}");
            checked += 1;
            continue;
        };
        if let Some(obj) = value.as_object_mut() {
            let full = message("m1", None, "unused");
            for field in ["id", "source", "created_at"] {
                obj.entry(field).or_insert(full[field].clone());
            }
        }
        let results = post(&hub, &value);
        assert_eq!(results.len(), 1, "{name}");
        assert_eq!(results[0]["status"], "rejected", "{name}: {results:?}");
        let error = results[0]["error"].as_str().unwrap();
        let field = match name.as_str() {
            "unknown-field" => "priorty",
            "not-an-object" => "source",
            n if n.starts_with("created-at") => "created_at",
            n => n.split('-').next().unwrap(),
        };
        assert!(error.contains(field), "{name}: {error}");
        checked += 1;
    }
    assert!(checked >= 10);
}
