//! The store on a NATS JetStream cluster, shared by any number of hubs.
//!
//! Layout in JetStream (created when missing, with `store_replicas` copies):
//! - the stream `MESYNC` is the log: a targeted message is stored under
//!   `mesync.to.<host>`, a broadcast once under `mesync.all`, each with its
//!   id as `Nats-Msg-Id` (JetStream's duplicate window is `dedupe_window`)
//!   and its source in a header. The stream sequence number is the per-host
//!   sequence number, so it only grows on every hub and across restarts.
//!   `retention` is the stream's `max_age`.
//! - the bucket `mesync_hosts` holds one cursor per host (registered at,
//!   broadcasts since which sequence, ack floor, acks above it), changed
//!   only by compare-and-set so two hubs never lose each other's acks.
//! - the bucket `mesync_seen` holds each host's `last_seen`.
//!
//! Each hub follows the stream and the buckets with push subscriptions
//! (`follow.rs`) into an in-memory index (`index.rs`): that wakes its
//! streams within milliseconds of a message accepted by any hub, and tells
//! what is in a host's queue; bodies are read back from JetStream.
//! `cursors.rs` changes cursors; `setup.rs` connects and creates.

mod cursors;
mod follow;
mod index;
mod setup;

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv, stream::Stream as JsStream};
use async_nats::HeaderMap;
use dashmap::DashMap;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use jiff::Timestamp;
use serde_json::value::RawValue;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::file::wakes::Wakes;
use super::{Delivery, Incoming, KnownHost, Store, StoreError, StoreResult, Wake};
use crate::api::ItemStatus;
use crate::hub::metrics::Metrics;
use index::Index;
pub use setup::NatsConfig;

/// The header that carries a message's source.
const SOURCE: &str = "Mesync-Source";
/// How often one host's `last_seen` is written to the bucket at most.
const SEEN_EVERY: Duration = Duration::from_secs(5);

/// What the store's tasks share with it.
pub(crate) struct Shared {
    index: RwLock<Index>,
    wakes: Wakes,
    feed: broadcast::Sender<Arc<RawValue>>,
    /// The newest sequence number indexed, for `append` to wait on.
    indexed: watch::Sender<u64>,
    seen: DashMap<String, Timestamp>,
    metrics: Arc<Metrics>,
}

pub struct NatsStore {
    shared: Arc<Shared>,
    js: jetstream::Context,
    stream: JsStream,
    hosts: kv::Store,
    seen_kv: kv::Store,
    persisted: DashMap<String, Instant>,
    stop: CancellationToken,
    broken: CancellationToken,
}

fn err(what: &str) -> impl Fn(&dyn std::fmt::Display) -> StoreError + '_ {
    move |e| StoreError(format!("NATS JetStream: {what}: {e}"))
}

/// The subject of a message for `target` (`None`: a broadcast). Host ids
/// may hold `.`, a subject separator; `~` is never in a host id.
fn subject(target: Option<&str>) -> String {
    match target {
        Some(host) => format!("mesync.to.{}", host.replace('.', "~")),
        None => "mesync.all".to_string(),
    }
}

impl NatsStore {
    /// Connects (retrying while NATS is unreachable), creates what is
    /// missing and reads the stream and the buckets into the index.
    pub async fn open(cfg: NatsConfig, metrics: Arc<Metrics>) -> anyhow::Result<NatsStore> {
        let setup::Opened {
            js,
            stream,
            hosts,
            seen,
        } = setup::open(&cfg).await?;
        let shared = Arc::new(Shared {
            index: RwLock::new(Index::default()),
            wakes: Wakes::default(),
            feed: broadcast::channel(1024).0,
            indexed: watch::Sender::new(0),
            seen: DashMap::new(),
            metrics,
        });
        let stop = CancellationToken::new();
        let prune_every =
            (cfg.retention / 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
        follow::start(&shared, &stream, &hosts, &seen, &stop).await?;
        tokio::spawn(follow::prune(
            shared.clone(),
            stream.clone(),
            prune_every,
            stop.clone(),
        ));
        Ok(NatsStore {
            shared,
            js,
            stream,
            hosts,
            seen_kv: seen,
            persisted: DashMap::new(),
            stop,
            broken: CancellationToken::new(),
        })
    }

    fn index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.shared
            .index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn append_batch(&self, batch: Vec<Incoming>) -> StoreResult<Vec<ItemStatus>> {
        let mut statuses = vec![ItemStatus::Duplicate; batch.len()];
        let mut ids = HashSet::with_capacity(batch.len());
        let mut acks = Vec::with_capacity(batch.len());
        let mut sources = HashSet::new();
        for (i, item) in batch.into_iter().enumerate() {
            sources.insert(item.source.clone());
            if !ids.insert(item.id) {
                continue;
            }
            let mut headers = HeaderMap::new();
            headers.insert(async_nats::header::NATS_MESSAGE_ID, item.id.to_string());
            headers.insert(SOURCE, item.source.as_str());
            let body = String::from(Box::<str>::from(item.json)).into();
            let ack = self
                .js
                .publish_with_headers(subject(item.target.as_deref()), headers, body)
                .await
                .map_err(|e| err("publishing")(&e))?;
            acks.push((i, ack));
        }
        let mut newest = 0;
        for (i, ack) in acks {
            let ack = ack.await.map_err(|e| err("storing")(&e))?;
            newest = newest.max(ack.sequence);
            if !ack.duplicate {
                statuses[i] = ItemStatus::Accepted;
            }
        }
        // Posting registers the source, as with every store.
        for source in sources {
            if !self.index().is_registered(&source) {
                cursors::register(self, &source).await?;
            }
        }
        // Reads go through the index: let it see what was just stored, so a
        // client that posts and then reads from this hub finds it.
        let mut indexed = self.shared.indexed.subscribe();
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            indexed.wait_for(|seq| *seq >= newest),
        )
        .await;
        Ok(statuses)
    }

    async fn read_bodies(&self, seqs: Vec<u64>) -> StoreResult<Vec<Delivery>> {
        let got: Vec<_> = futures::stream::iter(seqs)
            .map(|seq| self.stream.get_raw_message(seq).map(move |r| (seq, r)))
            .buffered(32)
            .collect()
            .await;
        let mut out = Vec::with_capacity(got.len());
        let mut missing = false;
        for (seq, r) in got {
            use async_nats::jetstream::stream::LastRawMessageErrorKind as K;
            match r {
                Ok(m) => match serde_json::from_slice::<Box<RawValue>>(&m.payload) {
                    Ok(json) => out.push(Delivery {
                        seq,
                        json: Arc::from(json),
                    }),
                    Err(e) => {
                        tracing::warn!(seq, "skipping a stored message that is not JSON: {e}")
                    }
                },
                // Expired (retention) or dropped by a DELETE meanwhile.
                Err(e) if matches!(e.kind(), K::NoMessageFound) => missing = true,
                Err(e)
                    if matches!(e.kind(), K::JetStream(j) if j.error_code()
                    == async_nats::jetstream::ErrorCode::NO_MESSAGE_FOUND) =>
                {
                    missing = true
                }
                Err(e) => return Err(err("reading a message")(&e)),
            }
        }
        if missing {
            follow::drop_expired(&self.shared, &self.stream).await;
        }
        Ok(out)
    }

    fn known_hosts(&self) -> Vec<KnownHost> {
        let ix = self.index();
        ix.hosts()
            .into_iter()
            .filter_map(|id| {
                let registered_at = ix.cursor(&id).and_then(|(c, _)| c.registered_at);
                let pending = ix.pending(&id);
                if registered_at.is_none() && pending == 0 {
                    return None;
                }
                let last_seen = self.shared.seen.get(&id).map(|t| *t);
                Some(KnownHost {
                    id,
                    registered_at,
                    last_seen,
                    pending,
                })
            })
            .collect()
    }

    /// Writes the host's `last_seen` to the bucket now and then.
    fn persist_seen(&self, host: &str, at: Timestamp) {
        let now = Instant::now();
        let due = self
            .persisted
            .get(host)
            .is_none_or(|t| now.duration_since(*t) >= SEEN_EVERY);
        if !due {
            return;
        }
        self.persisted.insert(host.to_string(), now);
        let kv = self.seen_kv.clone();
        let host = host.to_string();
        tokio::spawn(async move {
            if let Err(e) = kv.put(&host, at.to_string().into()).await {
                tracing::debug!(%host, "could not note last_seen: {e}");
            }
        });
    }
}

impl Store for NatsStore {
    fn append(&self, batch: Vec<Incoming>) -> BoxFuture<'_, StoreResult<Vec<ItemStatus>>> {
        self.append_batch(batch).boxed()
    }

    fn register<'a>(&'a self, host: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        async move {
            self.seen(host);
            if self.index().is_registered(host) {
                return Ok(());
            }
            cursors::register(self, host).await
        }
        .boxed()
    }

    fn delete_host<'a>(&'a self, host: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        cursors::delete(self, host).boxed()
    }

    fn ack<'a>(&'a self, host: &'a str, ids: Vec<Uuid>) -> BoxFuture<'a, StoreResult<usize>> {
        cursors::ack(self, host, ids).boxed()
    }

    fn read<'a>(
        &'a self,
        host: &'a str,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'a, StoreResult<Vec<Delivery>>> {
        let seqs = self.index().queue(host, after, limit);
        self.read_bodies(seqs).boxed()
    }

    fn is_registered(&self, host: &str) -> bool {
        self.index().is_registered(host)
    }

    fn registered_count(&self) -> usize {
        self.index().registered_count()
    }

    fn hosts(&self) -> BoxFuture<'_, StoreResult<Vec<KnownHost>>> {
        let hosts = self.known_hosts();
        async move { Ok(hosts) }.boxed()
    }

    fn last_seq(&self) -> u64 {
        self.index().last_seq
    }

    fn watch(&self, host: &str) -> Wake {
        self.shared.wakes.subscribe(host)
    }

    fn feed(&self) -> broadcast::Receiver<Arc<RawValue>> {
        self.shared.feed.subscribe()
    }

    fn seen(&self, host: &str) {
        let now = Timestamp::now();
        self.shared.seen.insert(host.to_string(), now);
        self.persist_seen(host, now);
    }

    fn broken(&self) -> CancellationToken {
        self.broken.clone()
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        async move {
            self.stop.cancel();
            let seen: Vec<(String, Timestamp)> = self
                .shared
                .seen
                .iter()
                .map(|e| (e.key().clone(), *e.value()))
                .collect();
            for (host, at) in seen {
                let _ = self.seen_kv.put(&host, at.to_string().into()).await;
            }
        }
        .boxed()
    }
}
