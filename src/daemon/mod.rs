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
pub(crate) const ACK_QUEUE: usize = 256;

pub async fn run(settings: Settings, opts: Options) -> Result<()> {
    let base = settings.base_dir.clone();
    let (spool, lock) = tokio::task::spawn_blocking(move || -> Result<_> {
        let spool = Spool::open(&base)?;
        let lock = spool.lock_daemon()?;
        Ok((spool, lock))
    })
    .await
    .context("starting the daemon")??;
    if opts.with_hub {
        anyhow::bail!("--with-hub is not available in this build");
    }
    let client = HubClient::new(&settings)?;
    let result = if opts.once {
        once::run(&settings, spool, client).await
    } else {
        run_until_signal(&settings, spool, client).await
    };
    drop(lock);
    result
}

async fn run_until_signal(settings: &Settings, spool: Spool, client: HubClient) -> Result<()> {
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

    shutdown_signal().await;
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
