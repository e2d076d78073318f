//! End-to-end latency: a file renamed into A's `outbox/` until it is in B's
//! `inbox/`, one lone message at a time, beside redis-server's XADD →
//! XREADGROUP and the disk's one-durable-file floor. The three take turns
//! sample by sample (a mesync message, a redis message, a durable file), so
//! a slow moment of the disk or the CPU falls on all three alike.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mesync::message::{Message, Priority};
use notify::{RecursiveMode, Watcher};

use crate::common::{Hub, Machine, Proc};
use crate::floor::Floor;
use crate::machine::settle_disk;
use crate::redis::{LoneMessages, Redis};
use crate::report::{percentile, Figure, Reference, Row, Spread, Unit};
use crate::Plan;

/// Samples thrown away at the start: connections open, caches fill.
const WARM_UP: usize = 10;

/// A hub and two daemons, A sending to B.
pub struct Pair {
    pub hub: Hub,
    pub a: Machine,
    pub b: Machine,
    _daemons: (Proc, Proc),
}

pub fn pair() -> Pair {
    let hub = Hub::start();
    let a = hub.machine("bench-a");
    let b = hub.machine("bench-b");
    let da = a.start_daemon();
    let db = b.start_daemon();
    hub.wait_streaming(&a.host);
    hub.wait_streaming(&b.host);
    Pair {
        hub,
        a,
        b,
        _daemons: (da, db),
    }
}

impl Pair {
    /// A hidden dir in A's base dir (same file system as outbox/) where
    /// messages are written before they are renamed into outbox/.
    pub fn stage_dir(&self) -> PathBuf {
        let dir = self.a.base.join(".bench-stage");
        std::fs::create_dir_all(&dir).expect("stage dir");
        dir
    }

    /// Writes a message from A to B into `stage_dir`; returns its file name.
    pub fn stage(&self, stage_dir: &Path) -> String {
        let msg = ping(&self.a.host, &self.b.host);
        let name = msg.file_name();
        std::fs::write(stage_dir.join(&name), msg.to_json_bytes()).expect("write staged message");
        name
    }
}

/// The message every latency row moves, mesync's or a reference's.
pub fn ping(from: &str, to: &str) -> Message {
    Message::new(
        "bench.ping",
        from,
        Some(to),
        Priority::Normal,
        serde_json::json!({"n": 1}),
    )
    .expect("valid message")
}

pub fn latency(plan: &Plan) -> Vec<Row> {
    let p = pair();
    let mut probe = Probe::new(&p);
    let redis = Redis::start();
    let mut lone = redis
        .as_ref()
        .map_err(Clone::clone)
        .and_then(LoneMessages::open);
    let mut floor = Floor::new();
    let value = ping("bench-a", "bench-b").to_json_bytes();
    let spreads = || (Spread::new(Unit::Ms), Spread::new(Unit::Ms));
    let (mut mesync, mut with_redis, mut with_floor) = (spreads(), spreads(), spreads());
    let n = plan.latency_samples;
    for run in 0..plan.runs {
        crate::progress("latency", run, plan.runs);
        let warm = if run == 0 { WARM_UP } else { 0 };
        let mut samples = (Vec::new(), Ok(Vec::new()), Ok(Vec::new()));
        for _ in 0..n + warm {
            samples.0.push(probe.one());
            add(&mut samples.1, lone.as_mut().map_err(|e| e.clone()), |l| {
                l.sample(&value)
            });
            add(&mut samples.2, floor.as_mut().map_err(|e| e.clone()), |f| {
                f.sample(&value)
            });
        }
        record(&mut mesync, Ok(samples.0), warm);
        record(&mut with_redis, samples.1, warm);
        record(&mut with_floor, samples.2, warm);
        settle_disk();
    }
    let full = n >= 500;
    let met = |s: &Spread, limit: f64| full.then(|| s.median().is_some_and(|v| v <= limit));
    let (met50, met99) = (met(&mesync.0, 1.5), met(&mesync.1, 5.0));
    let refs = |redis: Spread, floor: Spread| {
        vec![
            Reference {
                name: "redis-server, appendfsync always: XADD until XREADGROUP has it",
                figure: redis,
            },
            Reference {
                name: "one durable file: write, fsync, rename, fsync dir",
                figure: floor,
            },
        ]
    };
    let what = |p: &str| {
        format!("end-to-end latency {p}: file in A's outbox/ until it is in B's inbox/ ({n} lone messages a run)")
    };
    vec![
        Row {
            what: what("p50"),
            target: "p50 <= 1.5 ms".into(),
            mesync: Figure::Spread(mesync.0),
            references: refs(with_redis.0, with_floor.0),
            met: met50,
        },
        Row {
            what: what("p99"),
            target: "p99 <= 5 ms".into(),
            mesync: Figure::Spread(mesync.1),
            references: refs(with_redis.1, with_floor.1),
            met: met99,
        },
    ]
}

/// Adds one sample of a reference to a run's samples; the first error ends
/// the run for that reference (its cell then says why).
fn add<T>(
    run: &mut Result<Vec<Duration>, String>,
    reference: Result<T, String>,
    sample: impl FnOnce(T) -> Result<Duration, String>,
) {
    if let Ok(samples) = run {
        match reference.and_then(sample) {
            Ok(d) => samples.push(d),
            Err(e) => *run = Err(e),
        }
    }
}

/// Adds one run's p50 and p99 (after dropping `warm` first samples).
fn record(to: &mut (Spread, Spread), run: Result<Vec<Duration>, String>, warm: usize) {
    match run {
        Ok(samples) => {
            let mut kept: Vec<Duration> = samples.into_iter().skip(warm).collect();
            kept.sort();
            to.0.push_ms(percentile(&kept, 50.0));
            to.1.push_ms(percentile(&kept, 99.0));
        }
        Err(e) => {
            to.0.record(Err(e.clone()));
            to.1.record(Err(e));
        }
    }
}

/// Sends lone messages through a pair and times each one's arrival.
struct Probe<'a> {
    p: &'a Pair,
    stage_dir: PathBuf,
    events: mpsc::Receiver<notify::Result<notify::Event>>,
    _watcher: notify::RecommendedWatcher,
    http: reqwest::blocking::Client,
}

impl<'a> Probe<'a> {
    fn new(p: &'a Pair) -> Probe<'a> {
        let (tx, events) = mpsc::channel();
        let mut watcher = notify::recommended_watcher(tx).expect("inotify watcher");
        watcher
            .watch(&p.b.dir("inbox"), RecursiveMode::NonRecursive)
            .expect("watch inbox");
        Probe {
            p,
            stage_dir: p.stage_dir(),
            events,
            _watcher: watcher,
            http: p.hub.http(),
        }
    }

    /// One message: rename into outbox/, wait (inotify) for the inbox file.
    fn one(&mut self) -> Duration {
        let name = self.p.stage(&self.stage_dir);
        let target = self.p.b.dir("inbox").join(&name);
        let start = Instant::now();
        std::fs::rename(
            self.stage_dir.join(&name),
            self.p.a.dir("outbox").join(&name),
        )
        .expect("rename into outbox");
        let deadline = start + Duration::from_secs(10);
        while !target.exists() {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "message {name} did not arrive within 10 s");
            let _ = self
                .events
                .recv_timeout(left.min(Duration::from_millis(50)));
        }
        let took = start.elapsed();
        self.settle(&name);
        while self.events.try_recv().is_ok() {}
        took
    }

    /// Waits until the message's aftermath is over (A moved it to sent/, B's
    /// ack reached the hub), so the next sample is a lone message again and
    /// does not share the disk with this one's trailing fsyncs.
    fn settle(&self, name: &str) {
        let sent = self.p.a.dir("sent").join(name);
        let url = format!("{}/v1/hosts", self.p.hub.url);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(sent.exists() && self.pending_for_b(&url) == Some(0)) {
            assert!(
                Instant::now() < deadline,
                "message {name} was not acked within 10 s"
            );
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    fn pending_for_b(&self, url: &str) -> Option<u64> {
        let hosts: serde_json::Value = self.http.get(url).send().ok()?.json().ok()?;
        hosts["hosts"]
            .as_array()?
            .iter()
            .find(|h| h["id"] == self.p.b.host.as_str())?["pending"]
            .as_u64()
    }
}
