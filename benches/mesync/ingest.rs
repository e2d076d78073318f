//! Hub ingest: batches of 100 messages of ~250 bytes over 4 keep-alive
//! connections, counted only once the hub has answered (durable).

use std::time::{Duration, Instant};

use mesync::api::{ItemStatus, PostResponse};
use mesync::message::{Message, Priority};

use crate::common::Hub;
use crate::{Plan, Row};

const BATCH: usize = 100;
const CONNECTIONS: usize = 4;

/// One JSON array body of `n` messages from `bench-src` to `target`
/// (broadcast when `None`), each with `text` bytes of filler in its payload.
fn body(n: usize, kind: &str, target: Option<&str>, text: usize) -> Vec<u8> {
    let mut out = vec![b'['];
    for i in 0..n {
        let payload = serde_json::json!({"n": i, "text": "x".repeat(text)});
        let msg = Message::new(kind, "bench-src", target, Priority::Normal, payload)
            .expect("valid message");
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&msg.to_json_bytes());
    }
    out.push(b']');
    out
}

/// Posts one batch body and checks the hub took the request.
fn post_batch(hub: &Hub, body: Vec<u8>) {
    let resp = hub
        .post("/v1/messages")
        .header("content-type", "application/json")
        .body(body)
        .send();
    assert!(resp.is_ok_and(|r| r.status().is_success()), "post batch");
}

pub fn run(plan: &Plan) -> Row {
    let hub = Hub::start();
    let batches = plan.ingest_messages / BATCH;
    // Encode everything first so the client's own work is not timed.
    let mut bodies: Vec<Vec<Vec<u8>>> = vec![Vec::new(); CONNECTIONS];
    for i in 0..batches {
        // About 250 bytes per message, encoded.
        bodies[i % CONNECTIONS].push(body(BATCH, "bench.ingest", Some("bench-sink"), 40));
    }
    let per_msg = bodies[0].first().map_or(0, |b| b.len() / BATCH);
    let url = format!("{}/v1/messages", hub.url);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (elapsed, accepted) = rt.block_on(async move {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for conn in bodies {
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .timeout(Duration::from_secs(30))
                    .build()
                    .expect("client");
                let mut accepted = 0usize;
                for body in conn {
                    let resp = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .expect("post batch");
                    let results: PostResponse = resp.json().await.expect("results");
                    accepted += results
                        .results
                        .iter()
                        .filter(|r| r.status == ItemStatus::Accepted)
                        .count();
                }
                accepted
            }));
        }
        let mut accepted = 0;
        for t in tasks {
            accepted += t.await.expect("ingest task");
        }
        (start.elapsed(), accepted)
    });
    let rate = accepted as f64 / elapsed.as_secs_f64();
    Row {
        what: "hub ingest, durable (batches of 100, 4 connections)",
        target: ">= 100,000 messages/s",
        measured: format!(
            "{:.0} messages/s ({accepted} accepted in {:.2} s, ~{per_msg} bytes each)",
            rate,
            elapsed.as_secs_f64()
        ),
        met: Some(rate >= 100_000.0),
    }
}

/// The memory the dedupe window costs: messages posted and acked at once
/// leave only their ids behind, remembered for `dedupe_window`.
pub fn dedupe(plan: &Plan) -> Row {
    let hub = Hub::start();
    let poll = |q: &str| -> serde_json::Value {
        let resp = hub.get(&format!("/v1/hosts/bench-sink/messages{q}")).send();
        resp.and_then(|r| r.json()).expect("long-poll answer")
    };
    poll("?wait=0");
    let before = crate::footprint::rss_kib(hub.proc.pid()).unwrap_or(0);
    let batches = plan.backlog_broadcasts * 5 / 1000;
    for _ in 0..batches {
        post_batch(&hub, body(1000, "bench.dedupe", Some("bench-sink"), 0));
        let got = poll("?limit=1000");
        let ids: Vec<&serde_json::Value> = got["messages"]
            .as_array()
            .map(|a| a.iter().map(|m| &m["message"]["id"]).collect())
            .unwrap_or_default();
        let acked = hub
            .post("/v1/hosts/bench-sink/ack")
            .json(&serde_json::json!({ "ids": ids }))
            .send();
        assert!(acked.is_ok_and(|r| r.status().is_success()), "ack batch");
    }
    let after = crate::footprint::rss_kib(hub.proc.pid()).unwrap_or(0);
    let ids = batches * 1000;
    let grown = after.saturating_sub(before) * 1024;
    Row {
        what: "hub memory for the dedupe window (ids of acked messages)",
        target: "none (sizing figure)",
        measured: format!(
            "{ids} ids remembered: RSS +{:.0} MB, {:.0} B per id",
            grown as f64 / 1e6,
            grown as f64 / ids.max(1) as f64
        ),
        met: None,
    }
}
