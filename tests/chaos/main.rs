//! The chaos run: a hub and three daemons under steady load while a random
//! one of them is killed with SIGKILL and restarted every few seconds, the
//! hub is frozen (SIGSTOP) now and then, and every connection between the
//! daemons and the hub is cut at random moments. At the end every message is
//! checked against every inbox it was meant for and every hook run.
//!
//! `cargo test --test chaos` runs it for 30 seconds. A longer run:
//!
//! ```sh
//! MESYNC_CHAOS_SECONDS=1200 cargo test --test chaos -- --nocapture
//! just chaos 20      # the same, in minutes
//! ```
//!
//! `MESYNC_CHAOS_SEED=N` repeats a run's sequence of faults. The run fails on
//! any message lost, delivered twice or to the wrong host, or hook not run.

#[path = "../common/mod.rs"]
mod common;
mod parts;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::daemon::{fill_outbox_at, install_script, lines};
use common::{signal, Hub, Machine, Proc};
use parts::{Consumer, Proxy, Rng};

const HOSTS: [&str; 3] = ["chaos-1", "chaos-2", "chaos-3"];
const KIND: &str = "chaos.ping";

/// What was sent: each message id with the hosts it is meant for.
type Sent = Arc<Mutex<Vec<(String, Vec<usize>)>>>;

#[test]
fn chaos_run_loses_doubles_and_skips_nothing() {
    let seconds: u64 = env_number("MESYNC_CHAOS_SECONDS").unwrap_or(30);
    let seed = env_number("MESYNC_CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!("chaos: {seconds} s, seed {seed} (MESYNC_CHAOS_SEED={seed} repeats it)");
    let mut rng = Rng::new(seed);

    let mut hub = Hub::start();
    let proxy = Proxy::start(hub.port);
    let url = format!("http://127.0.0.1:{}", proxy.port());
    let machines: Vec<Machine> = HOSTS.iter().map(|h| Machine::new(h, &url)).collect();
    for m in &machines {
        let log = m.base.join("hook.log");
        install_script(
            &m.base.join("hooks").join(KIND),
            &format!("echo \"$MESYNC_MESSAGE_ID\" >> {}\n", log.display()),
        );
    }
    let mut daemons: Vec<Proc> = machines.iter().map(Machine::start_daemon).collect();
    for h in HOSTS {
        hub.wait_streaming(h);
    }
    let consumers: Vec<Consumer> = machines.iter().map(|m| Consumer::start(&m.base)).collect();

    // Steady load from a thread of its own: a few messages every 20 ms into a
    // random machine's outbox, broadcast or targeted, whether its daemon runs or not.
    let sent: Sent = Arc::default();
    let loading = Arc::new(AtomicBool::new(true));
    let load = {
        let (sent, loading) = (sent.clone(), loading.clone());
        let bases: Vec<_> = machines.iter().map(|m| m.base.clone()).collect();
        let mut rng = Rng::new(seed ^ 0x5eed);
        std::thread::spawn(move || {
            while loading.load(Ordering::Relaxed) {
                let from = rng.below(3);
                let (target, to) = match rng.below(3) {
                    0 => (None, (0..3).filter(|&i| i != from).collect::<Vec<_>>()),
                    _ => {
                        let t = (from + 1 + rng.below(2)) % 3;
                        (Some(HOSTS[t]), vec![t])
                    }
                };
                let ids = fill_outbox_at(&bases[from], HOSTS[from], KIND, target, 1 + rng.below(4));
                let mut sent = sent.lock().unwrap();
                sent.extend(ids.into_iter().map(|id| (id, to.clone())));
                drop(sent);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    // The faults, one every 0.5 to 3 seconds.
    let mut faults: HashMap<&str, usize> = HashMap::new();
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(500 + rng.below(2500) as u64));
        let fault = match rng.below(10) {
            0..=1 => {
                hub.proc.kill9();
                std::thread::sleep(Duration::from_millis(rng.below(500) as u64));
                hub.restart(&[]);
                "hub kill -9"
            }
            2..=6 => {
                let i = rng.below(3);
                daemons[i].kill9();
                std::thread::sleep(Duration::from_millis(rng.below(300) as u64));
                daemons[i] = machines[i].start_daemon();
                "daemon kill -9"
            }
            7 => {
                signal(hub.proc.pid(), "STOP");
                std::thread::sleep(Duration::from_millis(500 + rng.below(2500) as u64));
                signal(hub.proc.pid(), "CONT");
                "hub SIGSTOP"
            }
            _ => {
                proxy.cut();
                "connection cut"
            }
        };
        *faults.entry(fault).or_default() += 1;
    }
    loading.store(false, Ordering::Relaxed);
    load.join().expect("the load thread");

    // Settle: every daemon running, then every message where it belongs.
    for (i, d) in daemons.iter_mut().enumerate() {
        if !d.is_running() {
            eprintln!(
                "chaos: {} was not running at the end; restarting it",
                HOSTS[i]
            );
            *d = machines[i].start_daemon();
        }
    }
    let sent = sent.lock().unwrap().clone();
    let expected: usize = sent.iter().map(|(_, to)| to.len()).sum();
    let settle = Duration::from_secs(60 + seconds / 10);
    let delivered = || {
        let counts: Vec<_> = consumers.iter().map(Consumer::counts).collect();
        sent.iter()
            .flat_map(|(id, to)| to.iter().map(move |&t| (id, t)))
            .filter(|(id, t)| counts[*t].contains_key(*id))
            .count()
    };
    let arrived = wait_settled(settle, || delivered() == expected);
    let hook_runs = |i: usize| -> HashMap<String, usize> {
        let mut runs = HashMap::new();
        for id in lines(&machines[i].base.join("hook.log")) {
            *runs.entry(id).or_default() += 1;
        }
        runs
    };
    let hooked = || {
        let runs: Vec<_> = (0..3).map(hook_runs).collect();
        sent.iter()
            .flat_map(|(id, to)| to.iter().map(move |&t| (id, t)))
            .all(|(id, t)| runs[t].contains_key(id))
    };
    let all_hooked = arrived && wait_settled(Duration::from_secs(30), hooked);
    // Once the hub holds nothing unacked, nothing (not even a double) can
    // come any more; then the consumers take what is still in the inboxes.
    let settled = arrived
        && wait_settled(Duration::from_secs(30), || {
            HOSTS
                .iter()
                .all(|h| hub.host(h).is_some_and(|i| i["pending"] == 0))
        })
        && wait_settled(Duration::from_secs(10), || {
            machines.iter().all(|m| m.files("inbox").is_empty())
        });

    let counts: Vec<_> = consumers.iter().map(Consumer::counts).collect();
    let runs: Vec<_> = (0..3).map(hook_runs).collect();
    let mut report = Report::default();
    let mut meant: Vec<HashSet<&str>> = vec![HashSet::new(); 3];
    for (id, to) in &sent {
        for &t in to {
            meant[t].insert(id);
            match counts[t].get(id).copied().unwrap_or(0) {
                0 => report.lost += 1,
                1 => report.made += 1,
                _ => {
                    report.made += 1;
                    report.doubled += 1;
                }
            }
            match runs[t].get(id).copied().unwrap_or(0) {
                0 => report.hooks_never += 1,
                1 => report.hooks_once += 1,
                _ => report.hooks_more += 1,
            }
        }
    }
    for t in 0..3 {
        report.misdelivered += counts[t]
            .keys()
            .filter(|id| !meant[t].contains(id.as_str()))
            .count();
    }
    let cycles: usize = faults.values().sum();
    let mut kinds: Vec<_> = faults.iter().collect();
    kinds.sort();
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    println!(
        "chaos: {seconds} s, seed {seed}: {cycles} faults ({})",
        kinds.join(", ")
    );
    println!(
        "messages: {} sent, {expected} deliveries expected, {} made; lost {}, doubled {}, to the wrong host {}",
        sent.len(),
        report.made,
        report.lost,
        report.doubled,
        report.misdelivered
    );
    println!(
        "hooks: ran once {}, never {}, twice or more {}",
        report.hooks_once, report.hooks_never, report.hooks_more
    );
    assert!(
        arrived && all_hooked && settled,
        "not everything arrived, was hooked or was acked in time"
    );
    assert_eq!(
        (
            report.lost,
            report.doubled,
            report.misdelivered,
            report.hooks_never
        ),
        (0, 0, 0, 0),
        "lost, doubled, misdelivered, hooks never run"
    );
    drop(daemons);
}

#[derive(Default)]
struct Report {
    made: usize,
    lost: usize,
    doubled: usize,
    misdelivered: usize,
    hooks_once: usize,
    hooks_never: usize,
    hooks_more: usize,
}

/// Waits up to `timeout` for `cond`; says whether it came true.
fn wait_settled(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    cond()
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}
