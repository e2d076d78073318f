//! The hand-off between the hub reader and the inbox writer: at most one
//! batch is in the writer's hands at a time. The reader reads on meanwhile,
//! and what arrived during one write becomes the next batch the moment the
//! writer is free, so a lone message is written at once and a burst in
//! large batches (one fsync of the inbox and one of the ledger per batch).

use std::sync::Arc;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::message::Message;

pub(super) enum ToWriter {
    /// A batch, with the permit that keeps the next one back until it is done.
    Batch(Vec<Message>, OwnedSemaphorePermit),
    /// Periodic upkeep: the counts log line and the ledger pruning.
    Upkeep,
}

/// The writer has stopped; nothing handed to it now would be written.
#[derive(Debug, thiserror::Error)]
#[error("the inbox writer has stopped")]
pub struct WriterGone;

/// The feeding side of the writer. Cloned by each feeder; the writer ends
/// when every clone is dropped.
#[derive(Clone)]
pub struct InboxInput {
    tx: mpsc::Sender<ToWriter>,
    idle: Arc<Semaphore>,
}

/// The right to hand the writer its next batch.
pub struct Turn(OwnedSemaphorePermit);

/// The writer's input and the receiving end it reads.
pub(super) fn channel() -> (InboxInput, mpsc::Receiver<ToWriter>) {
    // Room for one batch and one upkeep request; the permit keeps the rest back.
    let (tx, rx) = mpsc::channel(2);
    let idle = Arc::new(Semaphore::new(1));
    (InboxInput { tx, idle }, rx)
}

impl InboxInput {
    /// Resolves once the writer is done with the batch before. Cancel-safe,
    /// so a reader can `select!` on it while it reads on.
    pub async fn turn(&self) -> Result<Turn, WriterGone> {
        let permit = self.idle.clone().acquire_owned().await;
        permit.map(Turn).map_err(|_| WriterGone)
    }

    pub async fn hand_over(&self, turn: Turn, batch: Vec<Message>) -> Result<(), WriterGone> {
        let item = ToWriter::Batch(batch, turn.0);
        self.tx.send(item).await.map_err(|_| WriterGone)
    }

    /// Waits for the turn, then hands `batch` over.
    pub async fn deliver(&self, batch: Vec<Message>) -> Result<(), WriterGone> {
        let turn = self.turn().await?;
        self.hand_over(turn, batch).await
    }

    /// Asks for upkeep; skipped while a request is already waiting.
    pub fn upkeep(&self) {
        let _ = self.tx.try_send(ToWriter::Upkeep);
    }
}
