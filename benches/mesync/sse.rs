//! Concurrent SSE hosts on one hub: connections held, the time one
//! broadcast takes to reach all of them, and the hub's RSS while it holds
//! them. The streams are opened once; each run is one more broadcast to all
//! of them, so the spread is over broadcasts.
//!
//! The clients are raw TCP connections (a request line and a reader) so that
//! thousands of them cost the benchmark little next to the hub.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};

use crate::common::Hub;
use crate::footprint::rss_kib;
use crate::report::{percentile, thousands, Figure, Row, Spread, Unit};
use crate::Plan;

/// The target's host count; a smaller run (`--quick`) is not judged.
const TARGET_HOSTS: usize = 10_000;

/// The event kind of broadcast number `round`, quoted as it appears on the wire.
fn needle(round: usize) -> String {
    format!("\"bench.broadcast-{round}\"")
}

pub fn run(plan: &Plan) -> Vec<Row> {
    let hub = Hub::start_with(crate::FLEET_LIMITS);
    let (n, rounds) = (plan.sse_hosts, plan.runs);
    let port = hub.port;
    let pid = hub.proc.pid();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (mut reach, mut rss) = (Spread::new(Unit::Ms), Spread::new(Unit::Mb));
    let mut p50 = Spread::new(Unit::Ms);
    let held = rt.block_on(async {
        let (held, mut done_rx) = open_all(port, n, rounds).await;
        wait_registered(port, held).await;
        for round in 0..rounds {
            crate::progress("sse broadcast", round, rounds);
            let mut arrivals = broadcast(port, round, held, &mut done_rx).await;
            arrivals.sort();
            if arrivals.len() == held {
                reach.push_ms(arrivals.last().copied().unwrap_or_default());
            } else {
                reach.record(Err(format!("{} of {held} reached", arrivals.len())));
            }
            p50.push_ms(percentile(&arrivals, 50.0));
            rss.push(rss_kib(pid).unwrap_or(0) as f64 / 1024.0);
        }
        held
    });
    let full = n >= TARGET_HOSTS;
    let judged = |s: &Spread, limit: f64| full.then(|| s.median().is_some_and(|v| v <= limit));
    let (reach_met, rss_met) = (judged(&reach, 500.0), judged(&rss, 200.0));
    let median_p50 = p50.median().unwrap_or(0.0);
    vec![
        Row::alone(
            "concurrent SSE hosts on one hub",
            ">= 10,000",
            Figure::Text(format!(
                "{} of {} held open",
                thousands(held as f64),
                thousands(n as f64)
            )),
            full.then_some(held >= TARGET_HOSTS),
        ),
        Row::alone(
            &format!(
                "one broadcast reaching every SSE host (half of them within {median_p50:.0} ms)"
            ),
            "<= 500 ms",
            Figure::Spread(reach),
            reach_met,
        ),
        Row::alone(
            "hub RSS holding those streams",
            "<= 200 MB",
            Figure::Spread(rss),
            rss_met,
        ),
    ]
}

/// Opens `n` streams, each in a task that reports every broadcast it sees
/// as `(round, when)`. Returns how many opened and the report channel.
async fn open_all(port: u16, n: usize, rounds: usize) -> (usize, mpsc::Receiver<(usize, Instant)>) {
    let (ready_tx, mut ready_rx) = mpsc::channel::<bool>(n.max(1));
    // Each stream reports once a round; room for one round of all of them.
    let (done_tx, done_rx) = mpsc::channel::<(usize, Instant)>(n.max(1));
    let opening = Arc::new(Semaphore::new(256));
    for i in 0..n {
        let (ready_tx, done_tx, opening) = (ready_tx.clone(), done_tx.clone(), opening.clone());
        tokio::spawn(async move {
            let permit = opening.acquire_owned().await;
            let stream = open_stream(port, &format!("sse-{i}")).await;
            drop(permit);
            let Some(mut stream) = stream else {
                let _ = ready_tx.send(false).await;
                return;
            };
            let _ = ready_tx.send(true).await;
            for round in 0..rounds {
                let seen = wait_for(
                    &mut stream,
                    needle(round).as_bytes(),
                    Duration::from_secs(120),
                )
                .await;
                if !seen {
                    return;
                }
                let _ = done_tx.send((round, Instant::now())).await;
            }
        });
    }
    let mut held = 0;
    for _ in 0..n {
        match tokio::time::timeout(Duration::from_secs(60), ready_rx.recv()).await {
            Ok(Some(true)) => held += 1,
            Ok(Some(false)) => {}
            _ => break,
        }
    }
    (held, done_rx)
}

/// Waits until the hub counts `held` open streams, so a broadcast reaches all.
async fn wait_registered(port: u16, held: usize) {
    let url = format!("http://127.0.0.1:{port}/v1/hosts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && open_streams(&url).await < held {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Posts broadcast number `round`; returns when it reached each stream.
async fn broadcast(
    port: u16,
    round: usize,
    held: usize,
    done_rx: &mut mpsc::Receiver<(usize, Instant)>,
) -> Vec<Duration> {
    let body = serde_json::json!({"type": format!("bench.broadcast-{round}"), "source": "sse-sender",
        "id": uuid::Uuid::now_v7(), "created_at": mesync::message::now_rfc3339(), "payload": {}});
    let start = Instant::now();
    let posted = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/messages"))
        .json(&body)
        .send()
        .await;
    assert!(
        posted.is_ok_and(|r| r.status().is_success()),
        "post broadcast"
    );
    let mut arrivals = Vec::with_capacity(held);
    while arrivals.len() < held {
        match tokio::time::timeout(Duration::from_secs(30), done_rx.recv()).await {
            Ok(Some((r, at))) if r == round => arrivals.push(at - start),
            // A late arrival of an earlier round that timed out.
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    arrivals
}

async fn open_stream(port: u16, host: &str) -> Option<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let req = format!(
        "GET /v1/hosts/{host}/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.ok()?;
    // The status line arrives with the headers, before any event.
    wait_for(&mut s, b"200 OK", Duration::from_secs(30))
        .await
        .then_some(s)
}

/// Reads until `needle` shows up, the stream ends, or `limit` passes.
async fn wait_for(s: &mut TcpStream, needle: &[u8], limit: Duration) -> bool {
    let mut seen: Vec<u8> = Vec::new();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                seen.extend_from_slice(&buf[..n]);
                if seen.windows(needle.len()).any(|w| w == needle) {
                    return true;
                }
                // Keep only a tail long enough to match across reads.
                if seen.len() > 4096 {
                    seen.drain(..seen.len() - needle.len());
                }
            }
            _ => return false,
        }
    }
}

async fn open_streams(url: &str) -> usize {
    let Ok(resp) = reqwest::get(url).await else {
        return 0;
    };
    let Ok(v) = resp.json::<serde_json::Value>().await else {
        return 0;
    };
    v["hosts"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter(|x| x["streams"].as_u64().unwrap_or(0) > 0)
                .count()
        })
        .unwrap_or(0)
}
