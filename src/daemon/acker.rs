//! The acker: tells the hub which messages this host has made durable, so
//! it can forget them.
//!
//! It takes the ids the inbox writer queues (only ever for messages whose
//! inbox file and ledger entry are on disk), sends everything waiting in as
//! few requests as possible, and retries with backoff while the hub fails.
//! A lost ack costs nothing but a re-delivery, which the ledger recognises.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::backoff::Backoff;
use crate::client::HubClient;

/// Most ids in one ack request.
const ACK_CHUNK: usize = 1000;

/// Acks what arrives on `rx` until the writer is gone and every queued id
/// is acked, or until `cancel` fires while the hub is failing (the hub then
/// re-delivers those messages and the ledger drops them).
pub async fn run(
    client: HubClient,
    host: String,
    mut rx: mpsc::Receiver<Vec<Uuid>>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut pending: Vec<Uuid> = Vec::new();
    loop {
        if pending.is_empty() {
            match rx.recv().await {
                Some(ids) => pending = ids,
                None => return,
            }
        }
        // Everything queued meanwhile rides along in the same requests.
        while let Ok(more) = rx.try_recv() {
            pending.extend(more);
        }
        match ack_all(&client, &host, &pending).await {
            Ok(()) => {
                backoff.reset();
                pending.clear();
            }
            Err(done) => {
                pending.drain(..done);
                let delay = backoff.next_delay();
                tokio::select! {
                    _ = cancel.cancelled() => {
                        tracing::warn!(unacked = pending.len(), "shutting down with acks the hub did not take; it will re-deliver them");
                        return;
                    }
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Acks `ids` in chunks; on a failure returns how many were acked before it.
async fn ack_all(client: &HubClient, host: &str, ids: &[Uuid]) -> Result<(), usize> {
    let mut done = 0;
    for chunk in ids.chunks(ACK_CHUNK) {
        match client.ack(host, chunk).await {
            Ok(_) => done += chunk.len(),
            Err(e) if e.is_transient() => {
                tracing::warn!("ack failed, will retry: {e}");
                return Err(done);
            }
            Err(e) => {
                // A refused ack would be refused again; the hub re-delivers
                // these messages and the ledger recognises them.
                tracing::warn!(count = chunk.len(), "hub refused an ack: {e}");
                done += chunk.len();
            }
        }
    }
    Ok(())
}
