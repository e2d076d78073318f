//! End-to-end rows: a file renamed into A's `outbox/` until it is in B's `inbox/`.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mesync::message::{Message, Priority};
use notify::{RecursiveMode, Watcher};

use crate::common::{Hub, Machine, Proc};
use crate::{ms, percentile, Plan, Row};

/// A hub and two daemons, A sending to B.
struct Pair {
    _hub: Hub,
    a: Machine,
    b: Machine,
    _daemons: (Proc, Proc),
}

fn pair() -> Pair {
    let hub = Hub::start();
    let a = hub.machine("bench-a");
    let b = hub.machine("bench-b");
    let da = a.start_daemon();
    let db = b.start_daemon();
    hub.wait_streaming(&a.host);
    hub.wait_streaming(&b.host);
    Pair {
        _hub: hub,
        a,
        b,
        _daemons: (da, db),
    }
}

/// A message from A to B, staged in A's base dir, ready to be renamed into outbox/.
fn stage(p: &Pair, stage_dir: &Path) -> String {
    let msg = Message::new(
        "bench.ping",
        &p.a.host,
        Some(&p.b.host),
        Priority::Normal,
        serde_json::json!({"n": 1}),
    )
    .expect("valid message");
    let name = msg.file_name();
    std::fs::write(stage_dir.join(&name), msg.to_json_bytes()).expect("write staged message");
    name
}

pub fn latency(plan: &Plan) -> Vec<Row> {
    let p = pair();
    let stage_dir = p.a.base.join(".bench-stage");
    std::fs::create_dir_all(&stage_dir).expect("stage dir");
    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(tx).expect("inotify watcher");
    watcher
        .watch(&p.b.dir("inbox"), RecursiveMode::NonRecursive)
        .expect("watch inbox");

    let mut samples = Vec::with_capacity(plan.latency_samples);
    // A few warm-up messages open connections and fill caches.
    for i in 0..plan.latency_samples + 10 {
        let name = stage(&p, &stage_dir);
        let target = p.b.dir("inbox").join(&name);
        let start = Instant::now();
        std::fs::rename(stage_dir.join(&name), p.a.dir("outbox").join(&name))
            .expect("rename into outbox");
        let deadline = start + Duration::from_secs(10);
        while !target.exists() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("message {name} did not arrive within 10 s");
            }
            let _ = rx.recv_timeout(left.min(Duration::from_millis(50)));
        }
        let took = start.elapsed();
        while rx.try_recv().is_ok() {}
        if i >= 10 {
            samples.push(took);
        }
    }
    samples.sort();
    let (p50, p90, p99) = (
        percentile(&samples, 50.0),
        percentile(&samples, 90.0),
        percentile(&samples, 99.0),
    );
    vec![Row {
        what: "end-to-end latency, outbox -> inbox (durable, loopback)",
        target: "p50 <= 3 ms, p99 <= 15 ms",
        measured: format!(
            "p50 {}, p90 {}, p99 {} ({} samples)",
            ms(p50),
            ms(p90),
            ms(p99),
            samples.len()
        ),
        met: Some(p50 <= Duration::from_millis(3) && p99 <= Duration::from_millis(15)),
    }]
}

pub fn burst(plan: &Plan) -> Row {
    let p = pair();
    let stage_dir = p.a.base.join(".bench-stage");
    std::fs::create_dir_all(&stage_dir).expect("stage dir");
    let names: Vec<String> = (0..plan.burst).map(|_| stage(&p, &stage_dir)).collect();
    let start = Instant::now();
    for name in &names {
        std::fs::rename(stage_dir.join(name), p.a.dir("outbox").join(name))
            .expect("rename into outbox");
    }
    let renamed = start.elapsed();
    let inbox = p.b.dir("inbox");
    let deadline = Duration::from_secs(60);
    let mut arrived = 0;
    while arrived < plan.burst && start.elapsed() < deadline {
        arrived = std::fs::read_dir(&inbox).map(|d| d.count()).unwrap_or(0);
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = start.elapsed();
    Row {
        what: "burst: files in A's outbox/ all in B's inbox/",
        target: "10,000 in <= 2 s",
        measured: format!(
            "{arrived} of {} in {:.2} s (renaming them in took {})",
            plan.burst,
            took.as_secs_f64(),
            ms(renamed)
        ),
        met: Some(arrived == plan.burst && plan.burst >= 10_000 && took <= Duration::from_secs(2)),
    }
}
