//! The hub's memory: hosts, their queues of unacked messages, and the
//! wake-ups that push new queue entries to open streams and waiting polls.
//!
//! Only the store writer (`writer.rs`) and the start-up replay change queues
//! and registrations, in log order and only once the records are durable;
//! request handlers read. A stored message is held once (`Arc<Stored>`) no
//! matter how many queues refer to it, which keeps broadcasts cheap.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use dashmap::DashMap;
use jiff::Timestamp;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::metrics::Metrics;
use super::queue::Entries;
use crate::api::HostInfo;

/// Capacity of the hub-wide feed (`/v1/stream`); a watcher that falls this
/// far behind skips ahead instead of holding messages in memory.
const FEED_CAPACITY: usize = 1024;

/// One accepted message, shared by every queue that holds it.
pub struct Stored {
    pub id: Uuid,
    /// The message as compact one-line JSON: stored, streamed and polled as is.
    pub json: Box<str>,
    /// When the hub accepted it, in Unix milliseconds (retention, dedupe).
    pub accepted_ms: i64,
    /// The segment file that holds its newest record; compaction moves it.
    pub segment: AtomicU64,
}

/// A host's registration and queue, guarded by the host's mutex.
#[derive(Default)]
pub struct HostQueue {
    /// `None` while the host never connected (or was deleted): a targeted
    /// message is still queued for it, but broadcasts skip it.
    pub registered_at: Option<Timestamp>,
    /// The last sequence number issued to this host; never goes down.
    pub last_seq: u64,
    pub entries: Entries,
    /// Cancelled when the host is deleted, which ends its open streams.
    pub epoch: CancellationToken,
}

impl HostQueue {
    pub fn next_seq(&mut self) -> u64 {
        self.last_seq += 1;
        self.last_seq
    }

    /// The sequence numbers of queued entries whose id is in `ids`.
    pub fn find(&self, ids: &HashSet<Uuid>) -> Vec<u64> {
        let mut found = Vec::new();
        for (seq, m) in self.entries.iter() {
            if ids.contains(&m.id) {
                found.push(seq);
                // Acks usually name the oldest entries: stop once all are found.
                if found.len() == ids.len() {
                    break;
                }
            }
        }
        found
    }

    /// Removes the entries with these ids; returns how many were removed.
    pub fn remove_ids(&mut self, ids: &HashSet<Uuid>) -> usize {
        let seqs = self.find(ids);
        for seq in &seqs {
            self.entries.remove(*seq);
        }
        seqs.len()
    }

    /// Forgets the registration and the queue, keeping `last_seq` so that
    /// sequence numbers are never reused.
    pub fn deregister(&mut self) {
        self.registered_at = None;
        self.entries.clear();
        self.epoch.cancel();
        self.epoch = CancellationToken::new();
    }
}

/// A host as the hub knows it.
pub struct HostState {
    pub id: String,
    queue: Mutex<HostQueue>,
    /// The newest queued sequence number; wakes streams and long-polls.
    pub changed: watch::Sender<u64>,
    pub streams: AtomicUsize,
    last_seen_ms: AtomicI64,
}

impl HostState {
    pub fn new(id: &str) -> HostState {
        HostState {
            id: id.to_string(),
            queue: Mutex::new(HostQueue::default()),
            changed: watch::Sender::new(0),
            streams: AtomicUsize::new(0),
            last_seen_ms: AtomicI64::new(0),
        }
    }

    /// The queue, held for a few map operations at most (never across I/O or `.await`).
    pub fn queue(&self) -> MutexGuard<'_, HostQueue> {
        // A panic while holding the lock cannot leave the map half-updated
        // in a way that matters more than losing the hub, so keep serving.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Up to `limit` queued entries with a sequence number after `after`.
    pub fn after(&self, after: u64, limit: usize) -> Vec<(u64, Arc<Stored>)> {
        let q = self.queue();
        q.entries
            .after(after)
            .take(limit)
            .map(|(s, m)| (s, m.clone()))
            .collect()
    }

    /// A cursor the hub can honour: one larger than any issued sequence
    /// number replays the whole backlog instead of silently skipping.
    pub fn checked_cursor(&self, cursor: u64) -> u64 {
        let last = self.queue().last_seq;
        if cursor > last {
            tracing::warn!(host = %self.id, cursor, last_seq = last,
                "cursor is beyond the last sequence number issued; replaying the whole backlog");
            return 0;
        }
        cursor
    }

    pub fn touch(&self) {
        self.last_seen_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// When the host was last seen, if ever since it was known: now while a
    /// stream is open.
    pub fn last_seen(&self) -> Option<Timestamp> {
        if self.streams.load(Ordering::Relaxed) > 0 {
            return Some(Timestamp::now());
        }
        match self.last_seen_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Timestamp::from_millisecond(ms).ok(),
        }
    }

    /// Restores a last-seen time read back from the store.
    pub fn seen_at(&self, at: Timestamp) {
        self.last_seen_ms
            .fetch_max(at.as_millisecond(), Ordering::Relaxed);
    }

    pub fn is_registered(&self) -> bool {
        self.queue().registered_at.is_some()
    }

    pub fn epoch(&self) -> CancellationToken {
        self.queue().epoch.clone()
    }

    /// The `GET /v1/hosts` view, or `None` when the host is not registered.
    pub fn info(&self) -> Option<HostInfo> {
        let (registered_at, pending) = {
            let q = self.queue();
            (q.registered_at?, q.entries.len())
        };
        let streams = self.streams.load(Ordering::Relaxed);
        let last_seen = self.last_seen().unwrap_or(registered_at).max(registered_at);
        Some(HostInfo {
            id: self.id.clone(),
            registered_at: registered_at.to_string(),
            last_seen: last_seen.to_string(),
            streams,
            pending,
        })
    }
}

/// Limits and timings the handlers and the writer need from the settings.
#[derive(Debug, Clone)]
pub struct Limits {
    pub token: Option<String>,
    pub keepalive: Duration,
    pub retention: Duration,
    pub dedupe_window: Duration,
    pub max_message_bytes: u64,
}

/// Everything the handlers and the writer share.
pub struct State {
    pub hosts: DashMap<String, Arc<HostState>>,
    /// Every accepted message, for `/v1/stream` watchers (no replay, no ack).
    pub feed: broadcast::Sender<Arc<Stored>>,
    pub metrics: Metrics,
    pub limits: Limits,
}

impl State {
    pub fn new(limits: Limits) -> State {
        State {
            hosts: DashMap::new(),
            feed: broadcast::Sender::new(FEED_CAPACITY),
            metrics: Metrics::default(),
            limits,
        }
    }

    pub fn host(&self, id: &str) -> Option<Arc<HostState>> {
        self.hosts.get(id).map(|h| h.value().clone())
    }

    /// The host, created unregistered if unknown. Only the writer and the
    /// replay call this, so the map only grows through the log.
    pub fn host_or_insert(&self, id: &str) -> Arc<HostState> {
        if let Some(h) = self.host(id) {
            return h;
        }
        self.hosts
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(HostState::new(id)))
            .value()
            .clone()
    }

    /// Every host, sorted by id (the map is unordered).
    pub fn all_hosts(&self) -> Vec<Arc<HostState>> {
        let mut hosts: Vec<Arc<HostState>> = self.hosts.iter().map(|e| e.value().clone()).collect();
        hosts.sort_by(|a, b| a.id.cmp(&b.id));
        hosts
    }

    /// Registered hosts as `GET /v1/hosts` lists them.
    pub fn host_infos(&self) -> Vec<HostInfo> {
        self.all_hosts().iter().filter_map(|h| h.info()).collect()
    }

    /// (host, queue depth) of every host that is registered or has a queue.
    pub fn pending(&self) -> Vec<(String, usize)> {
        self.all_hosts()
            .iter()
            .filter_map(|h| {
                let q = h.queue();
                (q.registered_at.is_some() || !q.entries.is_empty())
                    .then(|| (h.id.clone(), q.entries.len()))
            })
            .collect()
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}
