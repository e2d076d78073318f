//! The embedded store: one append-only log in JSON-lines segment files under
//! `data_dir`, with every host a cursor into it.
//!
//! Who owns what: `records` (the typed lines), `segments` (the files, fsync,
//! rewrite), `model` + `log` + `cursor` (the state machine and its index,
//! changed only by `Model::apply`), `writer` + `plan` (the one thread that
//! decides, writes and applies, group commit), `compact` (retention, forgetting, segment
//! rewrites), `open` + `legacy` (replay and conversion at start), `cache`
//! (bounded message bodies), `wakes` (who to wake). Request handlers only
//! read the model under a shared lock and the bodies through the cache.

mod cache;
mod compact;
mod cursor;
mod legacy;
mod log;
mod manifest;
mod model;
mod open;
mod plan;
mod read;
mod records;
#[cfg(test)]
mod records_properties;
mod segments;
mod slots;
#[cfg(test)]
mod tests;
pub(super) mod wakes;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use anyhow::Context;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::value::RawValue;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Delivery, Incoming, KnownHost, Store, StoreError, StoreResult, Wake};
use crate::api::ItemStatus;
use crate::hub::metrics::Metrics;
use cache::BodyCache;
use model::Model;
use wakes::Wakes;
use writer::{Op, Reply, Writer};

/// Requests waiting for the writer. Bounded: a full channel makes handlers
/// wait (backpressure) instead of queueing without limit.
const CHANNEL_CAPACITY: usize = 1024;
/// Capacity of the hub-wide feed; a watcher that falls this far behind
/// skips ahead instead of holding messages in memory.
const FEED_CAPACITY: usize = 1024;

/// What the file store needs from the settings.
#[derive(Debug, Clone)]
pub struct FileConfig {
    pub dir: PathBuf,
    pub retention: Duration,
    pub dedupe_window: Duration,
    /// Start even with a segment missing or torn, logging what is lost.
    pub repair: bool,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    retention_ms: i64,
    dedupe_window_ms: i64,
}

/// What the writer, the sweeper and the handlers share.
struct Shared {
    model: RwLock<Model>,
    cache: BodyCache,
    wakes: Wakes,
    feed: broadcast::Sender<Arc<RawValue>>,
    /// The model's head, readable without the lock.
    last_seq: AtomicU64,
    dir: PathBuf,
    limits: Limits,
    metrics: Arc<Metrics>,
}

impl Shared {
    fn model(&self) -> RwLockReadGuard<'_, Model> {
        // A panic mid-apply stops the writer (and so the hub); until then
        // keep serving what is there.
        self.model.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn model_mut(&self) -> RwLockWriteGuard<'_, Model> {
        self.model.write().unwrap_or_else(PoisonError::into_inner)
    }
}

pub struct FileStore {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Op>,
    /// Cancelled when the writer thread ends, for whatever reason.
    broken: CancellationToken,
    /// Stops the periodic sweep.
    stop: CancellationToken,
}

impl FileStore {
    /// Opens (converting and replaying) the data dir and starts the writer.
    pub async fn open(cfg: FileConfig, metrics: Arc<Metrics>) -> anyhow::Result<FileStore> {
        let limits = Limits {
            retention_ms: millis(cfg.retention),
            dedupe_window_ms: millis(cfg.dedupe_window),
        };
        let window_start = now_ms() - limits.dedupe_window_ms;
        let (dir, repair) = (cfg.dir.clone(), cfg.repair);
        let (model, segments, damage) =
            tokio::task::spawn_blocking(move || open::open(&dir, window_start, repair))
                .await
                .context("opening the hub store")??;
        crate::hub::metrics::add(&metrics.store_corrupt_records, damage.corrupt);
        let head = model.head();
        let shared = Arc::new(Shared {
            model: RwLock::new(model),
            cache: BodyCache::new(cache::CAPACITY, cache::LOADED_CAPACITY),
            wakes: Wakes::default(),
            feed: broadcast::Sender::new(FEED_CAPACITY),
            last_seq: AtomicU64::new(head),
            dir: cfg.dir,
            limits,
            metrics,
        });
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let broken = CancellationToken::new();
        let writer = Writer::new(shared.clone(), segments);
        let gone = broken.clone();
        std::thread::Builder::new()
            .name("mesync-store".to_string())
            .spawn(move || {
                let _gone = gone.drop_guard();
                writer.run(rx);
            })
            .context("starting the store writer")?;
        let stop = CancellationToken::new();
        tokio::spawn(sweep_periodically(tx.clone(), cfg.retention, stop.clone()));
        Ok(FileStore {
            shared,
            tx,
            broken,
            stop,
        })
    }

    async fn call<T>(&self, op: impl FnOnce(Reply<T>) -> Op) -> StoreResult<T> {
        let stopped = || StoreError("the hub is shutting down".to_string());
        let (tx, rx) = oneshot::channel();
        self.tx.send(op(tx)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Expires, forgets and compacts now; returns when done.
    #[cfg(test)]
    async fn sweep_now(&self) {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Op::Sweep(Some(tx))).await;
        let _ = rx.await;
    }
}

impl Drop for FileStore {
    /// Without `close` (a failed start, a panic), still end the sweeper, so
    /// the writer's channel closes and its thread ends too.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Store for FileStore {
    fn append(&self, batch: Vec<Incoming>) -> BoxFuture<'_, StoreResult<Vec<ItemStatus>>> {
        self.call(|r| Op::Append(batch, r)).boxed()
    }

    fn is_registered(&self, host: &str) -> bool {
        self.shared
            .model()
            .cursor(host)
            .is_some_and(|c| c.is_registered())
    }

    fn registered_count(&self) -> usize {
        let model = self.shared.model();
        model.cursors.iter().filter(|c| c.is_registered()).count()
    }

    fn register<'a>(&'a self, host: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        async move {
            if !self.is_registered(host) {
                self.call(|r| Op::Register(host.to_string(), r)).await?;
            }
            self.seen(host);
            Ok(())
        }
        .boxed()
    }

    fn delete_host<'a>(&'a self, host: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        self.call(|r| Op::Delete(host.to_string(), r)).boxed()
    }

    fn ack<'a>(&'a self, host: &'a str, ids: Vec<Uuid>) -> BoxFuture<'a, StoreResult<usize>> {
        async move {
            if self.shared.model().host(host).is_none() {
                return Ok(0);
            }
            self.seen(host);
            self.call(|r| Op::Ack(host.to_string(), ids, r)).await
        }
        .boxed()
    }

    fn read<'a>(
        &'a self,
        host: &'a str,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'a, StoreResult<Vec<Delivery>>> {
        read::queue(&self.shared, host, after, limit).boxed()
    }

    fn hosts(&self) -> BoxFuture<'_, StoreResult<Vec<KnownHost>>> {
        let hosts = self.shared.model().hosts();
        let hosts = hosts
            .into_iter()
            .map(|(id, registered_at, last_seen, pending)| KnownHost {
                id,
                registered_at,
                last_seen,
                pending,
            })
            .collect();
        futures::future::ready(Ok(hosts)).boxed()
    }

    fn last_seq(&self) -> u64 {
        self.shared
            .last_seq
            .load(std::sync::atomic::Ordering::Acquire)
    }

    fn watch(&self, host: &str) -> Wake {
        self.shared.wakes.subscribe(host)
    }

    fn feed(&self) -> broadcast::Receiver<Arc<RawValue>> {
        self.shared.feed.subscribe()
    }

    fn seen(&self, host: &str) {
        if let Some(c) = self.shared.model().cursor(host) {
            c.seen(now_ms());
        }
    }

    fn broken(&self) -> CancellationToken {
        self.broken.clone()
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        async move {
            self.stop.cancel();
            let _ = self.tx.send(Op::Stop).await;
            self.broken.cancelled().await;
        }
        .boxed()
    }
}

/// Asks the writer to expire and compact every minute (or every `retention`
/// if shorter, so short retentions are honoured promptly), and once at once:
/// the data dir may have aged while the hub was down.
async fn sweep_periodically(tx: mpsc::Sender<Op>, retention: Duration, stop: CancellationToken) {
    let period = retention
        .min(Duration::from_secs(60))
        .max(Duration::from_secs(1));
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // Skipped when the writer is busy; the next tick comes soon.
                let _ = tx.try_send(Op::Sweep(None));
            }
            () = stop.cancelled() => return,
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}
