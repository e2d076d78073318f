//! The store writer: one thread that owns the segment files and is the only
//! place that changes queues, registrations and the dedupe window.
//!
//! Group commit: it takes every request waiting in its channel, encodes them
//! in order into one buffer, writes it with a single fdatasync, then applies
//! the changes to memory and answers each waiter. It never waits for more
//! work to arrive before flushing, so a lone message pays one fsync and a
//! crowd shares one. Because the log order and the apply order are the same
//! single thread's order, a replay rebuilds exactly what memory held.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::compact;
use super::error::ApiError;
use super::metrics::add;
use super::records;
use super::state::{now_ms, HostState, State, Stored};
use super::store::Store;
use crate::api::ItemStatus;

/// Requests waiting for the writer. Bounded: a full channel makes handlers
/// wait (backpressure) instead of queueing without limit.
const CHANNEL_CAPACITY: usize = 1024;
/// Most requests committed together; keeps one group's buffer modest.
const MAX_GROUP: usize = 256;

type Reply<T> = oneshot::Sender<Result<T, String>>;

/// A valid message from a `POST /v1/messages`, already encoded.
pub struct Incoming {
    pub id: Uuid,
    pub source: String,
    pub target: Option<String>,
    pub json: Box<str>,
}

enum Op {
    Post(Vec<Incoming>, Reply<Vec<ItemStatus>>),
    Register(String, Reply<Arc<HostState>>),
    Ack(Arc<HostState>, Vec<Uuid>, Reply<usize>),
    Drop(String, Reply<bool>),
    Sweep,
    Stop,
}

/// What a request will change once its records are durable.
enum Plan {
    Post(Vec<ItemStatus>, Vec<Fresh>, Reply<Vec<ItemStatus>>),
    Register(Arc<HostState>, Reply<Arc<HostState>>),
    Ack(Arc<HostState>, HashSet<Uuid>, Reply<usize>),
    Drop(Option<Arc<HostState>>, Reply<bool>),
}

/// A newly accepted message and the queue entries it creates.
struct Fresh {
    stored: Arc<Stored>,
    to: Vec<(Arc<HostState>, u64)>,
}

/// The handlers' side of the writer.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Op>,
}

impl WriterHandle {
    async fn call<T>(&self, op: impl FnOnce(Reply<T>) -> Op) -> Result<T, ApiError> {
        let stopped = || ApiError::Unavailable("the hub is shutting down".to_string());
        let (tx, rx) = oneshot::channel();
        self.tx.send(op(tx)).await.map_err(|_| stopped())?;
        rx.await
            .map_err(|_| stopped())?
            .map_err(|e| ApiError::Unavailable(format!("the hub cannot write its store: {e}")))
    }

    /// Stores, dedupes and fans out; one status per item, in order.
    pub async fn post(&self, items: Vec<Incoming>) -> Result<Vec<ItemStatus>, ApiError> {
        self.call(|r| Op::Post(items, r)).await
    }

    pub async fn register(&self, host: &str) -> Result<Arc<HostState>, ApiError> {
        let host = host.to_string();
        self.call(|r| Op::Register(host, r)).await
    }

    /// Removes these ids from the host's queue; returns how many were queued.
    pub async fn ack(&self, host: Arc<HostState>, ids: Vec<Uuid>) -> Result<usize, ApiError> {
        self.call(|r| Op::Ack(host, ids, r)).await
    }

    /// Deregisters a host and drops its queue; false if it was unknown.
    pub async fn drop_host(&self, host: &str) -> Result<bool, ApiError> {
        let host = host.to_string();
        self.call(|r| Op::Drop(host, r)).await
    }

    /// Asks for retention expiry and compaction; skipped if the writer is busy.
    pub fn sweep(&self) {
        let _ = self.tx.try_send(Op::Sweep);
    }

    /// Finishes what was sent before, then stops the writer.
    pub async fn stop(&self) {
        let _ = self.tx.send(Op::Stop).await;
    }
}

/// Starts the writer thread; `gone` is cancelled when it ends (also by a panic).
pub fn spawn(
    state: Arc<State>,
    store: Store,
    dedupe: HashMap<Uuid, i64>,
    gone: CancellationToken,
) -> anyhow::Result<WriterHandle> {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let writer = Writer {
        state,
        store,
        dedupe,
        registered_now: Vec::new(),
    };
    std::thread::Builder::new()
        .name("mesync-store".to_string())
        .spawn(move || {
            let _gone = gone.drop_guard();
            writer.run(rx);
        })?;
    let handle = WriterHandle { tx };
    // Compact and expire right away: the data dir may have aged while down.
    handle.sweep();
    Ok(handle)
}

struct Writer {
    state: Arc<State>,
    store: Store,
    /// Accepted ids and when (Unix ms), pruned past `dedupe_window`.
    dedupe: HashMap<Uuid, i64>,
    /// Hosts registered while planning the current group (undone on failure).
    registered_now: Vec<Arc<HostState>>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        while let Some(first) = rx.blocking_recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(op) => group.push(op),
                    Err(_) => break,
                }
            }
            if !self.commit(group) {
                break;
            }
        }
        tracing::debug!("store writer stopped");
    }

    /// Commits one group; false when asked to stop.
    fn commit(&mut self, group: Vec<Op>) -> bool {
        let now = now_ms();
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut plans = Vec::with_capacity(group.len());
        let (mut sweep, mut keep_going) = (false, true);
        for op in group {
            match op {
                Op::Post(items, reply) => plans.push(self.plan_post(items, reply, now, &mut buf)),
                Op::Register(host, reply) => {
                    let h = self.register(&host, now, &mut buf);
                    plans.push(Plan::Register(h, reply));
                }
                Op::Ack(host, ids, reply) => plans.push(plan_ack(host, ids, reply, &mut buf)),
                Op::Drop(host, reply) => plans.push(self.plan_drop(&host, reply, &mut buf)),
                Op::Sweep => sweep = true,
                Op::Stop => {
                    // Each host's last-seen time survives a clean restart.
                    buf.extend(compact::header(&self.state));
                    keep_going = false;
                }
            }
        }
        let written = if buf.is_empty() {
            Ok(())
        } else {
            self.store.append(&buf, now)
        };
        match written {
            Ok(()) => plans.into_iter().for_each(|p| self.apply(p)),
            Err(e) => {
                tracing::error!(error = %e, "cannot write the hub store; answering 503");
                let reason = e.to_string();
                plans.into_iter().for_each(|p| self.fail(p, &reason));
            }
        }
        self.registered_now.clear();
        if sweep {
            compact::sweep(&self.state, &mut self.store, &mut self.dedupe, now_ms());
        }
        if self.store.is_full() {
            if let Err(e) = self.store.roll(&compact::header(&self.state)) {
                tracing::error!(error = %format!("{e:#}"), "cannot begin a new segment; still appending to the old one");
            }
        }
        keep_going
    }

    /// Registers `id` if it is not (the record goes into `buf`).
    /// Registration shows in memory before the group is durable so that a
    /// broadcast later in the same group reaches the host, as the log says.
    fn register(&mut self, id: &str, now: i64, buf: &mut Vec<u8>) -> Arc<HostState> {
        let h = self.state.host_or_insert(id);
        let mut q = h.queue();
        if q.registered_at.is_none() {
            let at = Timestamp::from_millisecond(now).unwrap_or_else(|_| Timestamp::now());
            q.registered_at = Some(at);
            records::host(buf, id, Some(at), q.last_seq, None);
            self.registered_now.push(h.clone());
            tracing::info!(host = %id, "host registered");
        }
        drop(q);
        h.touch();
        h
    }

    fn plan_post(
        &mut self,
        items: Vec<Incoming>,
        reply: Reply<Vec<ItemStatus>>,
        now: i64,
        buf: &mut Vec<u8>,
    ) -> Plan {
        let mut statuses = Vec::with_capacity(items.len());
        let mut fresh = Vec::with_capacity(items.len());
        for item in items {
            let source = self.register(&item.source, now, buf);
            if self.dedupe.contains_key(&item.id) {
                statuses.push(ItemStatus::Duplicate);
                continue;
            }
            self.dedupe.insert(item.id, now);
            let to = self.recipients(item.target.as_deref(), &source);
            let stored = Arc::new(Stored {
                id: item.id,
                json: item.json,
                accepted_ms: now,
                segment: AtomicU64::new(self.store.active_id()),
            });
            let pairs = to.iter().map(|(h, seq)| (h.id.as_str(), *seq));
            records::msg(buf, &stored.id, now, pairs, &stored.json);
            statuses.push(ItemStatus::Accepted);
            fresh.push(Fresh { stored, to });
        }
        Plan::Post(statuses, fresh, reply)
    }

    /// The queues a message goes to, each with its new sequence number:
    /// its target (registered or not), or every registered host but the sender.
    fn recipients(&self, target: Option<&str>, source: &HostState) -> Vec<(Arc<HostState>, u64)> {
        if let Some(t) = target {
            let h = self.state.host_or_insert(t);
            let seq = h.queue().next_seq();
            return vec![(h, seq)];
        }
        let mut to = Vec::new();
        for entry in self.state.hosts.iter() {
            let h = entry.value();
            if h.id == source.id {
                continue;
            }
            let mut q = h.queue();
            if q.registered_at.is_some() {
                let seq = q.next_seq();
                drop(q);
                to.push((h.clone(), seq));
            }
        }
        to
    }

    fn plan_drop(&mut self, id: &str, reply: Reply<bool>, buf: &mut Vec<u8>) -> Plan {
        let Some(h) = self.state.host(id) else {
            return Plan::Drop(None, reply);
        };
        let q = h.queue();
        if q.registered_at.is_none() && q.entries.is_empty() {
            drop(q);
            return Plan::Drop(None, reply);
        }
        records::drop(buf, id, q.last_seq);
        drop(q);
        Plan::Drop(Some(h), reply)
    }

    fn apply(&mut self, plan: Plan) {
        let m = &self.state.metrics;
        match plan {
            Plan::Post(statuses, fresh, reply) => {
                for f in &fresh {
                    for (h, seq) in &f.to {
                        h.queue().entries.insert(*seq, f.stored.clone());
                        // After the insert: a stream that wakes up finds the entry.
                        h.changed.send_replace(*seq);
                    }
                    // An error only means nobody watches the feed.
                    let _ = self.state.feed.send(f.stored.clone());
                }
                add(&m.accepted, fresh.len() as u64);
                add(&m.duplicate, (statuses.len() - fresh.len()) as u64);
                let _ = reply.send(Ok(statuses));
            }
            Plan::Register(h, reply) => {
                let _ = reply.send(Ok(h));
            }
            Plan::Ack(h, found, reply) => {
                let n = h.queue().remove_ids(&found);
                add(&m.acked, n as u64);
                let _ = reply.send(Ok(n));
            }
            Plan::Drop(h, reply) => {
                if let Some(h) = &h {
                    h.queue().deregister();
                    tracing::info!(host = %h.id, "host deleted with its queue");
                }
                let _ = reply.send(Ok(h.is_some()));
            }
        }
    }

    fn fail(&mut self, plan: Plan, reason: &str) {
        for h in self.registered_now.drain(..) {
            h.queue().registered_at = None;
        }
        let reason = reason.to_string();
        match plan {
            Plan::Post(_, fresh, reply) => {
                // Not stored, so not seen: the client's retry must be accepted.
                for f in &fresh {
                    self.dedupe.remove(&f.stored.id);
                }
                let _ = reply.send(Err(reason));
            }
            Plan::Register(_, reply) => drop(reply.send(Err(reason))),
            Plan::Ack(_, _, reply) => drop(reply.send(Err(reason))),
            Plan::Drop(_, reply) => drop(reply.send(Err(reason))),
        }
    }
}

/// Writes an ack record for the ids that are queued now; only those are
/// removed on apply, so what memory drops is exactly what the log says.
fn plan_ack(host: Arc<HostState>, ids: Vec<Uuid>, reply: Reply<usize>, buf: &mut Vec<u8>) -> Plan {
    let wanted: HashSet<Uuid> = ids.into_iter().collect();
    let found: HashSet<Uuid> = {
        let q = host.queue();
        q.find(&wanted)
            .iter()
            .filter_map(|seq| q.entries.get(*seq).map(|m| m.id))
            .collect()
    };
    if !found.is_empty() {
        let ids: Vec<Uuid> = found.iter().copied().collect();
        records::ack(buf, &host.id, &ids);
    }
    Plan::Ack(host, found, reply)
}
