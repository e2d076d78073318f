//! The hub (`mesync serve`): stores messages durably, fans them out to
//! hosts and pushes them over SSE (or long-poll) until each host acks.
//!
//! Layout: `store/` is everything about where messages live, behind the
//! `Store` trait (`store/file/` is the embedded log of segment files);
//! `routes/` is the HTTP API and knows only that trait; `presence.rs`
//! counts this hub's open streams; `error.rs` is the error answer,
//! `metrics.rs` the counters, `dashboard.rs` the page, `activity.rs` the
//! recent messages and per-second counts the page starts from.

mod activity;
pub mod dashboard;
pub mod error;
pub mod metrics;
mod presence;
mod routes;
mod store;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::kinds::StoreKind;
use crate::config::HubConfig;
use activity::Activity;
use error::ApiError;
use metrics::Metrics;
use presence::Presence;
use store::file::{FileConfig, FileStore};
use store::nats::{NatsConfig, NatsStore};
use store::Store;

/// What every request handler shares.
pub struct Hub {
    store: Arc<dyn Store>,
    presence: Arc<Presence>,
    metrics: Arc<Metrics>,
    activity: Arc<Activity>,
    limits: Limits,
    /// Cancelled at shutdown: ends streams and long-polls.
    stop: CancellationToken,
}

/// Limits and timings the handlers need from the cfg.
#[derive(Debug, Clone)]
struct Limits {
    token: Option<String>,
    keepalive: Duration,
    max_message_bytes: u64,
}

impl Hub {
    /// Registers the host if it is not (durably) and notes it as seen.
    async fn register(&self, host: &str) -> Result<(), ApiError> {
        Ok(self.store.register(host).await?)
    }
}

/// The HTTP API on top of a running hub.
pub fn router(hub: Arc<Hub>) -> Router {
    routes::router(hub)
}

/// A listener for [`serve`] with a deep accept queue: thousands of hosts
/// reconnect at once after a hub restart, and the default (128) would drop
/// their SYNs and stall each for a second.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Serves the hub on `listener` until `shutdown` is cancelled, then finishes
/// in-flight writes and returns. `mesync start --with-hub` calls this too.
pub async fn serve(
    listener: TcpListener,
    cfg: HubConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener
        .local_addr()
        .context("reading the listening address")?;
    raise_open_files_limit();
    // Our own token: stopping the hub (also when its store dies) must not
    // cancel the caller's other work unless the caller asked for it.
    let stop = shutdown.child_token();
    // Opening on NATS can wait long (a cluster that is not up yet): a stop
    // asked for meanwhile ends it. The file store opens at once.
    let hub = match cfg.store {
        StoreKind::File => open(&cfg, stop.clone()).await?,
        StoreKind::Nats(_) => tokio::select! {
            hub = open(&cfg, stop.clone()) => hub?,
            () = stop.cancelled() => {
                tracing::info!("hub stopped before its store was ready");
                return Ok(());
            }
        },
    };
    let store = hub.store.clone();
    let broken = store.broken();
    let activity = tokio::spawn(hub.activity.clone().follow(
        store.feed(),
        hub.metrics.clone(),
        stop.clone(),
    ));
    if cfg.token.is_none() {
        tracing::warn!("hub is open: anyone who can reach {addr} can read and send messages; set token (MESYNC_TOKEN)");
    }
    tracing::info!(%addr, data_dir = %cfg.data_dir.display(), "hub listening");
    let served = axum::serve(listener, router(hub))
        .with_graceful_shutdown(stop_when(stop.clone(), broken.clone()))
        .await
        .context("serving HTTP");
    stop.cancel();
    let _ = activity.await;
    let store_died = broken.is_cancelled();
    store.close().await;
    served?;
    if store_died && !shutdown.is_cancelled() {
        anyhow::bail!("the hub's store writer stopped unexpectedly; see the log above");
    }
    tracing::info!("hub stopped");
    Ok(())
}

/// Opens the store (replaying the data dir) and builds the shared state.
/// The one place that reads the settings.
async fn open(cfg: &HubConfig, stop: CancellationToken) -> anyhow::Result<Arc<Hub>> {
    let metrics = Arc::new(Metrics::default());
    let store: Arc<dyn Store> = match &cfg.store {
        StoreKind::File => {
            let file = FileConfig {
                dir: cfg.data_dir.clone(),
                retention: cfg.retention,
                dedupe_window: cfg.dedupe_window,
            };
            Arc::new(FileStore::open(file, metrics.clone()).await?)
        }
        StoreKind::Nats(urls) => Arc::new(
            NatsStore::open(
                NatsConfig {
                    urls: urls.clone(),
                    replicas: cfg.store_replicas,
                    retention: cfg.retention,
                    dedupe_window: cfg.dedupe_window,
                },
                metrics.clone(),
            )
            .await?,
        ),
    };
    Ok(Arc::new(Hub {
        store,
        presence: Arc::default(),
        metrics,
        activity: Arc::default(),
        limits: Limits {
            token: cfg.token.clone(),
            keepalive: cfg.keepalive,
            max_message_bytes: cfg.max_message_bytes,
        },
        stop,
    }))
}

/// Resolves when the hub is asked to stop or its store has died.
async fn stop_when(stop: CancellationToken, broken: CancellationToken) {
    tokio::select! {
        () = stop.cancelled() => {}
        () = broken.cancelled() => tracing::error!("the store stopped; shutting the hub down"),
    }
    stop.cancel();
}

/// Lets this process hold as many connections as the system allows: every
/// host keeps a stream open, and the usual soft limit (1024 files) is far
/// below a fleet of thousands.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let soft = lim.rlim_cur;
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                tracing::debug!(
                    from = soft,
                    to = lim.rlim_max,
                    "raised the open-files limit"
                );
            }
        }
    }
}
