//! The chaos run: a hub and three daemons under steady load while a random
//! one is killed with `kill -9` every few seconds and restarted, the hub is
//! frozen (SIGSTOP) for a while, and a loopback proxy between the daemons
//! and the hub cuts connections at random. At the end every message is
//! checked against every inbox it was meant for, and every hook run counted.
//!
//! It prints cycles, messages, lost, doubled and hook runs 0/1/2+, and fails
//! on any loss, any double and any hook that never ran. A hook run twice is
//! reported, not failed: a daemon killed between starting a hook and
//! clearing its mark runs it again (the documented exception).
//!
//! `cargo test --test chaos` runs it for 30 s; `MESYNC_CHAOS_SECONDS=1200
//! cargo test --release --test chaos -- --nocapture` (or `just chaos 20`)
//! runs it for 20 minutes. `MESYNC_CHAOS_SEED` repeats a run's choices.

mod common;
#[path = "chaos/proxy.rs"]
mod proxy;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::daemon::{inbox_ids, install_script, ledger_ids, lines};
use common::{signal, Hub, Machine, Proc};
use mesync::message::{Message, Priority};
use mesync::spool::{Queue, Spool};

const HOSTS: [&str; 3] = ["c0", "c1", "c2"];
const KIND: &str = "chaos.tick";
/// The hub is frozen this long, once early in the run and then every FREEZE_EVERY.
const FREEZE: Duration = Duration::from_secs(5);
const FREEZE_EVERY: Duration = Duration::from_secs(300);
/// Most messages one run may write, whatever its length.
const MAX_MESSAGES: usize = 500_000;

/// xorshift64*: small, seeded, and enough to pick victims and pauses.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from))
    }
}

/// One message written into an outbox: its id, sender and target host.
struct Sent {
    id: String,
    from: usize,
    to: Option<usize>,
}

/// What happened to the fault injection.
#[derive(Default)]
struct Faults {
    kills_hub: usize,
    kills_daemons: usize,
    freezes: usize,
}

#[test]
fn chaos_kill_9_freeze_and_cuts_lose_and_double_nothing() {
    let seconds: u64 = std::env::var("MESYNC_CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let seed: u64 = std::env::var("MESYNC_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64 | 1)
        });
    println!("chaos: {seconds} s, seed {seed}");
    let mut rng = Rng(seed);

    let mut hub = Hub::start();
    let proxy = proxy::Proxy::start(hub.port);
    let url = format!("http://{}", proxy.addr);
    let machines: Vec<Machine> = HOSTS.iter().map(|h| Machine::new(h, &url)).collect();
    let hook_logs: Vec<PathBuf> = machines
        .iter()
        .map(|m| {
            let log = m.base.with_file_name("hook-runs.log");
            let body = format!("echo \"$MESYNC_MESSAGE_ID\" >> {}\n", log.display());
            install_script(&m.base.join("hooks").join(KIND), &body);
            log
        })
        .collect();
    let mut daemons: Vec<Proc> = machines.iter().map(|m| m.start_daemon()).collect();
    for h in HOSTS {
        hub.wait_streaming(h);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let bases: Vec<PathBuf> = machines.iter().map(|m| m.base.clone()).collect();
    let producer = {
        let (stop, seed) = (stop.clone(), rng.next());
        thread::spawn(move || produce(&bases, &stop, seed))
    };

    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let mut faults = Faults::default();
    let mut next_freeze = started + Duration::from_secs(seconds / 3);
    while Instant::now() < end {
        thread::sleep(
            rng.millis(1000, 3500)
                .min(end.saturating_duration_since(Instant::now())),
        );
        for _ in 0..=rng.below(2) {
            proxy.cut_one(rng.next());
        }
        if Instant::now() >= next_freeze {
            signal(hub.proc.pid(), "STOP");
            thread::sleep(FREEZE);
            signal(hub.proc.pid(), "CONT");
            faults.freezes += 1;
            next_freeze += FREEZE_EVERY;
            continue;
        }
        match rng.below(4) as usize {
            0 => {
                hub.proc.kill9();
                hub.restart(&[]);
                faults.kills_hub += 1;
            }
            i => {
                let i = i - 1;
                daemons[i].kill9();
                daemons[i] = machines[i].start_daemon();
                faults.kills_daemons += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let sent = producer.join().expect("producer");

    // Everything still in flight gets its time to arrive; the run then
    // reports what is missing rather than waiting forever.
    let settle = Duration::from_secs(120);
    let settled = Instant::now();
    let mut tally = Tally::of(&sent, &machines, &hook_logs);
    while !tally.complete() && settled.elapsed() < settle {
        thread::sleep(Duration::from_millis(500));
        tally = Tally::of(&sent, &machines, &hook_logs);
    }
    let cycles = faults.kills_hub + faults.kills_daemons;
    println!(
        "chaos: {cycles} kill -9 cycles (hub {}, daemons {}), {} hub freezes of {} s, {} connection cuts",
        faults.kills_hub,
        faults.kills_daemons,
        faults.freezes,
        FREEZE.as_secs(),
        proxy.cuts.load(Ordering::Relaxed)
    );
    println!(
        "chaos: {} messages, {} deliveries expected, {} made, {} lost, {} doubled, hook runs 0/1/2+: {}/{}/{}, settled in {:.1} s",
        sent.len(),
        tally.expected,
        tally.made,
        tally.lost,
        tally.doubled,
        tally.hooks[0],
        tally.hooks[1],
        tally.hooks[2],
        settled.elapsed().as_secs_f64()
    );
    assert!(cycles > 0 && !sent.is_empty(), "the run did nothing");
    assert_eq!(tally.lost, 0, "messages lost (seed {seed})");
    assert_eq!(tally.doubled, 0, "messages doubled (seed {seed})");
    assert_eq!(tally.hooks[0], 0, "hooks never run (seed {seed})");
    drop(daemons);
}

/// Writes messages into the outboxes, a few every few ms, until `stop`.
fn produce(bases: &[PathBuf], stop: &AtomicBool, seed: u64) -> Vec<Sent> {
    let mut rng = Rng(seed);
    let spools: Vec<Spool> = bases
        .iter()
        .map(|b| Spool::open(b).expect("spool"))
        .collect();
    let mut sent = Vec::new();
    while !stop.load(Ordering::Relaxed) && sent.len() < MAX_MESSAGES {
        for _ in 0..=rng.below(3) {
            let from = rng.below(HOSTS.len() as u64) as usize;
            // One message in three is a broadcast.
            let to = match rng.below(3) {
                0 => None,
                _ => Some((from + 1 + rng.below(2) as usize) % HOSTS.len()),
            };
            let payload = serde_json::json!({ "n": sent.len() });
            let msg = Message::new(
                KIND,
                HOSTS[from],
                to.map(|t| HOSTS[t]),
                Priority::Normal,
                payload,
            )
            .expect("valid message");
            spools[from]
                .write(Queue::Outbox, &msg.file_name(), &msg.to_json_bytes())
                .expect("writing an outbox file");
            sent.push(Sent {
                id: msg.id.to_string(),
                from,
                to,
            });
        }
        thread::sleep(Duration::from_millis(10 + rng.below(30)));
    }
    sent
}

/// The verdict of one look at every inbox, ledger and hook log.
struct Tally {
    expected: usize,
    made: usize,
    lost: usize,
    doubled: usize,
    /// Expected deliveries whose hook ran 0, 1, 2 or more times.
    hooks: [usize; 3],
}

impl Tally {
    fn of(sent: &[Sent], machines: &[Machine], hook_logs: &[PathBuf]) -> Tally {
        let mut t = Tally {
            expected: 0,
            made: 0,
            lost: 0,
            doubled: 0,
            hooks: [0; 3],
        };
        for (h, m) in machines.iter().enumerate() {
            let want: HashSet<&str> = sent
                .iter()
                .filter(|s| s.to.map_or(s.from != h, |to| to == h))
                .map(|s| s.id.as_str())
                .collect();
            let have = inbox_ids(m);
            let mut written: HashMap<String, usize> = HashMap::new();
            for id in ledger_ids(m) {
                *written.entry(id).or_default() += 1;
            }
            let mut runs: HashMap<String, usize> = HashMap::new();
            for id in lines(&hook_logs[h]) {
                *runs.entry(id).or_default() += 1;
            }
            t.expected += want.len();
            t.made += have.iter().filter(|id| want.contains(id.as_str())).count();
            t.lost += want.iter().filter(|id| !have.contains(**id)).count();
            // Written twice, or to a host it was not meant for.
            t.doubled += written.values().filter(|n| **n > 1).count();
            t.doubled += have.iter().filter(|id| !want.contains(id.as_str())).count();
            for id in &want {
                let n = runs.get(*id).copied().unwrap_or(0);
                t.hooks[n.min(2)] += 1;
            }
        }
        t
    }

    fn complete(&self) -> bool {
        self.lost == 0 && self.hooks[0] == 0
    }
}
