//! Changing a host's cursor in the hosts bucket: registration, acks and
//! deletion. Every change is a compare-and-set on the bucket's revision, so
//! hubs acking for the same host at once never lose each other's acks.

use std::time::Duration;

use async_nats::jetstream::kv;
use jiff::Timestamp;
use uuid::Uuid;

use super::index::{Cursor, Index};
use super::{err, subject, NatsStore, Shared};
use crate::hub::store::{StoreError, StoreResult};

/// Tries before a contended cursor change gives up (503, retried).
const TRIES: u32 = 20;

impl Shared {
    pub(super) fn write_index(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A cursor read from the bucket (or written by this hub).
    pub(super) fn cursor_changed(&self, host: &str, cursor: Cursor, revision: u64) {
        let mut ix = self.write_index();
        let was = ix.is_registered(host);
        let floor = cursor.floor;
        let gone = cursor.registered_at.is_none();
        if ix.set_cursor(host, cursor, revision) && gone {
            ix.drop_targeted(host, floor);
            drop(ix);
            if was {
                self.wakes.deleted(host);
            }
        }
    }
}

/// Reads the host's cursor, lets `change` make the next one (`None`: no
/// change) and writes it if nobody wrote in between; else again.
async fn update<T>(
    store: &NatsStore,
    host: &str,
    mut change: impl FnMut(&Index, Option<&Cursor>) -> Option<(Cursor, T)>,
) -> StoreResult<Option<T>> {
    let mut last_error = None;
    for attempt in 0..TRIES {
        if attempt > 0 {
            let jitter = u64::from(Uuid::now_v7().as_bytes()[15] % 16);
            tokio::time::sleep(Duration::from_millis(2 * u64::from(attempt) + jitter)).await;
        }
        let current = match store.hosts.entry(host).await {
            Ok(e) => e,
            Err(e) => {
                last_error = Some(err("reading a host")(&e));
                continue;
            }
        };
        let current = current.map(|e| {
            let cursor = match e.operation {
                kv::Operation::Put => serde_json::from_slice(&e.value).unwrap_or_default(),
                _ => Cursor::default(),
            };
            (cursor, e.revision)
        });
        let next = {
            let ix = store.index();
            change(&ix, current.as_ref().map(|(c, _)| c))
        };
        let Some((next, out)) = next else {
            return Ok(None);
        };
        let value = serde_json::to_vec(&next)
            .map_err(|e| StoreError(format!("encoding a host cursor: {e}")))?
            .into();
        let written = match &current {
            Some((_, revision)) => store
                .hosts
                .update(host, value, *revision)
                .await
                .map_err(|e| e.to_string()),
            None => store
                .hosts
                .create(host, value)
                .await
                .map_err(|e| e.to_string()),
        };
        match written {
            Ok(revision) => {
                store.shared.cursor_changed(host, next, revision);
                return Ok(Some(out));
            }
            Err(e) => last_error = Some(err("writing a host")(&e)),
        }
    }
    Err(last_error
        .unwrap_or_else(|| StoreError("NATS JetStream: a host cursor is contended".into())))
}

/// The stream's last sequence number: where a host registered now begins,
/// and what a deleted host's queue ends at.
async fn last_sequence(store: &NatsStore) -> StoreResult<u64> {
    let info = store.stream.get_info().await;
    Ok(info
        .map_err(|e| err("reading the stream")(&e))?
        .state
        .last_sequence)
}

pub async fn register(store: &NatsStore, host: &str) -> StoreResult<()> {
    let last = last_sequence(store).await?;
    update(store, host, |_, current| {
        let current = current.cloned().unwrap_or_default();
        if current.registered_at.is_some() {
            return None;
        }
        let next = Cursor {
            registered_at: Some(Timestamp::now()),
            since: last,
            ..current
        };
        Some((next, ()))
    })
    .await?;
    Ok(())
}

pub async fn ack(store: &NatsStore, host: &str, ids: Vec<Uuid>) -> StoreResult<usize> {
    let seqs = store.index().pending_of(host, &ids);
    if seqs.is_empty() {
        return Ok(0);
    }
    let acked = update(store, host, |ix, current| {
        let current = current.cloned().unwrap_or_default();
        let fresh: Vec<u64> = seqs
            .iter()
            .copied()
            .filter(|s| *s > current.floor && !current.acked.contains(s))
            .collect();
        if fresh.is_empty() {
            return None;
        }
        Some((ix.acked(host, &current, &fresh), fresh.len()))
    })
    .await?;
    Ok(acked.unwrap_or(0))
}

pub async fn delete(store: &NatsStore, host: &str) -> StoreResult<bool> {
    let had = {
        let ix = store.index();
        ix.is_registered(host) || ix.pending(host) > 0
    };
    let last = last_sequence(store).await?;
    store
        .stream
        .purge()
        .filter(subject(Some(host)))
        .sequence(last + 1)
        .await
        .map_err(|e| err("dropping a queue")(&e))?;
    update(store, host, |_, _| {
        let next = Cursor {
            floor: last,
            ..Cursor::default()
        };
        Some((next, ()))
    })
    .await?;
    Ok(had)
}
