//! The hub on NATS JetStream beside the file store, in one run: ingest and
//! latency with each store, and ingest through 2 hubs against 1. The NATS
//! cluster is 3 `nats-server` nodes on loopback with `sync_interval:
//! always` (an acked message is fsynced on a quorum) and 3 replicas, on the
//! same disk as the file store. Row `nats`.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use mesync::message::{Message, Priority};

use crate::common::nats::Cluster;
use crate::common::Hub;
use crate::ingest::{messages, post_spread, BATCH, CONNECTIONS};
use crate::machine::settle_disk;
use crate::report::{thousands, Figure, Reference, Row, Spread, Unit};
use crate::Plan;

pub fn run(plan: &Plan) -> Vec<Row> {
    let n = (plan.ingest_messages / 10).max(5_000);
    let samples = plan.latency_samples;
    let mut ingest = [
        Spread::new(Unit::PerSec),
        Spread::new(Unit::PerSec),
        Spread::new(Unit::PerSec),
    ];
    let mut latency = [
        Spread::new(Unit::Ms),
        Spread::new(Unit::Ms),
        Spread::new(Unit::Ms),
    ];
    for run in 0..plan.runs {
        crate::progress("nats", run, plan.runs);
        let msgs = messages(n, "bench.ingest", Some("bench-sink"), 40);
        {
            let file = Hub::start_on("file", &[]);
            ingest[0].push(post_spread(&[&file.url], &msgs));
            latency[0].push_ms(latency_on(&file, &file, samples));
        }
        settle_disk();
        {
            let nats = Cluster::start_with(3, true);
            let one = Hub::start_on(&nats.store_url(), &[]);
            ingest[1].push(post_spread(&[&one.url], &msgs));
            let two = Hub::start_on(&nats.store_url(), &[]);
            latency[1].push_ms(latency_on(&one, &one, samples));
            latency[2].push_ms(latency_on(&one, &two, samples));
        }
        settle_disk();
        {
            let nats = Cluster::start_with(3, true);
            let one = Hub::start_on(&nats.store_url(), &[]);
            let two = Hub::start_on(&nats.store_url(), &[]);
            ingest[2].push(post_spread(&[&one.url, &two.url], &msgs));
        }
        settle_disk();
    }
    let [file_in, nats_in, two_in] = ingest;
    let [file_lat, nats_lat, cross_lat] = latency;
    let judged = !plan.quick;
    let scales = match (two_in.median(), nats_in.median()) {
        (Some(two), Some(one)) if one > 0.0 => two / one >= 1.5,
        _ => false,
    };
    let fast = cross_lat.median().is_some_and(|ms| ms <= 5.0);
    vec![
        Row {
            what: format!(
                "hub ingest on NATS JetStream (3 nodes, sync_interval always, 3 replicas), 1 hub: {} messages a run, batches of {BATCH}, {CONNECTIONS} connections",
                thousands(n as f64)
            ),
            target: "2 hubs >= 1.5x one hub".into(),
            mesync: Figure::Spread(nats_in),
            references: vec![
                Reference {
                    name: "the file store, same messages",
                    figure: file_in,
                },
                Reference {
                    name: "NATS store, 2 hubs sharing the connections",
                    figure: two_in,
                },
            ],
            met: judged.then_some(scales),
        },
        Row {
            what: format!(
                "latency on NATS JetStream: post to hub 1 until a stream on hub 2 has it, median of {samples}"
            ),
            target: "p50 <= 5 ms".into(),
            mesync: Figure::Spread(cross_lat),
            references: vec![
                Reference {
                    name: "the NATS store, post and stream on one hub",
                    figure: nats_lat,
                },
                Reference {
                    name: "the file store, post and stream on one hub",
                    figure: file_lat,
                },
            ],
            met: judged.then_some(fast),
        },
    ]
}

/// How long one latency sample may wait for its message.
const SAMPLE_DEADLINE: Duration = Duration::from_secs(10);

/// The median time from posting a message to `to` until a stream on
/// `from` delivers it.
fn latency_on(to: &Hub, from: &Hub, samples: usize) -> Duration {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    // No overall timeout on the stream itself: it stays open for every sample.
    let resp = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .expect("client")
        .get(format!("{}/v1/hosts/bench-lat/stream", from.url))
        .send()
        .expect("stream");
    // Lines come through a thread, so each sample waits with a deadline: a
    // message that never arrives fails the run instead of hanging it.
    let (line_tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(resp).lines().map_while(Result::ok) {
            if line_tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut took = Vec::with_capacity(samples);
    for i in 0..samples {
        let m = Message::new(
            "bench.ping",
            "bench-src",
            Some("bench-lat"),
            Priority::Normal,
            serde_json::json!({"i": i}),
        )
        .expect("valid message");
        let body = m.to_json_bytes();
        let start = Instant::now();
        let posted = client
            .post(format!("{}/v1/messages", to.url))
            .header("content-type", "application/json")
            .body(body)
            .send();
        assert!(posted.is_ok_and(|r| r.status().is_success()), "post");
        let id = m.id.to_string();
        loop {
            match lines.recv_timeout(SAMPLE_DEADLINE) {
                Ok(line) if line.starts_with("data:") && line.contains(&id) => break,
                Ok(_) => {}
                Err(e) => panic!(
                    "message {i} did not arrive on the stream within {SAMPLE_DEADLINE:?}: {e}"
                ),
            }
        }
        took.push(start.elapsed());
        let _ = client
            .post(format!("{}/v1/hosts/bench-lat/ack", to.url))
            .json(&serde_json::json!({"ids": [id]}))
            .send();
    }
    took.sort();
    took[took.len() / 2]
}
