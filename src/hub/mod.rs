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
mod auth;
mod conn;
pub mod dashboard;
pub mod error;
pub mod metrics;
mod presence;
mod routes;
mod store;
mod tls;

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
    credentials: Arc<auth::Credentials>,
    /// The bound on request bodies in memory.
    bodies: routes::BodyBudget,
    /// Cancelled at shutdown: ends streams and long-polls.
    stop: CancellationToken,
}

/// Limits and timings the handlers need from the cfg.
#[derive(Debug, Clone)]
struct Limits {
    keepalive: Duration,
    max_message_bytes: u64,
    /// Web origins besides the hub's own that may call it (lower case).
    allowed_origins: Vec<String>,
    max_hosts: usize,
}

impl Hub {
    /// Registers the host if it is not (durably) and notes it as seen;
    /// 429 when `max_hosts` are registered already.
    async fn register(&self, host: &str) -> Result<(), ApiError> {
        self.room_for(&[host])?;
        Ok(self.store.register(host).await?)
    }

    /// 429 unless these hosts, those of them not registered yet, fit under
    /// `max_hosts`: no client can make one broadcast cost millions of queues.
    fn room_for(&self, hosts: &[&str]) -> Result<(), ApiError> {
        let new = hosts
            .iter()
            .filter(|h| !self.store.is_registered(h))
            .count();
        if new == 0 {
            return Ok(());
        }
        let max = self.limits.max_hosts;
        if self.store.registered_count() + new > max {
            return Err(ApiError::TooMany(format!(
                "the hub has its limit of {max} registered hosts (max_hosts); \
                 delete hosts that are gone or raise max_hosts"
            )));
        }
        Ok(())
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
    let open_files = raise_open_files_limit();
    let tls = tls::acceptor(&cfg)?;
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
    let reread = tokio::spawn(
        hub.credentials
            .clone()
            .follow(cfg.reread.clone(), stop.clone()),
    );
    if hub.credentials.is_open() {
        tracing::warn!("hub is open: anyone who can reach {addr} can read and send messages; set token (MESYNC_TOKEN) or tokens_file (docs/security.md)");
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, scheme, data_dir = %cfg.data_dir.display(), "hub listening");
    let watcher = tokio::spawn(stop_when(stop.clone(), broken.clone()));
    conn::serve(
        listener,
        router(hub),
        conn_limits(&cfg, open_files),
        tls.clone(),
        stop.clone(),
    )
    .await;
    stop.cancel();
    let _ = watcher.await;
    let _ = activity.await;
    let _ = reread.await;
    let store_died = broken.is_cancelled();
    store.close().await;
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
    let credentials = Arc::new(auth::Credentials::new(
        cfg.token.as_deref(),
        cfg.tokens_file.clone(),
    )?);
    let store: Arc<dyn Store> = match &cfg.store {
        StoreKind::File => {
            let file = FileConfig {
                dir: cfg.data_dir.clone(),
                retention: cfg.retention,
                dedupe_window: cfg.dedupe_window,
                repair: cfg.repair,
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
            keepalive: cfg.keepalive,
            max_message_bytes: cfg.max_message_bytes,
            allowed_origins: cfg.allowed_origins.clone(),
            max_hosts: cfg.max_hosts,
        },
        credentials,
        bodies: routes::BodyBudget::new(cfg.max_body_memory, cfg.body_timeout),
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

/// The connection limits, with `max_connections` kept below the open-files
/// limit: the hub needs descriptors of its own (segments, the data dir), and
/// running out of them is what lets a flood of connections stop a server.
fn conn_limits(cfg: &HubConfig, open_files: u64) -> conn::ConnLimits {
    let room = usize::try_from(open_files.saturating_sub(FILES_RESERVED)).unwrap_or(usize::MAX);
    let max_connections = if cfg.max_connections > room {
        tracing::warn!(
            max_connections = cfg.max_connections,
            open_files,
            "max_connections is above what the open-files limit leaves; using {room}"
        );
        room.max(1)
    } else {
        cfg.max_connections
    };
    conn::ConnLimits {
        max_connections,
        header_timeout: cfg.header_timeout,
        stall_timeout: cfg.stall_timeout,
    }
}

/// Descriptors kept for the hub's own files when bounding connections.
const FILES_RESERVED: u64 = 128;

/// Lets this process hold as many connections as the system allows: every
/// host keeps a stream open, and the usual soft limit (1024 files) is far
/// below a fleet of thousands. Returns the soft limit in force.
fn raise_open_files_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return u64::MAX;
        }
        if lim.rlim_cur < lim.rlim_max {
            let soft = lim.rlim_cur;
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                tracing::debug!(
                    from = soft,
                    to = lim.rlim_max,
                    "raised the open-files limit"
                );
            } else {
                lim.rlim_cur = soft;
            }
        }
    }
    lim.rlim_cur
}
