//! Rebuilding the hub's memory from its segment files at start: hosts and
//! their registrations, queues, sequence floors and the dedupe window. The
//! rules mirror what the writer does when it applies the same records live.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use uuid::Uuid;

use super::compact;
use super::records::Record;
use super::state::{now_ms, State, Stored};
use super::store::Store;

/// Opens the store in `dir` and replays it into `state`; returns the store
/// (with a fresh active segment) and the dedupe window.
pub fn open(state: &State, dir: &Path) -> anyhow::Result<(Store, HashMap<Uuid, i64>)> {
    let now = now_ms();
    let retention_cutoff = now - state.limits.retention.as_millis() as i64;
    let window_cutoff = now - state.limits.dedupe_window.as_millis() as i64;
    let mut dedupe = HashMap::new();
    let mut records = 0u64;
    let apply = |rec: Record<'_>, segment: u64| {
        records += 1;
        match rec {
            Record::Host {
                host,
                registered_at,
                last_seq,
            } => {
                let h = state.host_or_insert(&host);
                let mut q = h.queue();
                q.registered_at = registered_at;
                q.last_seq = q.last_seq.max(last_seq);
            }
            Record::Drop { host, last_seq } => {
                let h = state.host_or_insert(&host);
                let mut q = h.queue();
                q.deregister();
                q.last_seq = q.last_seq.max(last_seq);
            }
            Record::Msg {
                id,
                accepted_ms,
                to,
                json,
            } => {
                if accepted_ms >= window_cutoff {
                    let t = dedupe.entry(id).or_insert(accepted_ms);
                    *t = (*t).max(accepted_ms);
                }
                let live = (accepted_ms >= retention_cutoff).then(|| {
                    Arc::new(Stored {
                        id,
                        json: json.into(),
                        accepted_ms,
                        segment: AtomicU64::new(segment),
                    })
                });
                for (host, seq) in to {
                    let h = state.host_or_insert(&host);
                    let mut q = h.queue();
                    q.last_seq = q.last_seq.max(seq);
                    if let Some(m) = &live {
                        q.entries.insert(seq, m.clone());
                    }
                }
            }
            Record::Ack { host, ids } => {
                if let Some(h) = state.host(&host) {
                    let ids: HashSet<Uuid> = ids.into_iter().collect();
                    h.queue().remove_ids(&ids);
                }
            }
        }
    };
    let store = Store::open(dir, apply, || compact::header(state))?;
    for h in state.all_hosts() {
        let q = h.queue();
        h.changed.send_replace(q.last_seq);
    }
    let hosts = state.host_infos().len();
    let pending: usize = state.pending().iter().map(|(_, n)| n).sum();
    tracing::info!(
        records,
        hosts,
        pending,
        dedupe_ids = dedupe.len(),
        "hub store replayed"
    );
    Ok((store, dedupe))
}
