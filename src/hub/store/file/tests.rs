//! The file store against a plain reference model of its promises: random
//! traffic (registrations, broadcasts, targeted messages, acks, deletions)
//! must leave every host's queue as the reference says, live, after a replay
//! from the files, and after compaction rewrote old segments; and a host's
//! `pending` must always equal the length of its queue.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::{to_raw_value, RawValue};
use uuid::Uuid;

use super::{FileConfig, FileStore};
use crate::api::ItemStatus;
use crate::hub::metrics::Metrics;
use crate::hub::store::{Incoming, Store};

const HOSTS: [&str; 6] = ["a", "b", "c", "d", "e", "z"];

/// The promises, naively: a queue per host.
#[derive(Default, Debug, PartialEq)]
struct Reference {
    registered: HashSet<String>,
    queues: BTreeMap<String, Vec<(u64, Uuid)>>,
    last_seq: u64,
}

impl Reference {
    fn register(&mut self, h: &str) {
        self.registered.insert(h.to_string());
    }

    fn append(&mut self, batch: &[(Uuid, String, Option<String>)]) -> Vec<ItemStatus> {
        let mut seen = HashSet::new();
        batch
            .iter()
            .map(|(id, source, target)| {
                self.register(source);
                if !seen.insert(*id) {
                    return ItemStatus::Duplicate;
                }
                self.last_seq += 1;
                let seq = self.last_seq;
                let to: Vec<String> = match target {
                    Some(t) => vec![t.clone()],
                    None => self
                        .registered
                        .iter()
                        .filter(|h| *h != source)
                        .cloned()
                        .collect(),
                };
                for h in to {
                    self.queues.entry(h).or_default().push((seq, *id));
                }
                ItemStatus::Accepted
            })
            .collect()
    }

    fn ack(&mut self, h: &str, ids: &[Uuid]) -> usize {
        let q = self.queues.entry(h.to_string()).or_default();
        let before = q.len();
        q.retain(|(_, id)| !ids.contains(id));
        before - q.len()
    }

    fn delete(&mut self, h: &str) -> bool {
        let q = self.queues.entry(h.to_string()).or_default();
        let existed = self.registered.remove(h) || !q.is_empty();
        q.clear();
        existed
    }
}

/// Deterministic pseudo-random numbers (xorshift), so a failure repeats.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    fn host(&mut self) -> &'static str {
        HOSTS[self.below(HOSTS.len() as u64) as usize]
    }
}

fn config(dir: &std::path::Path, dedupe_window: Duration) -> FileConfig {
    FileConfig {
        dir: dir.to_path_buf(),
        retention: Duration::from_secs(86_400),
        dedupe_window,
        repair: false,
    }
}

async fn open(cfg: &FileConfig) -> FileStore {
    FileStore::open(cfg.clone(), Arc::new(Metrics::default()))
        .await
        .unwrap()
}

fn body(id: Uuid, n: u64) -> Box<RawValue> {
    to_raw_value(&serde_json::json!({"id": id, "n": n, "text": "quote \" and \\ and ü"})).unwrap()
}

/// Every host's (registered, queue), checking `pending` against the queue.
async fn snapshot(store: &FileStore) -> BTreeMap<String, (bool, Vec<(u64, Uuid)>)> {
    let known: HashMap<String, (bool, usize)> = store
        .hosts()
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.id, (h.registered_at.is_some(), h.pending)))
        .collect();
    let mut all = BTreeMap::new();
    for h in HOSTS {
        let queue: Vec<(u64, Uuid)> = store
            .read(h, 0, 100_000)
            .await
            .unwrap()
            .iter()
            .map(|d| {
                let v: serde_json::Value = serde_json::from_str(d.json.get()).unwrap();
                (d.seq, v["id"].as_str().unwrap().parse().unwrap())
            })
            .collect();
        let (registered, pending) = known.get(h).copied().unwrap_or_default();
        assert_eq!(
            pending,
            queue.len(),
            "pending of {h} disagrees with its queue"
        );
        all.insert(h.to_string(), (registered, queue));
    }
    all
}

fn expected(r: &Reference) -> BTreeMap<String, (bool, Vec<(u64, Uuid)>)> {
    HOSTS
        .iter()
        .map(|h| {
            let q = r.queues.get(*h).cloned().unwrap_or_default();
            (h.to_string(), (r.registered.contains(*h), q))
        })
        .collect()
}

/// One random step against both; returns a description for failures.
async fn step(rng: &mut Rng, store: &FileStore, r: &mut Reference, n: &mut u64) -> String {
    match rng.below(10) {
        0 => {
            let h = rng.host();
            store.register(h).await.unwrap();
            r.register(h);
            format!("register {h}")
        }
        1..=5 => {
            let mut batch: Vec<(Uuid, String, Option<String>)> = Vec::new();
            for _ in 0..=rng.below(3) {
                let id = if rng.below(8) == 0 && !batch.is_empty() {
                    batch[0].0
                } else {
                    Uuid::now_v7()
                };
                let target = (rng.below(3) == 0).then(|| rng.host().to_string());
                batch.push((id, rng.host().to_string(), target));
            }
            let items = batch
                .iter()
                .map(|(id, s, t)| {
                    *n += 1;
                    Incoming {
                        id: *id,
                        source: s.clone(),
                        target: t.clone(),
                        json: body(*id, *n),
                    }
                })
                .collect();
            assert_eq!(
                store.append(items).await.unwrap(),
                r.append(&batch),
                "{batch:?}"
            );
            format!("append {batch:?}")
        }
        6..=8 => {
            let h = rng.host();
            let queue = r.queues.get(h).cloned().unwrap_or_default();
            let mut ids: Vec<Uuid> = queue
                .iter()
                .filter(|_| rng.below(3) > 0)
                .map(|(_, id)| *id)
                .collect();
            ids.push(Uuid::now_v7());
            let acked = store.ack(h, ids.clone()).await.unwrap();
            assert_eq!(acked, r.ack(h, &ids), "ack {h}");
            format!("ack {h} {}", ids.len())
        }
        _ => {
            let h = rng.host();
            assert_eq!(
                store.delete_host(h).await.unwrap(),
                r.delete(h),
                "delete {h}"
            );
            format!("delete {h}")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_replayed_and_compacted_states_match_the_reference() {
    let tmp = tempfile::tempdir().unwrap();
    // A zero window lets every closed segment be compacted at once.
    let cfg = config(tmp.path(), Duration::ZERO);
    let mut store = open(&cfg).await;
    let (mut rng, mut r, mut n) = (Rng(0x9E37_79B9_7F4A_7C15), Reference::default(), 0);
    let mut history = Vec::new();
    for i in 0..600 {
        history.push(step(&mut rng, &store, &mut r, &mut n).await);
        if i % 25 == 24 {
            let live = snapshot(&store).await;
            assert_eq!(live, expected(&r), "live, after {history:#?}");
            assert_eq!(store.last_seq(), r.last_seq);
            if i % 50 == 49 {
                store.sweep_now().await;
                assert_eq!(snapshot(&store).await, live, "after compaction");
            }
            store.close().await;
            store = open(&cfg).await;
            assert_eq!(snapshot(&store).await, live, "after a replay");
            assert_eq!(store.last_seq(), r.last_seq);
        }
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgotten_and_compacted_messages_leave_queues_and_dedupe_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), Duration::ZERO);
    let store = open(&cfg).await;
    for h in ["b", "c", "d"] {
        store.register(h).await.unwrap();
    }
    // Enough broadcasts to fill several index chunks.
    let ids: Vec<Uuid> = (0..10_000).map(|_| Uuid::now_v7()).collect();
    for chunk in ids.chunks(1000) {
        let items = chunk
            .iter()
            .map(|id| Incoming {
                id: *id,
                source: "a".into(),
                target: None,
                json: body(*id, 0),
            })
            .collect();
        store.append(items).await.unwrap();
    }
    // c acks all, b the first 9,000, d all but the very first (so its floor
    // stays at the start while its acks span chunks that can be forgotten).
    assert_eq!(store.ack("c", ids.clone()).await.unwrap(), 10_000);
    store.ack("b", ids[..9_000].to_vec()).await.unwrap();
    store.ack("d", ids[1..].to_vec()).await.unwrap();
    // Outside the (zero) window an id is accepted again.
    let again = Incoming {
        id: ids[0],
        source: "a".into(),
        target: Some("b".into()),
        json: body(ids[0], 1),
    };
    let accepted = store.append(vec![again]).await.unwrap();
    assert_eq!(accepted, [ItemStatus::Accepted]);
    let check = |store: &FileStore| {
        let pending: Vec<usize> = store.shared.model().hosts().iter().map(|h| h.3).collect();
        assert_eq!(pending, [0, 1_001, 0, 1], "a, b, c, d");
    };
    check(&store);
    store.sweep_now().await;
    let held = store.shared.model().log.len();
    assert!(held < 6_000, "settled entries were forgotten ({held} left)");
    check(&store);
    store.close().await;
    let store = open(&cfg).await;
    store.sweep_now().await;
    check(&store);
    let b = store.read("b", 0, 100_000).await.unwrap();
    // b has the last 1,000 broadcasts and the re-posted id targeted at it.
    assert_eq!(b.len(), 1_001);
    assert_eq!(b[0].seq, 9_001);
    assert!(store.read("c", 0, 10).await.unwrap().is_empty());
    assert_eq!(store.read("d", 0, 10).await.unwrap()[0].seq, 1);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dedupe_window_survives_replay_and_compaction() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), Duration::from_secs(3600));
    let store = open(&cfg).await;
    let id = Uuid::now_v7();
    let item = || Incoming {
        id,
        source: "a".into(),
        target: Some("b".into()),
        json: body(id, 0),
    };
    assert_eq!(
        store.append(vec![item()]).await.unwrap(),
        [ItemStatus::Accepted]
    );
    store.ack("b", vec![id]).await.unwrap();
    store.close().await;
    let store = open(&cfg).await;
    store.sweep_now().await;
    assert_eq!(
        store.append(vec![item()]).await.unwrap(),
        [ItemStatus::Duplicate]
    );
    assert!(store.read("b", 0, 10).await.unwrap().is_empty());
    store.close().await;
}
