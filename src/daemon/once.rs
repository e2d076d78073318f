//! `mesync start --once`: one outbox pass and one inbox pull, then exit.
//!
//! For cron and tests. Everything the pass finds is sent; everything the hub
//! holds for this host goes through the same receive pipeline as in the
//! running daemon (written, acked, hooked), and the hooks are waited for. A
//! hub that cannot be reached is an error (exit 1); nothing is lost, the
//! next run picks up where this one stopped.

use std::time::Duration;

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use super::pipeline::Pipeline;
use super::poll;
use super::send::OutboxSender;
use crate::client::HubClient;
use crate::config::DaemonConfig;
use crate::spool::Spool;

/// Pages of the hub's backlog one run takes at most (bounded, for cron).
const MAX_PAGES: usize = 1000;
/// How long the hub gets to take the acks of what was written.
const ACK_DEADLINE: Duration = Duration::from_secs(30);

pub async fn run(
    cfg: &DaemonConfig,
    spool: Spool,
    client: HubClient,
    cancel: CancellationToken,
) -> Result<()> {
    let mut sender = OutboxSender::new(
        spool.clone(),
        client.clone(),
        cfg.host_id.clone(),
        cfg.max_message_bytes,
    );
    let mut sent = 0;
    loop {
        let report = sender.pass(&cancel).await?;
        sent += report.sent;
        if let Some(e) = report.hub_error {
            anyhow::bail!("cannot send outbox/ (files stay there): {e}");
        }
        if !report.more || cancel.is_cancelled() {
            break;
        }
    }

    let pipeline = Pipeline::start(cfg, spool, client.clone(), cancel.clone()).await?;
    let pulled = tokio::select! {
        pulled = poll::pull(&client, &cfg.host_id, None, MAX_PAGES, pipeline.input()) => pulled,
        _ = cancel.cancelled() => anyhow::bail!("interrupted; what was not written stays at the hub"),
    };
    let finished = pipeline.finish(ACK_DEADLINE).await;
    tracing::info!(sent, "once: done");
    finished?;
    match pulled.error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
