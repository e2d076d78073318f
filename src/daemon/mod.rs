//! The daemon (`mesync start`): sends outbox/, receives into inbox/, runs hooks.
//!
//! One daemon per base dir (an `flock`). Four tasks share one cancellation
//! token: the sender ([`outbox`]), the receiver ([`stream`] feeding [`inbox`]),
//! the acker and the hook runner ([`hooks`]). On SIGINT/SIGTERM the sender and
//! receiver finish the batch in hand, the acker sends the acks owed for what
//! was written, running hooks get a short grace, and the process exits 0.
//! Whatever was not finished stays on disk (outbox/) or at the hub (unacked),
//! so stopping at any moment loses nothing.

mod backoff;
mod hooks;
mod inbox;
mod ledger;
mod once;
mod outbox;
mod pending;
mod send;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::client::HubClient;
use crate::config::Settings;
use crate::spool::Spool;

/// How `mesync start` was asked to run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub once: bool,
    pub with_hub: bool,
}

/// How long the tasks get to finish after a shutdown request.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);
/// Batches of ids waiting for the acker. When it falls this far behind (the
/// hub is failing), receiving waits for it: the backpressure we want.
const ACK_QUEUE: usize = 256;

pub async fn run(settings: Settings, opts: Options) -> Result<()> {
    let base = settings.base_dir.clone();
    let (spool, lock) = tokio::task::spawn_blocking(move || -> Result<_> {
        let spool = Spool::open(&base)?;
        let lock = spool.lock_daemon()?;
        Ok((spool, lock))
    })
    .await
    .context("starting the daemon")??;
    let mut settings = settings;
    // Fired by a signal, or by the in-process hub failing.
    let stop = CancellationToken::new();
    let hub = if opts.with_hub {
        Some(start_hub(&mut settings, stop.clone()).await?)
    } else {
        None
    };
    let client = HubClient::new(&settings)?;
    let result = if opts.once {
        once::run(&settings, spool, client).await
    } else {
        run_until_stopped(&settings, spool, client, stop).await
    };
    // The hub stops last: the daemon's final acks go to it.
    let hub_result = match hub {
        Some(hub) => hub.stop().await,
        None => Ok(()),
    };
    drop(lock);
    result.and(hub_result)
}

/// The hub of `--with-hub`, running in this process.
struct LocalHub {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl LocalHub {
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

/// Binds `settings.bind`, serves the hub there, and points the daemon at it
/// unless `server_url` was set explicitly. If the hub fails, `daemon_stop`
/// fires so the whole process exits with the hub's error.
async fn start_hub(settings: &mut Settings, daemon_stop: CancellationToken) -> Result<LocalHub> {
    let listener = tokio::net::TcpListener::bind(settings.bind)
        .await
        .with_context(|| format!("cannot listen on {} (bind)", settings.bind))?;
    let addr = listener.local_addr().context("reading the hub's address")?;
    let url_is_default = settings
        .origins
        .iter()
        .any(|(k, _, src)| *k == "server_url" && *src == crate::config::Source::Default);
    if url_is_default {
        let ip = match addr.ip() {
            ip if !ip.is_unspecified() => ip,
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        };
        settings.server_url = format!("http://{}", std::net::SocketAddr::new(ip, addr.port()));
    }
    tracing::info!(%addr, server = %settings.server_url, "hub running in this process");
    let stop = CancellationToken::new();
    let serve = crate::hub::serve(listener, settings.clone(), stop.clone());
    let task = tokio::spawn(async move {
        let result = serve.await;
        if result.is_err() {
            daemon_stop.cancel();
        }
        result
    });
    Ok(LocalHub { stop, task })
}

async fn run_until_stopped(
    settings: &Settings,
    spool: Spool,
    client: HubClient,
    stop: CancellationToken,
) -> Result<()> {
    let cancel = CancellationToken::new();
    let hub_back = Arc::new(Notify::new());
    let (hooks, hook_task) = hooks::Hooks::start(
        settings.hook_concurrency,
        settings.hook_timeout,
        cancel.clone(),
    );
    let (ack_tx, ack_rx) = mpsc::channel(ACK_QUEUE);
    let inbox = open_inbox(settings, &spool, ack_tx, hooks).await?;
    tracing::info!(host = %settings.host_id, server = %client.server_url(), base = %spool.base().display(), "daemon started");

    let receiver = stream::Receiver::new(
        client.clone(),
        settings.host_id.clone(),
        inbox,
        settings.poll_interval,
        hub_back.clone(),
    );
    let sender = send::Sender::new(
        spool.clone(),
        client.clone(),
        settings.host_id.clone(),
        settings.max_message_bytes,
    );
    let outbox = outbox::Outbox {
        sender,
        spool,
        poll_interval: settings.poll_interval,
        sent_ttl: settings.sent_ttl,
        hub_back,
    };
    let tasks = vec![
        tokio::spawn(outbox.run(cancel.clone())),
        tokio::spawn(receiver.run(cancel.clone())),
        tokio::spawn(inbox::ack_loop(
            client,
            settings.host_id.clone(),
            ack_rx,
            cancel.clone(),
        )),
        hook_task,
    ];

    tokio::select! {
        _ = shutdown_signal() => {}
        _ = stop.cancelled() => {}
    }
    tracing::info!("shutting down");
    cancel.cancel();
    let all = futures::future::join_all(tasks);
    if tokio::time::timeout(SHUTDOWN_DEADLINE, all).await.is_err() {
        tracing::warn!(
            "some work did not finish in time; it stays queued and resumes at the next start"
        );
    }
    Ok(())
}

async fn open_inbox(
    settings: &Settings,
    spool: &Spool,
    acks: mpsc::Sender<Vec<uuid::Uuid>>,
    hooks: hooks::Hooks,
) -> Result<inbox::Inbox> {
    let (spool, retention) = (spool.clone(), settings.retention);
    tokio::task::spawn_blocking(move || inbox::Inbox::open(spool, retention, acks, hooks))
        .await
        .context("loading the received-ids ledger")?
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
