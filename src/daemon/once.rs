//! `mesync start --once`: one outbox pass and one inbox pull, then exit.
//!
//! For cron and tests. Everything the pass finds is sent, everything the hub
//! holds for this host is written, acked and hooked, and the hooks are waited
//! for. A hub that cannot be reached is an error (exit 1); nothing is lost,
//! the next run picks up where this one stopped.

use std::time::Duration;

use anyhow::Result;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::hooks::Hooks;
use super::inbox::{self, Inbox};
use super::send::Sender;
use crate::api::MAX_POLL_LIMIT;
use crate::client::HubClient;
use crate::config::Settings;
use crate::spool::Spool;

/// Pages of the hub's backlog one run takes at most (bounded, for cron).
const MAX_PAGES: usize = 1000;

pub async fn run(settings: &Settings, spool: Spool, client: HubClient) -> Result<()> {
    let cancel = CancellationToken::new();
    let mut sender = Sender::new(
        spool.clone(),
        client.clone(),
        settings.host_id.clone(),
        settings.max_message_bytes,
    );
    let mut sent = 0;
    loop {
        let report = sender.pass(&cancel).await?;
        sent += report.sent;
        if let Some(e) = report.hub_error {
            anyhow::bail!("cannot send outbox/ (files stay there): {e}");
        }
        if !report.more {
            break;
        }
    }

    let (hooks, hook_task) = Hooks::start(
        settings.hook_concurrency,
        settings.hook_timeout,
        cancel.clone(),
    );
    let (ack_tx, ack_rx) = mpsc::channel(super::ACK_QUEUE);
    let acker = tokio::spawn(inbox::ack_loop(
        client.clone(),
        settings.host_id.clone(),
        ack_rx,
        cancel.clone(),
    ));
    let (spool2, retention) = (spool.clone(), settings.retention);
    let mut inbox =
        tokio::task::spawn_blocking(move || Inbox::open(spool2, retention, ack_tx, hooks))
            .await??;
    let pulled = pull(&client, &settings.host_id, &mut inbox).await;
    inbox.tick().await;
    // Dropping the inbox closes the ack queue and the hook queue: the acker
    // and the hook runner finish what they hold, then end.
    drop(inbox);
    let acked = tokio::time::timeout(Duration::from_secs(30), acker).await;
    hook_task.await.ok();
    tracing::info!(sent, "once: done");
    if acked.is_err() {
        cancel.cancel();
        anyhow::bail!("the hub did not take the acks in time; it will re-deliver those messages");
    }
    pulled
}

async fn pull(client: &HubClient, host: &str, inbox: &mut Inbox) -> Result<()> {
    let mut after = 0;
    for _ in 0..MAX_PAGES {
        let page = client
            .poll(host, after, MAX_POLL_LIMIT, Duration::ZERO)
            .await
            .map_err(|e| anyhow::anyhow!("cannot receive: {e}"))?
            .messages;
        let Some(last) = page.iter().map(|s| s.seq).max() else {
            return Ok(());
        };
        let full = page.len() >= MAX_POLL_LIMIT;
        inbox
            .deliver(page.into_iter().map(|s| s.message).collect())
            .await?;
        after = last;
        if !full {
            return Ok(());
        }
    }
    Ok(())
}
