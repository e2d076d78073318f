//! The daemon (`mesync start`): sends outbox/, receives into inbox/, runs hooks.
//!
//! One daemon per base dir (an `flock`). Two sides share one cancellation
//! token: the sender ([`outbox`], passes by [`send`]) and the receive
//! [`pipeline`] (the hub reader of [`stream`] feeding the inbox writer, the
//! acker and the hook runner). When `stop` fires (the caller's signal
//! handler, or the in-process hub failing), the sender and the reader stop
//! taking new work, the writer finishes the batch in hand, the acker sends
//! the acks owed for what was written, running hooks get a short grace, and
//! `run` returns. Whatever was not finished stays on disk (outbox/) or at
//! the hub (unacked), so stopping at any moment loses nothing.

mod acker;
mod backoff;
mod handoff;
mod hooks;
mod inbox;
mod ledger;
mod once;
mod outbox;
mod pending;
mod pipeline;
mod poll;
mod send;
mod stream;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::client::HubClient;
use crate::config::{DaemonConfig, HubConfig};
use crate::spool::{DaemonLock, Spool};

/// How long the tasks get to finish after a shutdown request.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// The hub of `--with-hub`: bound by the caller (who says where), served here.
pub struct WithHub {
    pub listener: TcpListener,
    pub cfg: HubConfig,
}

/// Runs the daemon until `stop` fires, or for one pass each way with `once`.
pub async fn run(
    mut cfg: DaemonConfig,
    with_hub: Option<WithHub>,
    once: bool,
    stop: CancellationToken,
) -> Result<()> {
    let base = cfg.base_dir.clone();
    let (spool, lock) = tokio::task::spawn_blocking(move || -> Result<_> {
        let spool = Spool::open(&base)?;
        let lock = spool.lock_daemon()?;
        spool.remove_crash_leftovers();
        Ok((spool, lock))
    })
    .await
    .context("starting the daemon")??;
    // Our own token, so the in-process hub failing stops the daemon too.
    let stop = stop.child_token();
    let hub = match with_hub {
        Some(h) => Some(LocalHub::start(h, &mut cfg, stop.clone())?),
        None => None,
    };
    let mut client = HubClient::new(&cfg.client)?;
    let lock = announce_hub(lock, client.hubs().join(",")).await?;
    let hub_file = lock.hub_file().to_path_buf();
    client.on_move(move |hubs| {
        // The hub in use first, for `mesync status` and the command line.
        if let Err(e) = crate::spool::write_hub_file(&hub_file, &hubs.join(",")) {
            tracing::debug!("{e:#}");
        }
    });
    let result = if once {
        once::run(&cfg, spool, client, stop).await
    } else {
        run_until_stopped(&cfg, spool, client, stop).await
    };
    // The hub stops last: the daemon's final acks go to it.
    let hub_result = match hub {
        Some(hub) => hub.stop().await,
        None => Ok(()),
    };
    drop(lock);
    result.and(hub_result)
}

/// Names our hub beside the lock, for the command line in other shells.
/// Without it they fall back to their own settings: worth a warning only.
async fn announce_hub(lock: DaemonLock, url: String) -> Result<DaemonLock> {
    let (lock, result) = tokio::task::spawn_blocking(move || {
        let result = lock.announce_hub(&url);
        (lock, result)
    })
    .await
    .context("starting the daemon")?;
    if let Err(e) = result {
        tracing::warn!("{e:#}");
    }
    Ok(lock)
}

/// The hub of `--with-hub`, running in this process.
struct LocalHub {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl LocalHub {
    /// Serves the hub on its listener and points the daemon at it unless
    /// `server_url` was set. If the hub fails, `daemon_stop` fires so the
    /// whole process exits with the hub's error.
    fn start(
        hub: WithHub,
        cfg: &mut DaemonConfig,
        daemon_stop: CancellationToken,
    ) -> Result<LocalHub> {
        let addr = hub
            .listener
            .local_addr()
            .context("reading the hub's address")?;
        if cfg.server_url_is_default {
            cfg.client.server_url = format!("http://{}", reachable(addr));
        }
        tracing::info!(%addr, server = %cfg.client.server_url, "hub running in this process");
        let stop = CancellationToken::new();
        let serve = crate::hub::serve(hub.listener, hub.cfg, stop.clone());
        let task = tokio::spawn(async move {
            let result = serve.await;
            if result.is_err() {
                daemon_stop.cancel();
            }
            result
        });
        Ok(LocalHub { stop, task })
    }

    async fn stop(self) -> Result<()> {
        self.stop.cancel();
        match tokio::time::timeout(SHUTDOWN_DEADLINE, self.task).await {
            Ok(Ok(result)) => result.context("the hub failed"),
            Ok(Err(e)) => Err(anyhow::anyhow!("the hub task failed: {e}")),
            Err(_) => {
                tracing::warn!("hub did not stop in time");
                Ok(())
            }
        }
    }
}

/// The address to connect to for a listener on `addr`: loopback for the
/// unspecified address (`0.0.0.0` or `::`).
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        ip if !ip.is_unspecified() => ip,
        IpAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
        IpAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
    };
    SocketAddr::new(ip, addr.port())
}

async fn run_until_stopped(
    cfg: &DaemonConfig,
    spool: Spool,
    client: HubClient,
    stop: CancellationToken,
) -> Result<()> {
    let cancel = CancellationToken::new();
    let hub_back = Arc::new(Notify::new());
    let pipeline =
        pipeline::Pipeline::start(cfg, spool.clone(), client.clone(), cancel.clone()).await?;
    tracing::info!(host = %cfg.host_id, server = %client.server_url(), base = %spool.base().display(), "daemon started");
    crate::sd_notify::ready(&format!("daemon running for {}", client.server_url()));

    let reader = stream::HubReader::new(
        client.clone(),
        cfg.host_id.clone(),
        pipeline.input().clone(),
        cfg.poll_interval,
        hub_back.clone(),
    );
    let outbox = outbox::Outbox {
        sender: send::OutboxSender::new(
            spool.clone(),
            client,
            cfg.host_id.clone(),
            cfg.max_message_bytes,
        ),
        spool,
        poll_interval: cfg.poll_interval,
        sent_ttl: cfg.sent_ttl,
        hub_back,
    };
    let tasks = [
        tokio::spawn(outbox.run(cancel.clone())),
        tokio::spawn(reader.run(cancel.clone())),
    ];

    let failed = tokio::select! {
        _ = stop.cancelled() => false,
        _ = pipeline.writer_stopped() => true,
    };
    tracing::info!("shutting down");
    cancel.cancel();
    let all = async {
        futures::future::join_all(tasks).await;
        pipeline.finish(SHUTDOWN_DEADLINE).await
    };
    match tokio::time::timeout(SHUTDOWN_DEADLINE, all).await {
        Ok(Err(e)) => tracing::warn!("{e:#}"),
        Ok(Ok(())) => {}
        Err(_) => tracing::warn!(
            "some work did not finish in time; it stays queued and resumes at the next start"
        ),
    }
    if failed {
        anyhow::bail!("the inbox writer stopped unexpectedly; see the log above");
    }
    Ok(())
}
