//! The SSE endpoints. `GET /v1/hosts/{host}/stream` replays the host's
//! unacked backlog after the client's cursor, then follows new entries as
//! they are queued; `GET /v1/stream` is a hub-wide live feed (no replay).
//!
//! A host stream keeps no buffer of its own: it remembers the last sequence
//! number it sent and, when woken (a `watch` of the host's newest seq), reads
//! what follows from the queue. So a slow client costs no memory, a burst
//! cannot be lost between backlog and live, and watching never acks.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use super::{HostId, Params};
use crate::api::SSE_EVENT;
use crate::hub::error::ApiError;
use crate::hub::metrics::add;
use crate::hub::state::HostState;
use crate::hub::Hub;

/// Most events read from a queue at a time, to bound one read's memory.
const READ_CHUNK: usize = 256;

#[derive(Deserialize)]
pub struct StreamParams {
    since: Option<u64>,
}

pub async fn host(
    State(hub): State<Arc<Hub>>,
    HostId(host): HostId,
    Params(p): Params<StreamParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let cursor = match headers.get("last-event-id") {
        Some(v) => v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or_else(|| {
            tracing::warn!(%host, "Last-Event-ID is not a sequence number; replaying the whole backlog");
            0
        }),
        None => p.since.unwrap_or(0),
    };
    let host = hub.register(&host).await?;
    // Subscribe before reading the backlog, so nothing queued in between is missed.
    let changed = host.changed.subscribe();
    let last_sent = host.checked_cursor(cursor);
    let open = OpenStream::new(hub.clone(), host, changed, last_sent);
    let events = stream::unfold(open, OpenStream::next);
    Ok(sse(&hub, events))
}

fn sse(hub: &Hub, events: impl Stream<Item = Event> + Send + 'static) -> Response {
    let keep_alive = KeepAlive::new()
        .interval(hub.state.limits.keepalive)
        .text("keepalive");
    let stop = hub.stop.clone().cancelled_owned();
    let events = events.take_until(stop).map(Ok::<_, Infallible>);
    let headers = [("x-accel-buffering", "no")];
    (headers, Sse::new(events).keep_alive(keep_alive)).into_response()
}

/// One open host stream; counted in `streams` until dropped.
struct OpenStream {
    hub: Arc<Hub>,
    host: Arc<HostState>,
    changed: watch::Receiver<u64>,
    /// Cancelled when the host is deleted.
    epoch: CancellationToken,
    last_sent: u64,
    ready: VecDeque<Event>,
}

impl OpenStream {
    fn new(
        hub: Arc<Hub>,
        host: Arc<HostState>,
        changed: watch::Receiver<u64>,
        last_sent: u64,
    ) -> Self {
        host.streams.fetch_add(1, Ordering::Relaxed);
        hub.state
            .metrics
            .open_streams
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(host = %host.id, after = last_sent, "stream opened");
        let epoch = host.epoch();
        OpenStream {
            hub,
            host,
            changed,
            epoch,
            last_sent,
            ready: VecDeque::new(),
        }
    }

    async fn next(mut self) -> Option<(Event, Self)> {
        loop {
            if let Some(ev) = self.ready.pop_front() {
                return Some((ev, self));
            }
            let found = self.host.after(self.last_sent, READ_CHUNK);
            if !found.is_empty() {
                add(&self.hub.state.metrics.delivered, found.len() as u64);
                for (seq, m) in found {
                    self.last_sent = seq;
                    let ev = Event::default()
                        .event(SSE_EVENT)
                        .id(seq.to_string())
                        .data(&*m.json);
                    self.ready.push_back(ev);
                }
                continue;
            }
            tokio::select! {
                r = self.changed.changed() => if r.is_err() { return None },
                () = self.epoch.cancelled() => return None,
            }
        }
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.host.streams.fetch_sub(1, Ordering::Relaxed);
        self.host.touch();
        self.hub
            .state
            .metrics
            .open_streams
            .fetch_sub(1, Ordering::Relaxed);
        tracing::debug!(host = %self.host.id, "stream closed");
    }
}

/// Every accepted message as it passes; a watcher that lags skips ahead.
pub async fn feed(State(hub): State<Arc<Hub>>) -> Response {
    let rx = hub.state.feed.subscribe();
    let events = stream::unfold(rx, |mut rx| async move {
        let ev = match rx.recv().await {
            Ok(m) => Event::default().event(SSE_EVENT).data(&*m.json),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                Event::default().comment(format!("skipped {n} messages (watcher too slow)"))
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((ev, rx))
    });
    sse(&hub, events)
}
