//! Flood rows: what each kind of hostile client costs a hub with its
//! limits (RSS, open descriptors, `/healthz` latency during the flood).
//! Counts are bounded and small enough for a 2-core machine; only
//! 127.0.0.1 is used. Each flood runs once on a fresh hub.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::Hub;
use crate::footprint::rss_kib;
use crate::report::{Figure, Row};

/// Idle connections opened against a hub limited to `IDLE_LIMIT`.
const IDLE_CONNS: usize = 2_000;
const IDLE_LIMIT: &str = "500";
const SLOW_CONNS: usize = 500;
const STALLED_BODIES: usize = 100;
const HUGE_ITEMS: usize = 4;
const STALLED_STREAMS: usize = 50;
const STREAM_MESSAGES: usize = 200;

pub fn run() -> Vec<Row> {
    vec![
        idle(),
        slowloris(),
        stalled_bodies(),
        huge_items(),
        stalled_streams(),
    ]
}

/// RSS in MB, open descriptors and `/healthz` latencies of a hub, as text.
struct Cost {
    rss_before: f64,
    rss_peak: f64,
    fds_peak: usize,
    healthz: Vec<Duration>,
    failed: usize,
}

impl Cost {
    fn start(hub: &Hub) -> Cost {
        Cost {
            rss_before: rss_mb(hub),
            rss_peak: 0.0,
            fds_peak: 0,
            healthz: Vec::new(),
            failed: 0,
        }
    }

    /// Notes RSS and fds, and times a few `/healthz` on fresh connections.
    fn sample(&mut self, hub: &Hub, probes: usize) {
        self.rss_peak = self.rss_peak.max(rss_mb(hub));
        self.fds_peak = self.fds_peak.max(fds(hub));
        for _ in 0..probes {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client");
            let start = Instant::now();
            match client.get(format!("{}/healthz", hub.url)).send() {
                Ok(r) if r.status() == 200 => self.healthz.push(start.elapsed()),
                _ => self.failed += 1,
            }
        }
    }

    fn text(mut self) -> String {
        self.healthz.sort();
        let p = |q: f64| {
            let i = ((self.healthz.len() as f64 - 1.0) * q).round() as usize;
            self.healthz
                .get(i)
                .map_or("-".to_string(), |d| format!("{:.1}", d.as_secs_f64() * 1e3))
        };
        format!(
            "RSS {:.0} → {:.0} MB, fds ≤ {}, /healthz median {} ms, max {} ms, {} failed of {}",
            self.rss_before,
            self.rss_peak,
            self.fds_peak,
            p(0.5),
            p(1.0),
            self.failed,
            self.healthz.len() + self.failed
        )
    }
}

fn rss_mb(hub: &Hub) -> f64 {
    rss_kib(hub.proc.pid()).unwrap_or(0) as f64 / 1024.0
}

fn fds(hub: &Hub) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", hub.proc.pid()))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

fn connect(hub: &Hub) -> Option<TcpStream> {
    TcpStream::connect(("127.0.0.1", hub.port)).ok()
}

fn row(what: &str, cost: Cost) -> Row {
    Row::alone(what, "/healthz answers", Figure::Text(cost.text()), None)
}

fn idle() -> Row {
    crate::progress("flood: idle connections", 0, 1);
    let hub = Hub::start_with(&[("MESYNC_MAX_CONNECTIONS", IDLE_LIMIT)]);
    let mut cost = Cost::start(&hub);
    let conns: Vec<TcpStream> = (0..IDLE_CONNS).filter_map(|_| connect(&hub)).collect();
    cost.sample(&hub, 20);
    drop(conns);
    row(
        &format!("flood: {IDLE_CONNS} idle connections, max_connections {IDLE_LIMIT}"),
        cost,
    )
}

fn slowloris() -> Row {
    crate::progress("flood: slowloris", 0, 1);
    let hub = Hub::start_with(&[("MESYNC_HEADER_TIMEOUT", "5")]);
    let mut cost = Cost::start(&hub);
    let mut conns: Vec<TcpStream> = (0..SLOW_CONNS).filter_map(|_| connect(&hub)).collect();
    // A header byte per connection every second, for 8 s (past the timeout).
    for _ in 0..8 {
        for c in &mut conns {
            let _ = c.write_all(b"X");
        }
        cost.sample(&hub, 3);
        std::thread::sleep(Duration::from_secs(1));
    }
    row(
        &format!("flood: {SLOW_CONNS} slowloris connections (a byte a second, header_timeout 5 s)"),
        cost,
    )
}

fn stalled_bodies() -> Row {
    crate::progress("flood: stalled bodies", 0, 1);
    let hub = Hub::start_with(&[("MESYNC_BODY_TIMEOUT", "5")]);
    let mut cost = Cost::start(&hub);
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n[",
        16 * 1024 * 1024
    );
    let conns: Vec<TcpStream> = (0..STALLED_BODIES)
        .filter_map(|_| {
            let mut c = connect(&hub)?;
            c.write_all(head.as_bytes()).ok()?;
            // A megabyte of each body, then nothing.
            c.write_all(&vec![b' '; 1 << 20]).ok()?;
            Some(c)
        })
        .collect();
    cost.sample(&hub, 20);
    drop(conns);
    row(
        &format!("flood: {STALLED_BODIES} bodies announcing 16 MiB, stalled after 1 MiB"),
        cost,
    )
}

fn huge_items() -> Row {
    crate::progress("flood: huge items", 0, 1);
    let hub = Hub::start();
    let mut cost = Cost::start(&hub);
    let item = json!({"type": "big", "source": "a", "payload": {"blob": "x".repeat(15 << 20)}});
    let body = item.to_string();
    let posts: Vec<_> = (0..HUGE_ITEMS)
        .map(|_| {
            let (url, body) = (format!("{}/v1/messages", hub.url), body.clone());
            std::thread::spawn(move || {
                let _ = reqwest::blocking::Client::new()
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send();
            })
        })
        .collect();
    cost.sample(&hub, 10);
    for p in posts {
        let _ = p.join();
    }
    cost.sample(&hub, 1);
    row(
        &format!("flood: {HUGE_ITEMS} single items of 15 MiB at once (limit 1 MiB)"),
        cost,
    )
}

fn stalled_streams() -> Row {
    crate::progress("flood: stalled streams", 0, 1);
    let hub = Hub::start_with(&[("MESYNC_STALL_TIMEOUT", "5")]);
    let mut cost = Cost::start(&hub);
    let streams: Vec<TcpStream> = (0..STALLED_STREAMS)
        .filter_map(|_| {
            let mut c = connect(&hub)?;
            c.write_all(b"GET /v1/hosts/sink/stream HTTP/1.1\r\nHost: x\r\n\r\n")
                .ok()?;
            Some(c)
        })
        .collect();
    for chunk in 0..STREAM_MESSAGES / 50 {
        let batch: Vec<_> = (0..50)
            .map(|i| {
                json!({"type": "bulk", "source": "a", "target": "sink",
                       "payload": {"n": chunk * 50 + i, "blob": "y".repeat(100 * 1024)}})
            })
            .collect();
        let _ = hub.post("/v1/messages").json(&batch).send();
        cost.sample(&hub, 2);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        cost.sample(&hub, 1);
        let open = hub.host("sink").and_then(|h| h["streams"].as_u64());
        if open == Some(0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(streams);
    row(
        &format!(
            "flood: {STALLED_STREAMS} unread streams, {STREAM_MESSAGES} messages of 100 KB (stall_timeout 5 s)"
        ),
        cost,
    )
}
