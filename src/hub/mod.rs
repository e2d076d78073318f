//! The hub (`mesync serve`): stores messages durably, fans them out to
//! per-host queues and pushes them over SSE (or long-poll) until each host
//! acks.
//!
//! Layout: `store.rs` and `records.rs` own the files (segments, group
//! commit), `replay.rs` rebuilds memory from them, `compact.rs` keeps them
//! small, `writer.rs` is the one thread that changes state, `state.rs` holds
//! hosts and queues, `routes/` is the HTTP API, `error.rs` its error answer.

mod compact;
pub mod dashboard;
pub mod error;
pub mod metrics;
mod queue;
mod records;
mod replay;
mod routes;
mod state;
mod store;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::HubConfig;
use error::ApiError;
use state::{HostState, Limits, State};
use writer::WriterHandle;

/// What every request handler shares.
pub struct Hub {
    state: Arc<State>,
    writer: WriterHandle,
    /// Cancelled at shutdown: ends streams and long-polls.
    stop: CancellationToken,
}

impl Hub {
    /// The host, registered first if it is not (durably, via the writer).
    async fn register(&self, id: &str) -> Result<Arc<HostState>, ApiError> {
        if let Some(h) = self.state.host(id) {
            if h.is_registered() {
                h.touch();
                return Ok(h);
            }
        }
        self.writer.register(id).await
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
    // Our own token: stopping the hub (also when its writer dies) must not
    // cancel the caller's other work unless the caller asked for it.
    let stop = shutdown.child_token();
    let writer_gone = CancellationToken::new();
    let hub = open(&cfg, stop.clone(), writer_gone.clone()).await?;
    let writer = hub.writer.clone();
    let sweeper = tokio::spawn(sweep_periodically(
        writer.clone(),
        cfg.retention,
        stop.clone(),
    ));
    if cfg.token.is_none() {
        tracing::warn!("hub is open: anyone who can reach {addr} can read and send messages; set token (MESYNC_TOKEN)");
    }
    tracing::info!(%addr, data_dir = %cfg.data_dir.display(), "hub listening");
    let served = axum::serve(listener, router(hub))
        .with_graceful_shutdown(stop_when(stop.clone(), writer_gone.clone()))
        .await
        .context("serving HTTP");
    stop.cancel();
    let _ = sweeper.await;
    let writer_died = writer_gone.is_cancelled();
    writer.stop().await;
    writer_gone.cancelled().await;
    served?;
    if writer_died && !shutdown.is_cancelled() {
        anyhow::bail!("the hub's store writer stopped unexpectedly; see the log above");
    }
    tracing::info!("hub stopped");
    Ok(())
}

/// Replays the data dir and starts the writer thread.
async fn open(
    cfg: &HubConfig,
    stop: CancellationToken,
    writer_gone: CancellationToken,
) -> anyhow::Result<Arc<Hub>> {
    let state = Arc::new(State::new(Limits {
        token: cfg.token.clone(),
        keepalive: cfg.keepalive,
        retention: cfg.retention,
        dedupe_window: cfg.dedupe_window,
        max_message_bytes: cfg.max_message_bytes,
    }));
    let (store, dedupe) = {
        let (state, dir) = (state.clone(), cfg.data_dir.clone());
        tokio::task::spawn_blocking(move || replay::open(&state, &dir))
            .await
            .context("opening the hub store")??
    };
    let writer = writer::spawn(state.clone(), store, dedupe, writer_gone)?;
    Ok(Arc::new(Hub {
        state,
        writer,
        stop,
    }))
}

/// Resolves when the hub is asked to stop or its store writer has died.
async fn stop_when(stop: CancellationToken, writer_gone: CancellationToken) {
    tokio::select! {
        () = stop.cancelled() => {}
        () = writer_gone.cancelled() => tracing::error!("the store writer stopped; shutting the hub down"),
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

/// Asks the writer to expire and compact every minute (or every `retention`
/// if shorter, so short retentions are honoured promptly).
async fn sweep_periodically(writer: WriterHandle, retention: Duration, stop: CancellationToken) {
    let period = retention
        .min(Duration::from_secs(60))
        .max(Duration::from_secs(1));
    let mut tick = tokio::time::interval(period);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => writer.sweep(),
            () = stop.cancelled() => return,
        }
    }
}
