//! This hub's open streams per host: connections are the hub's, not the
//! store's (with a shared store, each hub counts its own). A host shows as
//! seen "now" while one is open; `GET /v1/hosts` and `/metrics` read this.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

#[derive(Default)]
pub struct Presence {
    streams: DashMap<String, usize>,
    /// Open streams in all, for `/metrics`.
    total: Arc<AtomicU64>,
}

impl Presence {
    /// Counts a stream of `host` until the returned guard is dropped.
    pub fn open(self: &Arc<Self>, host: &str) -> StreamCount {
        *self.streams.entry(host.to_string()).or_default() += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        StreamCount {
            presence: self.clone(),
            host: host.to_string(),
        }
    }

    pub fn streams(&self, host: &str) -> usize {
        self.streams.get(host).map_or(0, |n| *n)
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

/// One open stream, counted while it lives.
pub struct StreamCount {
    presence: Arc<Presence>,
    host: String,
}

impl Drop for StreamCount {
    fn drop(&mut self) {
        let p = &self.presence;
        p.total.fetch_sub(1, Ordering::Relaxed);
        // Forget hosts with no stream left, so the map holds only live ones.
        p.streams.remove_if_mut(&self.host, |_, n| {
            *n -= 1;
            *n == 0
        });
    }
}
