//! Hub ingest: batches of 100 messages of ~250 bytes over 4 keep-alive
//! connections, counted only once the hub has answered (durable), beside
//! redis-server with `appendfsync always` taking the same messages as XADDs
//! pipelined in the same batches over as many connections. Each run starts
//! a fresh hub and a fresh redis-server. Also two sizing figures: the
//! memory an unacked backlog and the dedupe window cost.

use std::time::{Duration, Instant};

use mesync::api::ItemStatus;
use mesync::message::{Message, Priority};

use crate::common::Hub;
use crate::machine::settle_disk;
use crate::redis::{self, Redis};
use crate::report::{thousands, Figure, Reference, Row, Spread, Unit};
use crate::Plan;

pub const BATCH: usize = 100;
pub const CONNECTIONS: usize = 4;
/// Filler that makes an ingest message about 250 bytes, encoded.
const INGEST_TEXT: usize = 40;

/// `n` encoded messages from `bench-src` to `target` (broadcast when
/// `None`), each with `text` bytes of filler in its payload.
pub fn messages(n: usize, kind: &str, target: Option<&str>, text: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let payload = serde_json::json!({"n": i, "text": "x".repeat(text)});
            Message::new(kind, "bench-src", target, Priority::Normal, payload)
                .expect("valid message")
                .to_json_bytes()
        })
        .collect()
}

/// One JSON array body of encoded messages.
pub fn body(messages: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![b'['];
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(m);
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
    let n = plan.ingest_messages;
    let mut mesync = Spread::new(Unit::PerSec);
    let mut reference = Spread::new(Unit::PerSec);
    let mut per_msg = 0;
    for run in 0..plan.runs {
        crate::progress("ingest", run, plan.runs);
        // Encoded before the clock starts so the client's own work is not timed.
        let msgs = messages(n, "bench.ingest", Some("bench-sink"), INGEST_TEXT);
        per_msg = msgs.iter().map(Vec::len).sum::<usize>() / n.max(1);
        mesync.push(mesync_run(&msgs));
        settle_disk();
        let redis = Redis::start().and_then(|r| redis::ingest(&r, &msgs, BATCH, CONNECTIONS));
        reference.record(redis.map(|(acked, took)| acked as f64 / took.as_secs_f64()));
        settle_disk();
    }
    let ahead = match (mesync.median(), reference.median()) {
        (Some(m), Some(r)) => m >= 300_000.0 && m > r,
        (Some(m), None) => m >= 300_000.0,
        _ => false,
    };
    Row {
        what: format!(
            "hub ingest, durable: {} messages of ~{per_msg} bytes a run, batches of {BATCH}, {CONNECTIONS} keep-alive connections",
            thousands(n as f64)
        ),
        target: ">= 300,000 messages/s and ahead of redis".into(),
        mesync: Figure::Spread(mesync),
        references: vec![Reference {
            name: "redis-server, appendfsync always: XADD pipelined in the same batches",
            figure: reference,
        }],
        met: (n >= 300_000).then_some(ahead),
    }
}

/// Posts `msgs` to a fresh hub; returns accepted messages per second.
fn mesync_run(msgs: &[Vec<u8>]) -> f64 {
    let hub = Hub::start();
    post_spread(&[&hub.url], msgs)
}

/// Only what the client counts of an answer (as the redis client counts
/// replies): the status of each item, the rest read past.
#[derive(serde::Deserialize)]
struct Statuses {
    results: Vec<Status>,
}

#[derive(serde::Deserialize)]
struct Status {
    status: ItemStatus,
}

/// Posts `msgs` in batches of `BATCH` over `CONNECTIONS` keep-alive
/// connections, the connections spread over the hubs at `urls`; returns
/// accepted messages per second.
pub fn post_spread(urls: &[&str], msgs: &[Vec<u8>]) -> f64 {
    let mut bodies: Vec<Vec<Vec<u8>>> = vec![Vec::new(); CONNECTIONS];
    for (i, chunk) in msgs.chunks(BATCH).enumerate() {
        bodies[i % CONNECTIONS].push(body(chunk));
    }
    let urls: Vec<String> = urls.iter().map(|u| format!("{u}/v1/messages")).collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (elapsed, accepted) = rt.block_on(async move {
        let clients: Vec<reqwest::Client> = (0..CONNECTIONS)
            .map(|_| {
                reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .timeout(Duration::from_secs(30))
                    .build()
                    .expect("client")
            })
            .collect();
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (i, (conn, client)) in bodies.into_iter().zip(clients).enumerate() {
            let url = urls[i % urls.len()].clone();
            tasks.push(tokio::spawn(async move {
                let mut accepted = 0usize;
                for body in conn {
                    let resp = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .expect("post batch");
                    let bytes = resp.bytes().await.expect("results");
                    let answer: Statuses = serde_json::from_slice(&bytes).expect("results");
                    accepted += answer
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
    accepted as f64 / elapsed.as_secs_f64()
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
        post_batch(
            &hub,
            body(&messages(1000, "bench.dedupe", Some("bench-sink"), 0)),
        );
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
    Row::alone(
        "hub memory for the dedupe window (ids of acked messages)",
        "none (sizing figure)",
        Figure::Text(format!(
            "{ids} ids remembered: RSS +{:.0} MB, {:.0} B per id",
            grown as f64 / 1e6,
            grown as f64 / ids.max(1) as f64
        )),
        None,
    )
}
