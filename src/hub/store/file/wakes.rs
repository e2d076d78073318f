//! Who to wake when something is queued. A host's streams and long-polls
//! watch two things: their host's own channel (a targeted message, or the
//! host's deletion) and one hub-wide channel that each broadcast bumps once.
//! So a targeted message wakes only its host's watchers, a broadcast wakes
//! every watcher once whatever the number of registered hosts, and a host
//! nobody watches costs nothing.

use dashmap::DashMap;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::hub::store::Wake;

pub struct Wakes {
    hosts: DashMap<String, HostWake>,
    all: watch::Sender<u64>,
}

struct HostWake {
    queued: watch::Sender<u64>,
    /// Cancelled when the host is deleted, which ends its streams.
    gone: CancellationToken,
}

impl Default for Wakes {
    fn default() -> Self {
        Wakes {
            hosts: DashMap::new(),
            all: watch::Sender::new(0),
        }
    }
}

impl Wakes {
    pub fn subscribe(&self, host: &str) -> Wake {
        let entry = self
            .hosts
            .entry(host.to_string())
            .or_insert_with(|| HostWake {
                queued: watch::Sender::new(0),
                gone: CancellationToken::new(),
            });
        Wake::new(
            entry.queued.subscribe(),
            self.all.subscribe(),
            entry.gone.clone(),
        )
    }

    /// Something was queued for `host` as `seq`.
    pub fn queued(&self, host: &str, seq: u64) {
        if let Some(w) = self.hosts.get(host) {
            w.queued.send_replace(seq);
        }
    }

    /// A broadcast was queued as `seq`.
    pub fn broadcast(&self, seq: u64) {
        self.all.send_replace(seq);
    }

    /// Ends the deleted host's streams; new ones get a fresh token.
    pub fn deleted(&self, host: &str) {
        if let Some(mut w) = self.hosts.get_mut(host) {
            w.gone.cancel();
            w.gone = CancellationToken::new();
        }
    }

    /// Forgets hosts nobody watches any more.
    pub fn prune(&self) {
        self.hosts.retain(|_, w| w.queued.receiver_count() > 0);
    }
}
