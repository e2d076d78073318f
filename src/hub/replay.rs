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
    let mut replay = Replay {
        state,
        retention_cutoff: now - state.limits.retention.as_millis() as i64,
        window_cutoff: now - state.limits.dedupe_window.as_millis() as i64,
        dedupe: HashMap::new(),
        records: 0,
    };
    let store = Store::open(
        dir,
        |rec, seg| replay.apply(rec, seg),
        || compact::header(state),
    )?;
    for h in state.all_hosts() {
        let last = h.queue().last_seq;
        h.changed.send_replace(last);
    }
    let hosts = state.host_infos().len();
    let pending: usize = state.pending().iter().map(|(_, n)| n).sum();
    tracing::info!(
        records = replay.records,
        hosts,
        pending,
        dedupe_ids = replay.dedupe.len(),
        "hub store replayed"
    );
    Ok((store, replay.dedupe))
}

struct Replay<'a> {
    state: &'a State,
    /// Messages accepted before this are expired: they queue for nobody.
    retention_cutoff: i64,
    /// Ids accepted before this no longer count as duplicates.
    window_cutoff: i64,
    dedupe: HashMap<Uuid, i64>,
    records: u64,
}

impl Replay<'_> {
    fn apply(&mut self, rec: Record<'_>, segment: u64) {
        self.records += 1;
        match rec {
            Record::Host {
                host,
                registered_at,
                last_seq,
                last_seen,
            } => {
                let h = self.state.host_or_insert(&host);
                if let Some(at) = last_seen {
                    h.seen_at(at);
                }
                let mut q = h.queue();
                q.registered_at = registered_at;
                q.last_seq = q.last_seq.max(last_seq);
            }
            Record::Drop { host, last_seq } => {
                let h = self.state.host_or_insert(&host);
                let mut q = h.queue();
                q.deregister();
                q.last_seq = q.last_seq.max(last_seq);
            }
            Record::Msg {
                id,
                accepted_ms,
                to,
                json,
            } => self.message(id, accepted_ms, to, json, segment),
            Record::Ack { host, ids } => {
                if let Some(h) = self.state.host(&host) {
                    let ids: HashSet<Uuid> = ids.into_iter().collect();
                    h.queue().remove_ids(&ids);
                }
            }
        }
    }

    fn message(
        &mut self,
        id: Uuid,
        accepted_ms: i64,
        to: Vec<(String, u64)>,
        json: &str,
        segment: u64,
    ) {
        if accepted_ms >= self.window_cutoff {
            let t = self.dedupe.entry(id).or_insert(accepted_ms);
            *t = (*t).max(accepted_ms);
        }
        let live = (accepted_ms >= self.retention_cutoff).then(|| {
            Arc::new(Stored {
                id,
                json: json.into(),
                accepted_ms,
                segment: AtomicU64::new(segment),
            })
        });
        for (host, seq) in to {
            let h = self.state.host_or_insert(&host);
            let mut q = h.queue();
            q.last_seq = q.last_seq.max(seq);
            if let Some(m) = &live {
                q.entries.insert(seq, m.clone());
            }
        }
    }
}
