//! Keeping the data dir small: retention expiry, dedupe-window pruning, and
//! deleting old segments, all run by the writer thread (`Writer` owns the
//! files, so nothing else appends meanwhile).
//!
//! A closed segment may go once every id in it is older than
//! `dedupe_window` (so duplicates are still caught after a restart). Its
//! messages that some host still has not acked are first copied, with their
//! pending (host, seq) pairs and original time, into the active segment.
//! Segments go oldest first, and each segment starts with a header of all
//! hosts, so what remains always replays to the same state.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use uuid::Uuid;

use super::metrics::add;
use super::records;
use super::state::{State, Stored};
use super::store::Store;

/// Every known host as `host` records: registration and sequence floor.
pub fn header(state: &State) -> Vec<u8> {
    let mut buf = Vec::new();
    for h in state.all_hosts() {
        let q = h.queue();
        if q.registered_at.is_some() || q.last_seq > 0 {
            records::host(&mut buf, &h.id, q.registered_at, q.last_seq, h.last_seen());
        }
    }
    buf
}

/// Expires old queue entries, prunes the dedupe window, deletes dead segments.
pub fn sweep(state: &State, store: &mut Store, dedupe: &mut HashMap<Uuid, i64>, now: i64) {
    let retention_ms = state.limits.retention.as_millis() as i64;
    let window_ms = state.limits.dedupe_window.as_millis() as i64;
    expire(state, now - retention_ms);
    dedupe.retain(|_, t| *t >= now - window_ms);
    while let Some(seg) = store.oldest_closed() {
        if seg.newest_ms >= now - window_ms {
            break;
        }
        let id = seg.id;
        let moved = match carry_forward(state, store, id) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "cannot copy live messages out of an old segment; keeping it");
                return;
            }
        };
        if moved > 0 {
            tracing::info!(
                messages = moved,
                "copied unacked messages out of an old segment"
            );
        }
        if let Err(e) = store.delete_oldest() {
            tracing::error!(error = %format!("{e:#}"), "cannot delete an old segment");
            return;
        }
    }
}

fn expire(state: &State, cutoff_ms: i64) {
    let mut expired = 0;
    for h in state.all_hosts() {
        let mut q = h.queue();
        let gone = q.entries.retain(|m| m.accepted_ms >= cutoff_ms);
        if gone > 0 {
            tracing::info!(host = %h.id, messages = gone, "unacked messages expired after retention");
        }
        expired += gone;
    }
    add(&state.metrics.expired, expired as u64);
}

/// A stored message and the (host, seq) entries that still hold it.
type Pending = (Arc<Stored>, Vec<(String, u64)>);

/// Re-appends every message of segment `segment` that is still queued for
/// some host; returns how many.
fn carry_forward(state: &State, store: &mut Store, segment: u64) -> std::io::Result<usize> {
    // Keyed by the shared allocation: one record per message, however many hosts.
    let mut live: HashMap<*const Stored, Pending> = HashMap::new();
    for h in state.all_hosts() {
        let q = h.queue();
        for (seq, m) in q.entries.iter() {
            if m.segment.load(Ordering::Relaxed) == segment {
                live.entry(Arc::as_ptr(m))
                    .or_insert_with(|| (m.clone(), Vec::new()))
                    .1
                    .push((h.id.clone(), seq));
            }
        }
    }
    if live.is_empty() {
        return Ok(0);
    }
    let mut buf = Vec::new();
    for (m, to) in live.values() {
        let pairs = to.iter().map(|(h, s)| (h.as_str(), *s));
        records::msg(&mut buf, &m.id, m.accepted_ms, pairs, &m.json);
    }
    // Copies keep their old time and do not make the active segment younger.
    store.append(&buf, i64::MIN)?;
    for (m, _) in live.values() {
        m.segment.store(store.active_id(), Ordering::Relaxed);
    }
    Ok(live.len())
}
