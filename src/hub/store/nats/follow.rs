//! The hub's push subscriptions: the stream (into the index, waking
//! streams, feeding `/v1/stream`) and the two buckets (host cursors and
//! `last_seen`). Each is an ordered consumer or a bucket watch that NATS
//! pushes to; on a broken connection each is recreated from where it was.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::{stream::Stream, Message};
use futures::StreamExt;
use jiff::Timestamp;
use serde_json::value::RawValue;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::index::{Cursor, Stored};
use super::{Shared, SOURCE};

/// Starts following; returns once the index holds the stream as it was at
/// the call and the buckets' current values.
pub async fn start(
    shared: &Arc<Shared>,
    stream: &Stream,
    hosts: &kv::Store,
    seen: &kv::Store,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let last = stream.get_info().await?.state.last_sequence;
    let (hosts_ready, mut hosts_wait) = watch::channel(hosts.status().await?.values() == 0);
    let (seen_ready, mut seen_wait) = watch::channel(seen.status().await?.values() == 0);
    tokio::spawn(follow_stream(
        shared.clone(),
        stream.clone(),
        last,
        stop.clone(),
    ));
    tokio::spawn(follow_bucket(
        shared.clone(),
        hosts.clone(),
        hosts_ready,
        stop.clone(),
        apply_cursor,
    ));
    tokio::spawn(follow_bucket(
        shared.clone(),
        seen.clone(),
        seen_ready,
        stop.clone(),
        apply_seen,
    ));
    let mut indexed = shared.indexed.subscribe();
    indexed.wait_for(|seq| *seq >= last).await?;
    hosts_wait.wait_for(|ready| *ready).await?;
    seen_wait.wait_for(|ready| *ready).await?;
    Ok(())
}

async fn follow_stream(
    shared: Arc<Shared>,
    stream: Stream,
    caught_up_at: u64,
    stop: CancellationToken,
) {
    loop {
        let from = *shared.indexed.borrow() + 1;
        let config = pull::OrderedConfig {
            filter_subject: "mesync.>".to_string(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ..Default::default()
        };
        let messages = match stream.create_consumer(config).await {
            Ok(c) => c.messages().await,
            Err(e) => Err(async_nats::jetstream::consumer::StreamError::with_source(
                async_nats::jetstream::consumer::StreamErrorKind::Other,
                e,
            )),
        };
        match messages {
            Ok(mut messages) => loop {
                let next = tokio::select! {
                    () = stop.cancelled() => return,
                    next = messages.next() => next,
                };
                match next {
                    Some(Ok(m)) => note(&shared, &m, caught_up_at),
                    Some(Err(e)) => tracing::debug!("following the stream: {e}"),
                    None => break,
                }
            },
            Err(e) => tracing::warn!("cannot follow the NATS stream ({e}); retrying"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// Indexes one message of the stream, wakes its watchers, feeds it.
fn note(shared: &Shared, m: &Message, caught_up_at: u64) {
    let Ok(info) = m.info() else { return };
    let seq = info.stream_sequence;
    let header = |name: &str| {
        m.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_string())
    };
    let id =
        header(async_nats::header::NATS_MESSAGE_ID.as_ref()).and_then(|i| Uuid::parse_str(&i).ok());
    let stored = match m.subject.as_str().strip_prefix("mesync.to.") {
        Some(host) => Some(Stored::To(host.replace('~', "."))),
        None if m.subject.as_str() == "mesync.all" => {
            header(SOURCE).map(|source| Stored::All { source })
        }
        None => None,
    };
    if let (Some(id), Some(stored)) = (id, stored) {
        let wake = stored.clone();
        shared.write_index().add(seq, id, stored);
        match wake {
            Stored::To(host) => shared.wakes.queued(&host, seq),
            Stored::All { .. } => shared.wakes.broadcast(seq),
        }
        if seq > caught_up_at {
            if let Ok(json) = serde_json::from_slice::<Box<RawValue>>(&m.payload) {
                let _ = shared.feed.send(Arc::from(json));
            }
        }
    } else {
        tracing::warn!(seq, subject = %m.subject, "skipping a message of the stream it cannot read");
    }
    shared.indexed.send_if_modified(|last| {
        let newer = seq > *last;
        *last = (*last).max(seq);
        newer
    });
}

async fn follow_bucket(
    shared: Arc<Shared>,
    kv: kv::Store,
    ready: watch::Sender<bool>,
    stop: CancellationToken,
    apply: fn(&Shared, &kv::Entry),
) {
    loop {
        match kv.watch_with_history(">").await {
            Ok(mut entries) => loop {
                let next = tokio::select! {
                    () = stop.cancelled() => return,
                    next = entries.next() => next,
                };
                match next {
                    Some(Ok(entry)) => {
                        apply(&shared, &entry);
                        if entry.delta == 0 || entry.seen_current {
                            ready.send_replace(true);
                        }
                    }
                    Some(Err(e)) => {
                        tracing::debug!("watching a NATS bucket: {e}");
                        break;
                    }
                    None => break,
                }
            },
            Err(e) => tracing::warn!("cannot watch the NATS bucket ({e}); retrying"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

fn apply_cursor(shared: &Shared, entry: &kv::Entry) {
    let host = entry.key.as_str();
    let cursor = match entry.operation {
        Operation::Put => match serde_json::from_slice::<Cursor>(&entry.value) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(%host, "skipping a host cursor it cannot read: {e}");
                return;
            }
        },
        Operation::Delete | Operation::Purge => Cursor::default(),
    };
    shared.cursor_changed(host, cursor, entry.revision);
}

fn apply_seen(shared: &Shared, entry: &kv::Entry) {
    let Ok(text) = std::str::from_utf8(&entry.value) else {
        return;
    };
    let Ok(at) = text.parse::<Timestamp>() else {
        return;
    };
    let mut known = shared.seen.entry(entry.key.clone()).or_insert(at);
    if *known < at {
        *known = at;
    }
}

/// Drops messages that left the stream by age from the index, now and then.
pub async fn prune(shared: Arc<Shared>, stream: Stream, every: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        drop_expired(&shared, &stream).await;
        shared.wakes.prune();
    }
}

/// Drops what is below the stream's first message from the index.
pub async fn drop_expired(shared: &Shared, stream: &Stream) {
    if let Ok(info) = stream.get_info().await {
        let dropped = shared.write_index().drop_below(info.state.first_sequence);
        crate::hub::metrics::add(&shared.metrics.expired, dropped as u64);
    }
}
