//! Reading a host's queue: the sequence numbers and places come from the
//! model (under its shared lock, briefly), the bodies from the cache, and
//! what the cache lacks from the segment files in one blocking read that
//! also loads the next stretch of the same queue (so a host catching up on
//! a long backlog reads the disk once per stretch, not once per message).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::value::RawValue;

use super::log::Loc;
use super::records::{self, Record};
use super::segments::read_at;
use super::Shared;
use crate::hub::store::{Delivery, StoreError, StoreResult};

/// Messages loaded ahead of what was asked, on a cache miss...
const READ_AHEAD: usize = 256;
/// ...and at most this many bytes of them: with large messages, many
/// streams reading at once would otherwise each load 256 bodies (25 MB of
/// 100 KB messages) to hand out one.
const READ_AHEAD_BYTES: u64 = 1 << 20;

pub async fn queue(
    shared: &Arc<Shared>,
    host: &str,
    after: u64,
    limit: usize,
) -> StoreResult<Vec<Delivery>> {
    // Compaction may move a record between the lookup and the read: then
    // look it up again.
    for attempt in 0..3 {
        let wanted = shared.model().queue(host, after, limit);
        let Some(&(last, _)) = wanted.last() else {
            return Ok(Vec::new());
        };
        let mut bodies: HashMap<u64, Arc<RawValue>> = HashMap::new();
        let mut missing: Vec<(u64, Loc)> = Vec::new();
        for (seq, loc) in &wanted {
            match shared.cache.get(*seq) {
                Some(b) => drop(bodies.insert(*seq, b)),
                None => missing.push((*seq, *loc)),
            }
        }
        if !missing.is_empty() {
            let ahead = shared.model().queue(host, last, READ_AHEAD);
            let mut room = READ_AHEAD_BYTES;
            missing.extend(
                ahead
                    .into_iter()
                    .filter(|(s, _)| shared.cache.get(*s).is_none())
                    .take_while(|(_, loc)| {
                        let fits = room >= u64::from(loc.len);
                        room = room.saturating_sub(u64::from(loc.len));
                        fits
                    }),
            );
            for (seq, body) in load(shared, missing).await? {
                shared.cache.loaded(seq, body.clone());
                bodies.insert(seq, body);
            }
        }
        let mut out = Vec::with_capacity(wanted.len());
        let mut lost = false;
        for (seq, _) in wanted {
            match bodies.remove(&seq) {
                Some(json) => out.push(Delivery { seq, json }),
                None => {
                    lost |= still_pending(shared, host, seq);
                    if lost {
                        break;
                    }
                }
            }
        }
        if !lost {
            return Ok(out);
        }
        tracing::debug!(%host, attempt, "a queued message moved while being read; reading again");
    }
    Err(StoreError(format!(
        "cannot read the queue of {host} back from the data dir"
    )))
}

fn still_pending(shared: &Shared, host: &str, seq: u64) -> bool {
    let model = shared.model();
    model.host(host).is_some_and(|h| model.is_pending(h, seq))
}

/// Reads bodies from the segments off the reactor; a record that is not
/// there any more (compacted meanwhile) is left out.
async fn load(
    shared: &Arc<Shared>,
    wanted: Vec<(u64, Loc)>,
) -> StoreResult<Vec<(u64, Arc<RawValue>)>> {
    let dir = shared.dir.clone();
    tokio::task::spawn_blocking(move || {
        let locs: Vec<_> = wanted
            .iter()
            .map(|(_, l)| (u64::from(l.seg), l.off, l.len))
            .collect();
        let lines = read_at(&dir, &locs);
        wanted
            .iter()
            .zip(lines)
            .filter_map(|((seq, _), line)| {
                let line = line?;
                match records::decode(&line) {
                    Ok(Record::Msg(m)) if m.seq == *seq => {
                        Some((*seq, Arc::from(m.msg.to_owned())))
                    }
                    _ => None,
                }
            })
            .collect()
    })
    .await
    .map_err(|e| StoreError(format!("reading messages from the data dir: {e}")))
}
