//! mesync's benchmark: real `mesync` processes on loopback, and beside each
//! figure the reference a user would compare it with (redis-server with
//! `appendfsync always`, the disk's raw floor), measured in the same run on
//! the same disk. Every row is measured several times and printed as
//! min / median / max; the machine and its load before and after are
//! printed with the table.
//!
//! Run with `cargo bench --bench mesync` (or `just bench`); `-- --quick` for
//! smaller sizes and fewer runs, `-- --runs N` to choose the runs, and row
//! names (`latency burst ingest broadcast backlog dedupe sse idle binary flood nats`) to run only
//! those. It is not part of `cargo test`: performance is measured here and
//! recorded in BENCHMARKS.md, never asserted in tests. Every load loop is
//! bounded in count and in time, and only 127.0.0.1 is used.

#[path = "../../tests/common/mod.rs"]
mod common;

mod burst;
mod flood;
mod floor;
mod flow;
mod footprint;
mod ingest;
mod machine;
mod nats;
mod redis;
mod report;
mod resp;
mod sse;
mod store;

use std::time::{Duration, Instant};

use report::Row;

/// Sizes of each run; `--quick` shrinks them for a fast look.
pub struct Plan {
    /// Smaller sizes, for a fast look; targets are not judged.
    pub quick: bool,
    /// How often each row is measured (its spread is over these runs).
    pub runs: usize,
    pub latency_samples: usize,
    pub burst: usize,
    pub ingest_messages: usize,
    pub backlog_broadcasts: usize,
    pub sse_hosts: usize,
    pub idle: Duration,
}

/// A hub for the rows that register tens of thousands of hosts or hold as
/// many streams: its `max_hosts` and `max_connections` (10,000 by default)
/// raised above what they need.
pub const FLEET_LIMITS: &[(&str, &str)] = &[
    ("MESYNC_MAX_HOSTS", "1000000"),
    ("MESYNC_MAX_CONNECTIONS", "100000"),
];

const ROWS: [&str; 11] = [
    "latency",
    "burst",
    "ingest",
    "broadcast",
    "backlog",
    "dedupe",
    "sse",
    "idle",
    "binary",
    "flood",
    "nats",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (plan, only) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(why) => {
            eprintln!("{why}");
            std::process::exit(2);
        }
    };
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);

    machine::raise_fd_limit();
    let machine = machine::describe();
    let load_before = machine::load();
    eprintln!("machine: {machine}");
    eprintln!("load before: {load_before}");
    let started = Instant::now();

    let mut rows: Vec<Row> = Vec::new();
    if wanted("latency") {
        rows.extend(flow::latency(&plan));
    }
    if wanted("burst") {
        rows.push(burst::run(&plan));
    }
    if wanted("ingest") {
        rows.push(ingest::run(&plan));
    }
    if wanted("broadcast") {
        rows.extend(store::broadcast(&plan));
    }
    if wanted("backlog") {
        rows.push(store::backlog(&plan));
    }
    if wanted("dedupe") {
        rows.push(ingest::dedupe(&plan));
    }
    if wanted("sse") {
        rows.extend(sse::run(&plan));
    }
    if wanted("idle") {
        rows.extend(footprint::idle_daemon(&plan));
    }
    if wanted("binary") {
        rows.extend(footprint::binary());
    }
    if wanted("flood") {
        rows.extend(flood::run());
    }
    if wanted("nats") {
        rows.extend(nats::run(&plan));
    }

    println!();
    println!("machine: {machine}");
    println!("open-file limit: {}", machine::fd_limit());
    println!("load (/proc/loadavg) before: {load_before}");
    println!("load (/proc/loadavg) after:  {}", machine::load());
    let quick = if plan.quick {
        " (--quick: smaller sizes, targets not judged)"
    } else {
        ""
    };
    let took = started.elapsed().as_secs_f64();
    println!("{} runs per row{quick}; took {took:.0} s", plan.runs);
    println!("mesync ÷ ref: the median of the per-run ratios (each run measures mesync and its references back to back).");
    println!(
        "For times, above 1 means mesync is slower; for rates, above 1 means mesync is faster."
    );
    report::print_table(&rows);
}

/// The plan and the rows asked for, from the command line (`cargo bench`
/// appends `--bench`, which is ignored like any other flag).
fn parse(args: &[String]) -> Result<(Plan, Vec<String>), String> {
    let quick = args.iter().any(|a| a == "--quick");
    let mut plan = if quick {
        Plan {
            quick,
            runs: 3,
            latency_samples: 100,
            burst: 2_000,
            ingest_messages: 50_000,
            backlog_broadcasts: 10_000,
            sse_hosts: 1_000,
            idle: Duration::from_secs(5),
        }
    } else {
        Plan {
            quick,
            runs: 5,
            latency_samples: 500,
            burst: 10_000,
            ingest_messages: 300_000,
            backlog_broadcasts: 100_000,
            sse_hosts: 10_000,
            idle: Duration::from_secs(30),
        }
    };
    let runs_at = args.iter().position(|a| a == "--runs").map(|i| i + 1);
    if let Some(runs) = runs_at.map(|i| args.get(i).map_or("", String::as_str)) {
        match runs.parse::<usize>() {
            Ok(n) if n > 0 => plan.runs = n,
            _ => {
                return Err(format!(
                    "--runs takes a number of runs of at least 1, not {runs:?}"
                ))
            }
        }
    }
    let only: Vec<String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with("--") && Some(*i) != runs_at)
        .map(|(_, a)| a.clone())
        .collect();
    if let Some(bad) = only.iter().find(|a| !ROWS.contains(&a.as_str())) {
        return Err(format!(
            "no row is called {bad:?}; the rows are: {}",
            ROWS.join(" ")
        ));
    }
    Ok((plan, only))
}

/// A progress line on stderr, so a long run shows where it is.
pub fn progress(row: &str, run: usize, runs: usize) {
    eprintln!("{row}: run {} of {runs}", run + 1);
}
