//! The benchmark of SPEC §9: real `mesync` processes on loopback, one table.
//!
//! Run with `cargo bench --bench mesync` (or `just bench`); add `-- --quick`
//! for smaller sample counts. It is not part of `cargo test`: performance is
//! measured here and recorded in BENCHMARKS.md, never asserted in tests.
//! Every load loop is bounded in count and in time, and only 127.0.0.1 is used.

#[path = "../../tests/common/mod.rs"]
mod common;

mod flow;
mod footprint;
mod ingest;
mod sse;
mod store;

use std::time::Duration;

/// One row of the result table.
pub struct Row {
    pub what: &'static str,
    pub target: &'static str,
    pub measured: String,
    pub met: Option<bool>,
}

/// Sizes of each run; `--quick` shrinks them for a fast look.
pub struct Plan {
    pub latency_samples: usize,
    pub burst: usize,
    pub ingest_messages: usize,
    pub backlog_broadcasts: usize,
    pub sse_hosts: usize,
    pub idle: Duration,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes `--bench`; accept and ignore it.
    let quick = args.iter().any(|a| a == "--quick");
    let only: Vec<&String> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let plan = if quick {
        Plan {
            latency_samples: 100,
            burst: 2_000,
            ingest_messages: 50_000,
            backlog_broadcasts: 10_000,
            sse_hosts: 1_000,
            idle: Duration::from_secs(5),
        }
    } else {
        Plan {
            latency_samples: 500,
            burst: 10_000,
            ingest_messages: 300_000,
            backlog_broadcasts: 100_000,
            sse_hosts: 5_000,
            idle: Duration::from_secs(30),
        }
    };
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o.as_str() == name);

    let mut rows = Vec::new();
    if wanted("latency") {
        rows.extend(flow::latency(&plan));
    }
    if wanted("burst") {
        rows.push(flow::burst(&plan));
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
    print_table(&rows);
}

fn print_table(rows: &[Row]) {
    println!();
    println!("| what | target | measured | met |");
    println!("|---|---|---|---|");
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        println!("| {} | {} | {} | {met} |", r.what, r.target, r.measured);
    }
}

/// The `p`-th percentile (0..=100) of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
