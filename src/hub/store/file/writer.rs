//! The store writer: one thread that owns the segment files and the only
//! caller of [`Model::apply`] at run time.
//!
//! Group commit: it takes every request waiting in its channel, turns them
//! into records in order (deciding duplicates, sequence numbers and acks from
//! the model as it stands plus what the group itself planned), writes them
//! with a single fdatasync, then applies the same records to the model and
//! answers each waiter. It never waits for more work before flushing, so a
//! lone message pays one fsync and a crowd shares one. The log order and the
//! apply order are this one thread's order, so a replay rebuilds exactly
//! what memory held.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::log::Loc;
use super::model::{Applied, Model};
use super::plan::Planner;
use super::records::{self, Record};
use super::segments::Segments;
use super::{now_ms, Shared};
use crate::api::ItemStatus;
use crate::hub::store::{Incoming, StoreError};

/// Most requests committed together; keeps one group's buffer modest.
const MAX_GROUP: usize = 256;
/// Records applied per hold of the model's write lock, so readers (streams,
/// polls) never wait for a whole large group.
const APPLY_CHUNK: usize = 64;

pub type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

pub enum Op {
    Append(Vec<Incoming>, Reply<Vec<ItemStatus>>),
    Register(String, Reply<()>),
    Ack(String, Vec<Uuid>, Reply<usize>),
    Delete(String, Reply<bool>),
    /// Expire, forget and compact; the sender, if any, hears when done.
    Sweep(Option<oneshot::Sender<()>>),
    Stop,
}

/// What one request asked for, its reply, and what planning decided.
pub(super) enum Job {
    Append {
        items: Vec<Incoming>,
        reply: Reply<Vec<ItemStatus>>,
        statuses: Vec<ItemStatus>,
        /// Sequence number of each accepted item, by item index.
        seqs: Vec<(usize, u64)>,
    },
    Register(String, Reply<()>),
    /// The index of its record, if it needed one.
    Ack(String, Vec<Uuid>, Reply<usize>, Option<usize>),
    Delete(String, Reply<bool>, Option<usize>),
}

pub struct Writer {
    pub(super) shared: Arc<Shared>,
    pub(super) segments: Segments,
    next_seq: u64,
    /// Acceptance times never go down, so retention can cut the log at one point.
    last_t: i64,
}

impl Writer {
    pub fn new(shared: Arc<Shared>, segments: Segments) -> Writer {
        let (head, newest) = {
            let m = shared.model();
            (m.head(), m.log.newest_t())
        };
        Writer {
            shared,
            segments,
            next_seq: head + 1,
            last_t: newest,
        }
    }

    pub fn run(mut self, mut rx: mpsc::Receiver<Op>) {
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
        let (mut sweep, mut keep_going) = (Vec::new(), true);
        let mut jobs = Vec::with_capacity(group.len());
        for op in group {
            match op {
                Op::Append(items, reply) => jobs.push(Job::Append {
                    items,
                    reply,
                    statuses: Vec::new(),
                    seqs: Vec::new(),
                }),
                Op::Register(h, reply) => jobs.push(Job::Register(h, reply)),
                Op::Ack(h, ids, reply) => jobs.push(Job::Ack(h, ids, reply, None)),
                Op::Delete(h, reply) => jobs.push(Job::Delete(h, reply, None)),
                Op::Sweep(done) => sweep.push(done),
                Op::Stop => keep_going = false,
            }
        }
        if !jobs.is_empty() {
            self.commit_jobs(jobs);
        }
        if !sweep.is_empty() {
            self.sweep(now_ms());
            for done in sweep.into_iter().flatten() {
                let _ = done.send(());
            }
        }
        if !keep_going {
            // Each host's last-seen time survives a clean restart.
            let shared = self.shared.clone();
            let model = shared.model();
            let recs: Vec<Record> = model.cursor_records().collect();
            if let Err(e) = self.write(&recs, &model) {
                tracing::warn!(error = %e, "cannot record last-seen times at shutdown");
            }
            // Everything issued is durable now: the next start resumes
            // right after it instead of past the reserve.
            if let Err(e) = self.segments.settle(self.next_seq) {
                tracing::warn!(error = %format!("{e:#}"), "cannot lower the sequence high-water mark at shutdown");
            }
        }
        keep_going
    }

    fn commit_jobs(&mut self, mut jobs: Vec<Job>) {
        let t = now_ms().max(self.last_t);
        self.last_t = t;
        let shared = self.shared.clone();
        let plan = {
            let model = shared.model();
            let window_start = t - self.shared.limits.dedupe_window_ms;
            let mut planner = Planner::new(&model, self.next_seq, t, window_start);
            planner.plan(&mut jobs);
            self.next_seq = planner.next_seq;
            let records = planner.records;
            // The high-water mark is durable before any number below it is.
            let reserved = self.segments.reserve(self.next_seq).map_err(|e| {
                std::io::Error::other(format!("cannot record the sequence high-water mark: {e:#}"))
            });
            reserved.and_then(|()| self.write(&records, &model).map(|locs| (records, locs)))
        };
        let (records, locs) = match plan {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot write the hub store; answering 503");
                return fail(jobs, &e.to_string());
            }
        };
        let applied = self.apply(&records, &locs);
        drop(records);
        self.finish(jobs, applied);
    }

    /// Encodes and appends `records` durably (rolling first if the segment
    /// is full); returns where each landed.
    pub(super) fn write(
        &mut self,
        records: &[Record<'_>],
        model: &Model,
    ) -> std::io::Result<Vec<Loc>> {
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut spans = Vec::with_capacity(records.len());
        for rec in records {
            let start = buf.len();
            records::encode(rec, &mut buf)?;
            spans.push((start, buf.len() - start - 1));
        }
        if buf.is_empty() {
            return Ok(Vec::new());
        }
        if self.segments.is_full(buf.len()) {
            self.roll(model);
        }
        let base = self.segments.active().bytes;
        self.segments.append(&buf)?;
        let seg = self.segments.active().id as u32;
        let mut locs = Vec::with_capacity(spans.len());
        for (rec, (start, len)) in records.iter().zip(spans) {
            if let Record::Msg(m) = rec {
                self.segments.active_mut().holds(m.seq, m.t);
            }
            let off = (base + start as u64) as u32;
            locs.push(Loc {
                seg,
                off,
                len: len as u32,
            });
        }
        Ok(locs)
    }

    fn roll(&mut self, model: &Model) {
        let mut header = Vec::new();
        let encoded = model
            .header()
            .iter()
            .try_for_each(|r| records::encode(r, &mut header));
        let rolled = encoded
            .map_err(anyhow::Error::from)
            .and_then(|()| self.segments.roll(&header));
        if let Err(e) = rolled {
            tracing::error!(error = %format!("{e:#}"), "cannot begin a new segment; still appending to the old one");
        }
    }

    /// Applies durable records to the model, a chunk per lock hold.
    pub(super) fn apply(&self, records: &[Record<'_>], locs: &[Loc]) -> Vec<Applied> {
        let mut applied = Vec::with_capacity(records.len());
        for (recs, locs) in records.chunks(APPLY_CHUNK).zip(locs.chunks(APPLY_CHUNK)) {
            let mut model = self.shared.model_mut();
            for (rec, loc) in recs.iter().zip(locs) {
                applied.push(model.apply(rec, *loc));
            }
            self.shared.last_seq.store(model.head(), Ordering::Release);
        }
        applied
    }

    /// Caches and announces new messages, wakes their hosts, answers everyone.
    fn finish(&self, jobs: Vec<Job>, applied: Vec<Applied>) {
        let shared = &self.shared;
        let (fresh, rest) = share_bodies(jobs);
        // Cached before anyone is woken or answered, so readers find the bodies.
        shared
            .cache
            .stored(fresh.iter().map(|(seq, body, _)| (*seq, body.clone())));
        let mut newest_broadcast = None;
        for (seq, body, target) in fresh {
            // An error only means nobody watches the feed.
            let _ = shared.feed.send(body);
            match target {
                Some(t) => shared.wakes.queued(&t, seq),
                None => newest_broadcast = Some(seq),
            }
        }
        if let Some(seq) = newest_broadcast {
            shared.wakes.broadcast(seq);
        }
        for job in rest {
            match job {
                Job::Append {
                    reply, statuses, ..
                } => drop(reply.send(Ok(statuses))),
                Job::Register(_, reply) => drop(reply.send(Ok(()))),
                Job::Ack(_, _, reply, at) => {
                    let n = match at.map(|i| &applied[i]) {
                        Some(Applied::Acked(n)) => *n,
                        _ => 0,
                    };
                    let _ = reply.send(Ok(n));
                }
                Job::Delete(host, reply, at) => {
                    let existed = at
                        .is_some_and(|i| matches!(applied[i], Applied::Deleted { existed: true }));
                    if existed {
                        shared.wakes.deleted(&host);
                        tracing::info!(%host, "host deleted with its queue");
                    }
                    let _ = reply.send(Ok(existed));
                }
            }
        }
    }
}

/// A new message's sequence number, shared body and target.
type Fresh = (u64, Arc<RawValue>, Option<String>);

/// Takes the accepted messages out of the jobs, each body turned into the
/// one shared copy that the cache and the feed hold. Made here rather than
/// on the request threads: bodies that live on then all come from this
/// thread's allocator, which keeps a long backlog from fragmenting memory.
fn share_bodies(jobs: Vec<Job>) -> (Vec<Fresh>, Vec<Job>) {
    let mut fresh = Vec::new();
    let mut rest = Vec::with_capacity(jobs.len());
    for job in jobs {
        let Job::Append {
            items,
            reply,
            statuses,
            seqs,
        } = job
        else {
            rest.push(job);
            continue;
        };
        let mut items: Vec<Option<Incoming>> = items.into_iter().map(Some).collect();
        for (i, seq) in seqs {
            if let Some(item) = items[i].take() {
                fresh.push((seq, Arc::from(item.json), item.target));
            }
        }
        rest.push(Job::Append {
            items: Vec::new(),
            reply,
            statuses,
            seqs: Vec::new(),
        });
    }
    (fresh, rest)
}

/// Answers every job with the write error; nothing was applied.
fn fail(jobs: Vec<Job>, reason: &str) {
    let err = || StoreError(format!("the hub cannot write its store: {reason}"));
    for job in jobs {
        match job {
            Job::Append { reply, .. } => drop(reply.send(Err(err()))),
            Job::Register(_, reply) => drop(reply.send(Err(err()))),
            Job::Ack(_, _, reply, _) => drop(reply.send(Err(err()))),
            Job::Delete(_, reply, _) => drop(reply.send(Err(err()))),
        }
    }
}
