//! The hub store's scaling rows: one broadcast with very many hosts
//! registered (bytes written, time to accept, RSS), and the memory a large
//! unacked backlog for offline hosts costs above an idle hub.

use std::path::Path;
use std::time::{Duration, Instant};

use mesync::api::{ItemStatus, PostResponse};
use mesync::message::{Message, Priority};

use crate::common::Hub;
use crate::footprint::rss_kib;
use crate::report::{percentile, Figure, Row};
use crate::Plan;

/// Connections that register hosts at once (each one request at a time).
const REGISTER_CONNECTIONS: usize = 32;
/// Broadcasts timed one after another.
const BROADCASTS: usize = 20;

/// A complete broadcast from `source` with about `text` bytes of payload.
fn broadcast_message(kind: &str, source: &str, n: usize, text: usize) -> serde_json::Value {
    let payload = serde_json::json!({"n": n, "text": "x".repeat(text)});
    let msg = Message::new(kind, source, None, Priority::Normal, payload).expect("valid message");
    serde_json::to_value(msg).expect("message as JSON")
}

/// Posts a message or a batch and checks that every item was accepted.
fn post_accepted(client: &reqwest::blocking::Client, hub: &Hub, body: &serde_json::Value) {
    let answer: PostResponse = client
        .post(format!("{}/v1/messages", hub.url))
        .json(body)
        .send()
        .and_then(|r| r.json())
        .expect("post answer");
    assert!(
        answer
            .results
            .iter()
            .all(|r| r.status == ItemStatus::Accepted),
        "post: {:?}",
        answer.results.first()
    );
}

/// Bytes in the hub's segment files.
fn data_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Registers hosts `bench-h0..n` through the real API: long-polls with
/// `wait=0` over a few keep-alive connections. Returns how many registered
/// before `limit` ran out.
fn register(hub: &Hub, n: usize, limit: Duration) -> usize {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let url = hub.url.clone();
    rt.block_on(async move {
        let deadline = Instant::now() + limit;
        let mut tasks = Vec::new();
        for c in 0..REGISTER_CONNECTIONS {
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .timeout(Duration::from_secs(30))
                    .build()
                    .expect("client");
                let mut done = 0;
                for i in (c..n).step_by(REGISTER_CONNECTIONS) {
                    if Instant::now() > deadline {
                        break;
                    }
                    let resp = client
                        .get(format!("{url}/v1/hosts/bench-h{i}/messages?wait=0"))
                        .send()
                        .await;
                    if resp.is_ok_and(|r| r.status().is_success()) {
                        done += 1;
                    }
                }
                done
            }));
        }
        let mut done = 0;
        for t in tasks {
            done += t.await.unwrap_or(0);
        }
        done
    })
}

/// One broadcast with `plan.sse_hosts * 10` hosts registered (100,000 in a
/// full run): what it writes to the data dir, how long until it is accepted
/// (durable), and the hub's RSS holding that many hosts.
pub fn broadcast(plan: &Plan) -> Vec<Row> {
    let hosts = plan.sse_hosts * 10;
    let hub = Hub::start_with(crate::FLEET_LIMITS);
    let started = Instant::now();
    let registered = register(&hub, hosts, Duration::from_secs(300));
    let took = started.elapsed();
    let dir = hub.data_dir();
    let client = reqwest::blocking::Client::new();
    let mut times = Vec::with_capacity(BROADCASTS);
    let mut written = Vec::with_capacity(BROADCASTS);
    for i in 0..BROADCASTS {
        let body = broadcast_message("bench.broadcast", "bench-h0", i, 100);
        let before = data_bytes(&dir);
        let start = Instant::now();
        post_accepted(&client, &hub, &body);
        times.push(start.elapsed());
        written.push(data_bytes(&dir) - before);
    }
    times.sort();
    let most = written.iter().copied().max().unwrap_or(0);
    let rss = rss_kib(hub.proc.pid()).unwrap_or(0);
    let p50 = percentile(&times, 50.0);
    vec![
        Row::alone(
            "one broadcast with many hosts registered: bytes written",
            "< 4 KiB",
            Figure::Text(format!(
                "{most} bytes at most over {BROADCASTS} broadcasts ({registered} hosts registered in {:.1} s)",
                took.as_secs_f64()
            )),
            Some(registered == hosts && most < 4096),
        ),
        Row::alone(
            "one broadcast with many hosts registered: time to accept",
            "< 10 ms",
            Figure::Text(format!(
                "p50 {}, max {} ({BROADCASTS} broadcasts, each answered after its fsync)",
                ms(p50),
                ms(times.last().copied().unwrap_or_default())
            )),
            Some(p50 < Duration::from_millis(10)),
        ),
        Row::alone(
            "hub RSS with them registered",
            "none (sizing figure)",
            Figure::Text(format!("{:.1} MB for {registered} hosts", rss as f64 / 1024.0)),
            None,
        ),
    ]
}

/// Hub memory for an unacked backlog of `plan.backlog_broadcasts * 10`
/// broadcasts (1,000,000 in a full run) for 100 registered hosts that never
/// read, above the same hub idle with those hosts registered.
pub fn backlog(plan: &Plan) -> Row {
    const HOSTS: usize = 100;
    const BATCH: usize = 1000;
    let hub = Hub::start();
    for h in 0..HOSTS {
        // A long-poll with wait=0 registers the host and returns at once.
        let resp = hub.get(&format!("/v1/hosts/offline-{h}/messages")).send();
        assert!(resp.is_ok_and(|r| r.status().is_success()), "register host");
    }
    let idle = rss_kib(hub.proc.pid()).unwrap_or(0);
    let batches = plan.backlog_broadcasts * 10 / BATCH;
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut posted = 0;
    for b in 0..batches {
        if Instant::now() > deadline {
            break;
        }
        let batch: Vec<serde_json::Value> = (0..BATCH)
            .map(|i| broadcast_message("bench.backlog", "bench-src", b * BATCH + i, 100))
            .collect();
        post_accepted(&client, &hub, &serde_json::Value::from(batch));
        posted += BATCH;
    }
    let after = rss_kib(hub.proc.pid()).unwrap_or(0);
    let grown = after.saturating_sub(idle) * 1024;
    let pending: u64 = hub
        .get("/v1/hosts")
        .send()
        .and_then(|r| r.json::<serde_json::Value>())
        .map(|v| {
            v["hosts"]
                .as_array()
                .map_or(0, |a| a.iter().filter_map(|h| h["pending"].as_u64()).sum())
        })
        .unwrap_or(0);
    Row::alone(
        "hub RSS for an unacked backlog for offline hosts, above an idle hub",
        "<= 100 MB for 1,000,000 messages",
        Figure::Text(format!(
            "{posted} broadcasts for {HOSTS} offline hosts ({pending} queue entries): RSS +{:.1} MB, {:.0} B per message; data dir {:.0} MB",
            grown as f64 / 1e6,
            grown as f64 / posted.max(1) as f64,
            data_bytes(&hub.data_dir()) as f64 / 1e6
        )),
        Some(posted >= 1_000_000 && grown <= 100_000_000),
    )
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
