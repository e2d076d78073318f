//! The hub's store: everything the HTTP API needs from wherever messages
//! live, behind one trait. Routes, fan-out and streams use only [`Store`];
//! they never see segment files. `file` is the embedded implementation (one
//! append-only log in JSON-lines segments under `data_dir`); a store on NATS
//! JetStream (one stream for the log, a durable consumer or a KV entry per
//! host for its cursor, pushes for wake-ups, several hubs sharing it) is meant
//! to be a second implementation of the same trait.
//!
//! The model every store implements: one log in which each accepted message
//! is stored once under a sequence number that only grows, and per host a
//! cursor (registered since which sequence number, an ack floor, the acks
//! above it). A host's queue is the log filtered for it: messages targeted
//! at it, and broadcasts accepted after it registered that it did not send,
//! after its floor and not acked.
//!
//! What a store must promise:
//! - `append` answers `Accepted` for an item only once the item is durable
//!   (fsync, or a JetStream PubAck), and `Duplicate` for an id it accepted
//!   within `dedupe_window` (also across restarts), or earlier in the batch.
//! - Sequence numbers only grow, for the log and so for every host, also
//!   across restarts; gaps are allowed. A host's queue is read in sequence order.
//! - `register`, `ack` and `delete_host` are durable before they return.
//!   Acks of ids that are not pending for the host are ignored.
//! - `watch` wakes a host's watchers after anything is queued for it (a
//!   targeted message wakes only its host; a broadcast may wake every
//!   watcher) and says when the host is deleted. Subscribing before reading
//!   means nothing queued in between is missed.
//! - Memory does not grow with the unacked backlog beyond a small index
//!   entry per message: bodies are read back from durable storage.

pub mod file;
pub mod nats;

use std::sync::Arc;

use futures::future::BoxFuture;
use jiff::Timestamp;
use serde_json::value::RawValue;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::api::ItemStatus;

/// A valid message from a `POST /v1/messages`, encoded once.
pub struct Incoming {
    pub id: Uuid,
    pub source: String,
    pub target: Option<String>,
    /// The message's compact one-line JSON: stored and delivered as is.
    pub json: Box<RawValue>,
}

/// One message of a host's queue.
#[derive(Clone)]
pub struct Delivery {
    pub seq: u64,
    pub json: Arc<RawValue>,
}

/// A host the store knows: registered, or with messages queued for it.
#[derive(Debug, Clone)]
pub struct KnownHost {
    pub id: String,
    /// `None` for a host that has messages queued but never registered
    /// (or was deleted).
    pub registered_at: Option<Timestamp>,
    /// Kept across restarts; the hub shows "now" while a stream is open.
    pub last_seen: Option<Timestamp>,
    pub pending: usize,
}

/// Why the store could not do something: transient for clients (503).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

pub type StoreResult<T> = Result<T, StoreError>;

/// The operations the hub needs from its store. Object-safe, so the hub
/// holds an `Arc<dyn Store>` and the implementation is chosen at start.
pub trait Store: Send + Sync {
    /// Stores a batch durably: one status per item, in order.
    fn append(&self, batch: Vec<Incoming>) -> BoxFuture<'_, StoreResult<Vec<ItemStatus>>>;
    /// Registers the host if it is not (durably); notes it as seen.
    fn register<'a>(&'a self, host: &'a str) -> BoxFuture<'a, StoreResult<()>>;
    /// Deregisters the host and drops its queue; false if it had neither.
    fn delete_host<'a>(&'a self, host: &'a str) -> BoxFuture<'a, StoreResult<bool>>;
    /// Acks these ids for the host; returns how many were pending.
    fn ack<'a>(&'a self, host: &'a str, ids: Vec<Uuid>) -> BoxFuture<'a, StoreResult<usize>>;
    /// Up to `limit` messages of the host's queue after `after`, in order.
    fn read<'a>(
        &'a self,
        host: &'a str,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'a, StoreResult<Vec<Delivery>>>;
    /// Every known host, sorted by id.
    fn hosts(&self) -> BoxFuture<'_, StoreResult<Vec<KnownHost>>>;
    /// Whether the host is registered.
    fn is_registered(&self, host: &str) -> bool;
    /// How many hosts are registered.
    fn registered_count(&self) -> usize;
    /// The newest sequence number issued.
    fn last_seq(&self) -> u64;
    /// Wake-ups for the host's streams and long-polls.
    fn watch(&self, host: &str) -> Wake;
    /// Every accepted message as it passes (no replay; a slow reader skips).
    fn feed(&self) -> broadcast::Receiver<Arc<RawValue>>;
    /// Notes that the host was seen now (kept across clean restarts).
    fn seen(&self, host: &str);
    /// Cancelled when the store can no longer serve (its writer died).
    fn broken(&self) -> CancellationToken;
    /// Finishes what was asked before and stops.
    fn close(&self) -> BoxFuture<'_, ()>;
}

/// What woke a watcher.
#[derive(Debug, PartialEq, Eq)]
pub enum Woken {
    /// Something may have been queued: read again.
    Queued,
    /// The host was deleted (or the store stopped): end.
    Gone,
}

/// A host's wake-ups: its own (targeted messages, deletion) and the
/// hub-wide one for broadcasts.
pub struct Wake {
    host: watch::Receiver<u64>,
    all: watch::Receiver<u64>,
    gone: CancellationToken,
}

impl Wake {
    pub fn new(
        host: watch::Receiver<u64>,
        all: watch::Receiver<u64>,
        gone: CancellationToken,
    ) -> Wake {
        Wake { host, all, gone }
    }

    /// Waits until something is queued or the host is gone.
    pub async fn changed(&mut self) -> Woken {
        let woke = tokio::select! {
            r = self.host.changed() => r.is_ok(),
            r = self.all.changed() => r.is_ok(),
            () = self.gone.cancelled() => false,
        };
        if woke {
            Woken::Queued
        } else {
            Woken::Gone
        }
    }
}
