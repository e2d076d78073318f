//! The bounded cache of message bodies. The writer puts every message it
//! stores here, so live delivery (one broadcast read by thousands of
//! streams) never touches the disk; reads of an older backlog load a run of
//! the host's queue from the segments at once. Oldest insertions go first
//! once `capacity` bytes are held, so memory is the same whatever the backlog.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::value::RawValue;

/// Bytes of bodies kept.
pub const CAPACITY: usize = 16 * 1024 * 1024;

pub struct BodyCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

#[derive(Default)]
struct Inner {
    bodies: HashMap<u64, Arc<RawValue>>,
    /// Insertion order, for eviction.
    order: VecDeque<u64>,
    bytes: usize,
}

impl BodyCache {
    pub fn new(capacity: usize) -> BodyCache {
        BodyCache {
            inner: Mutex::default(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Plain map operations cannot leave it inconsistent: keep serving.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn get(&self, seq: u64) -> Option<Arc<RawValue>> {
        self.lock().bodies.get(&seq).cloned()
    }

    pub fn insert(&self, seq: u64, body: Arc<RawValue>) {
        let size = body.get().len();
        if size > self.capacity {
            return;
        }
        let mut c = self.lock();
        if let Some(old) = c.bodies.insert(seq, body) {
            c.bytes -= old.get().len();
        } else {
            c.order.push_back(seq);
        }
        c.bytes += size;
        while c.bytes > self.capacity {
            let Some(oldest) = c.order.pop_front() else {
                break;
            };
            if let Some(b) = c.bodies.remove(&oldest) {
                c.bytes -= b.get().len();
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
    fn oldest_bodies_go_first_once_full() {
        let cache = BodyCache::new(30);
        for seq in 1..=4 {
            cache.insert(seq, body(8));
        }
        assert!(cache.get(1).is_none());
        assert!(cache.get(2).is_some() && cache.get(4).is_some());
        cache.insert(5, body(100));
        assert!(
            cache.get(5).is_none(),
            "a body larger than the cache is not kept"
        );
        assert_eq!(cache.lock().bytes, 30);
    }
}
