//! The bounded cache of message bodies. The writer puts every message it
//! stores here, so live delivery (one broadcast read by thousands of
//! streams) never touches the disk; reads of an older backlog load a run of
//! the host's queue from the segments at once. Memory is the same whatever
//! the backlog: the newest stored bodies are kept up to `CAPACITY` bytes in
//! a ring indexed by sequence number (no hashing on the hot path), and
//! bodies read back from disk up to `LOADED_CAPACITY`, oldest out first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::value::RawValue;

/// Bytes of the newest stored bodies kept.
pub const CAPACITY: usize = 6 * 1024 * 1024;
/// Bytes of bodies read back from the segments kept.
pub const LOADED_CAPACITY: usize = 2 * 1024 * 1024;

pub struct BodyCache {
    inner: Mutex<Inner>,
    capacity: usize,
    loaded_capacity: usize,
}

#[derive(Default)]
struct Inner {
    /// Sequence number of `newest[0]`.
    first: u64,
    /// Stored bodies by sequence number (`None`: a number never used here).
    newest: VecDeque<Option<Arc<RawValue>>>,
    newest_bytes: usize,
    loaded: HashMap<u64, Arc<RawValue>>,
    /// Insertion order of `loaded`, for eviction.
    loaded_order: VecDeque<u64>,
    loaded_bytes: usize,
}

impl BodyCache {
    pub fn new(capacity: usize, loaded_capacity: usize) -> BodyCache {
        BodyCache {
            inner: Mutex::default(),
            capacity,
            loaded_capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Plain container operations cannot leave it inconsistent: keep serving.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn get(&self, seq: u64) -> Option<Arc<RawValue>> {
        let c = self.lock();
        if let Some(i) = seq.checked_sub(c.first) {
            if let Some(Some(body)) = usize::try_from(i).ok().and_then(|i| c.newest.get(i)) {
                return Some(body.clone());
            }
        }
        c.loaded.get(&seq).cloned()
    }

    /// Keeps newly stored bodies, in increasing sequence order.
    pub fn stored(&self, bodies: impl IntoIterator<Item = (u64, Arc<RawValue>)>) {
        let mut c = self.lock();
        for (seq, body) in bodies {
            let end = c.first + c.newest.len() as u64;
            if c.newest.is_empty() || seq >= end + 1024 {
                // First use, or a jump too far to pad: start afresh.
                c.newest.clear();
                c.newest_bytes = 0;
                c.first = seq;
            } else if seq < end {
                continue;
            }
            while c.first + (c.newest.len() as u64) < seq {
                c.newest.push_back(None);
            }
            c.newest_bytes += body.get().len();
            c.newest.push_back(Some(body));
        }
        while c.newest_bytes > self.capacity {
            let Some(old) = c.newest.pop_front() else {
                break;
            };
            c.first += 1;
            c.newest_bytes -= old.map_or(0, |b| b.get().len());
        }
    }

    /// Keeps a body read back from the files.
    pub fn loaded(&self, seq: u64, body: Arc<RawValue>) {
        let size = body.get().len();
        if size > self.loaded_capacity {
            return;
        }
        let mut c = self.lock();
        if let Some(old) = c.loaded.insert(seq, body) {
            c.loaded_bytes -= old.get().len();
        } else {
            c.loaded_order.push_back(seq);
        }
        c.loaded_bytes += size;
        while c.loaded_bytes > self.loaded_capacity {
            let Some(oldest) = c.loaded_order.pop_front() else {
                break;
            };
            if let Some(b) = c.loaded.remove(&oldest) {
                c.loaded_bytes -= b.get().len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(n: usize) -> Arc<RawValue> {
        Arc::from(RawValue::from_string(format!("\"{}\"", "x".repeat(n))).unwrap())
    }

    #[test]
    fn the_newest_stored_bodies_stay_up_to_capacity() {
        let cache = BodyCache::new(30, 30);
        cache.stored((1..=4).map(|seq| (seq, body(8))));
        assert!(cache.get(1).is_none());
        assert!(cache.get(2).is_some() && cache.get(4).is_some());
        // A skipped number leaves a gap, not a wrong body.
        cache.stored([(6, body(8))]);
        assert!(cache.get(5).is_none() && cache.get(6).is_some());
        assert!(cache.get(2).is_none(), "the oldest went to make room");
        assert_eq!(cache.lock().newest_bytes, 30);
    }

    #[test]
    fn loaded_bodies_are_kept_apart_and_bounded() {
        let cache = BodyCache::new(30, 30);
        cache.stored([(100, body(8))]);
        for seq in 1..=4 {
            cache.loaded(seq, body(8));
        }
        assert!(cache.get(1).is_none() && cache.get(4).is_some());
        assert!(cache.get(100).is_some());
        cache.loaded(9, body(100));
        assert!(
            cache.get(9).is_none(),
            "a body larger than the cache is not kept"
        );
    }
}
