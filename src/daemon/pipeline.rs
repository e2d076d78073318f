//! The receive path, built in one place for `mesync start` and `--once`:
//!
//! ```text
//!   stream.rs (SSE) ─┐
//!                    ├─ batches ─▶ inbox writer ─ ids ─▶ acker ─▶ hub
//!   poll.rs (pages) ─┘             (inbox.rs,    └─ jobs ─▶ hook runner
//!                                   one thread)            (hooks.rs)
//! ```
//!
//! Each stage owns what it works on (the writer: inbox/, the ledger and the
//! hook marks; the acker: the ids owed to the hub; the runner: the hook
//! processes) and is fed by a bounded channel, except the hook queue (see
//! hooks.rs). The pipeline drains from the front: once every feeder has let
//! go of its [`InboxInput`], the writer ends, which closes the acker's and
//! the runner's queues, and each finishes what it holds. `cancel` cuts that
//! short: the writer drops batches not yet written and the acker gives up on
//! a failing hub (the hub keeps all of that), running hooks get a grace.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::acker;
use super::handoff::InboxInput;
use super::hooks::Hooks;
use super::inbox::InboxWriter;
use crate::client::HubClient;
use crate::config::DaemonConfig;
use crate::spool::Spool;

/// Batches of ids waiting for the acker. When it falls this far behind (the
/// hub is failing), the writer waits for it: the backpressure we want.
const ACK_QUEUE: usize = 256;

pub struct Pipeline {
    input: InboxInput,
    writer_gone: CancellationToken,
    acker: JoinHandle<()>,
    hooks: JoinHandle<()>,
    cancel: CancellationToken,
}

impl Pipeline {
    /// Starts the writer (after loading the ledger), the acker and the hook runner.
    pub async fn start(
        cfg: &DaemonConfig,
        spool: Spool,
        client: HubClient,
        cancel: CancellationToken,
    ) -> Result<Pipeline> {
        let (hooks, hooks_task) =
            Hooks::start(cfg.hook_concurrency, cfg.hook_timeout, cancel.clone());
        let (ack_tx, ack_rx) = mpsc::channel(ACK_QUEUE);
        let acker = tokio::spawn(acker::run(
            client,
            cfg.host_id.clone(),
            ack_rx,
            cancel.clone(),
        ));
        // On an error here the acker and the runner end by themselves: their
        // queues close as the writer's ends are dropped.
        let (retention, writer_cancel) = (cfg.retention, cancel.clone());
        let writer = tokio::task::spawn_blocking(move || {
            InboxWriter::open(spool, retention, ack_tx, hooks, writer_cancel)
        })
        .await
        .context("loading the received-ids ledger")??;
        let (input, writer_gone) = writer.spawn().context("starting the inbox writer")?;
        Ok(Pipeline {
            input,
            writer_gone,
            acker,
            hooks: hooks_task,
            cancel,
        })
    }

    /// A feeder's end of the writer.
    pub fn input(&self) -> &InboxInput {
        &self.input
    }

    /// Resolves when the writer has ended. Before [`Pipeline::finish`] that
    /// means it failed: nothing more would be received.
    pub async fn writer_stopped(&self) {
        self.writer_gone.cancelled().await;
    }

    /// Lets go of the input, then waits until the writer is done, the acker
    /// has acked what was written (for at most `ack_deadline`; after that it
    /// is cancelled and this is an error), and the hooks have run.
    pub async fn finish(self, ack_deadline: Duration) -> Result<()> {
        drop(self.input);
        self.writer_gone.cancelled().await;
        let acked = tokio::time::timeout(ack_deadline, self.acker).await;
        if acked.is_err() {
            self.cancel.cancel();
        }
        let _ = self.hooks.await;
        match acked {
            Ok(_) => Ok(()),
            Err(_) => anyhow::bail!(
                "the hub did not take the acks in time; it will re-deliver those messages"
            ),
        }
    }
}
