//! The burst: 10,000 files renamed into A's `outbox/` as fast as possible,
//! timed until B's `inbox/` holds them all, beside the disk's floor for the
//! same number of durable files one by one, mesync's own inbox writer
//! writing them alone, and the bare creation of as many empty files. Each run starts a fresh hub and pair.

use std::time::{Duration, Instant};

use crate::floor::Floor;
use crate::flow::{pair, ping};
use crate::machine::settle_disk;
use crate::report::{thousands, Figure, Reference, Row, Spread, Unit};
use crate::Plan;

/// Batches for the inbox writer alone: what one ack request covers.
const FLOOR_BATCH: usize = 1000;

pub fn run(plan: &Plan) -> Row {
    let n = plan.burst;
    let value = ping("bench-a", "bench-b").to_json_bytes();
    let mut mesync = Spread::new(Unit::Secs);
    let mut one_by_one = Spread::new(Unit::Secs);
    let mut batched = Spread::new(Unit::Secs);
    let mut created = Spread::new(Unit::Secs);
    let mut renaming = Spread::new(Unit::Secs);
    let mut all_arrived = true;
    for run in 0..plan.runs {
        crate::progress("burst", run, plan.runs);
        let (took, renamed, arrived) = mesync_run(n);
        all_arrived &= arrived == n;
        mesync.push(took.as_secs_f64());
        renaming.push(renamed.as_secs_f64());
        settle_disk();
        let secs = |d: Duration| d.as_secs_f64();
        one_by_one.record(Floor::burst_one_by_one(n, &value).map(secs));
        settle_disk();
        batched.record(Floor::burst_spool(n, FLOOR_BATCH, &value).map(secs));
        settle_disk();
        created.record(Floor::burst_create(n).map(secs));
        settle_disk();
    }
    let renamed = renaming.median().unwrap_or(0.0);
    let met = (n >= 10_000).then(|| all_arrived && mesync.median().is_some_and(|s| s <= 1.0));
    Row {
        what: format!(
            "burst: {} files in A's outbox/ all in B's inbox/ (renaming them in took {renamed:.2} s of it)",
            thousands(n as f64)
        ),
        target: "10,000 in <= 1 s".into(),
        mesync: Figure::Spread(mesync),
        references: vec![
            Reference {
                name: "the same number of durable files, one by one",
                figure: one_by_one,
            },
            Reference {
                name: "the same number of files through mesync's inbox writer alone, batches of 1,000 (all written, then fsynced on 4 threads; one dir fsync a batch)",
                figure: batched,
            },
            Reference {
                name: "creating the same number of empty files, nothing written or fsynced",
                figure: created,
            },
        ],
        met,
    }
}

/// One burst through a fresh pair: (time until all arrived, time renaming, how many arrived).
fn mesync_run(n: usize) -> (Duration, Duration, usize) {
    let p = pair();
    let stage_dir = p.stage_dir();
    let names: Vec<String> = (0..n).map(|_| p.stage(&stage_dir)).collect();
    let start = Instant::now();
    for name in &names {
        std::fs::rename(stage_dir.join(name), p.a.dir("outbox").join(name))
            .expect("rename into outbox");
    }
    let renamed = start.elapsed();
    let inbox = p.b.dir("inbox");
    let mut arrived = 0;
    while arrived < n && start.elapsed() < Duration::from_secs(60) {
        arrived = std::fs::read_dir(&inbox).map(|d| d.count()).unwrap_or(0);
        std::thread::sleep(Duration::from_millis(5));
    }
    (start.elapsed(), renamed, arrived)
}
