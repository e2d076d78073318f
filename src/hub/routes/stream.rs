//! The SSE endpoints. `GET /v1/hosts/{host}/stream` replays the host's
//! unacked backlog after the client's cursor, then follows new messages as
//! they are queued; `GET /v1/stream` is a hub-wide live feed (no replay).
//!
//! A host stream keeps no buffer of its own: it remembers the last sequence
//! number it sent and asks the store for the one message after it, waiting
//! for a wake-up when there is none. So a slow client costs no memory, a
//! burst cannot be lost between backlog and live, and watching never acks.
//! (The store's bounded body cache, shared by all streams, is what makes
//! reading one message at a time cheap.)

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast;

use super::hosts::checked_cursor;
use super::{Caller, HostId, Params};
use crate::api::SSE_EVENT;
use crate::hub::error::ApiError;
use crate::hub::presence::StreamCount;
use crate::hub::store::{Wake, Woken};
use crate::hub::Hub;

#[derive(Deserialize)]
pub struct StreamParams {
    since: Option<u64>,
    /// Look without registering the host (`mesync watch`, the dashboard).
    watch: Option<bool>,
}

pub async fn host(
    State(hub): State<Arc<Hub>>,
    Caller(access): Caller,
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
    // A watcher (`?watch=true`, a read credential) neither registers the
    // host nor counts as its stream.
    let registers = access.registers() && !p.watch.unwrap_or(false);
    if registers {
        hub.register(&host).await?;
    }
    // Subscribe before reading the backlog, so nothing queued in between is missed.
    let wake = hub.store.watch(&host);
    let last_sent = checked_cursor(&hub, &host, cursor);
    tracing::debug!(%host, after = last_sent, "stream opened");
    let open = OpenStream {
        _count: registers.then(|| hub.presence.open(&host)),
        registers,
        hub: hub.clone(),
        host,
        wake,
        last_sent,
    };
    let events = stream::unfold(open, OpenStream::next);
    Ok(sse(&hub, events))
}

fn sse(hub: &Hub, events: impl Stream<Item = Event> + Send + 'static) -> Response {
    let keep_alive = KeepAlive::new()
        .interval(hub.limits.keepalive)
        .text("keepalive");
    let stop = hub.stop.clone().cancelled_owned();
    let events = events.take_until(stop).map(Ok::<_, Infallible>);
    let headers = [("x-accel-buffering", "no")];
    (headers, Sse::new(events).keep_alive(keep_alive)).into_response()
}

/// One open host stream; counted in the host's `streams` until dropped.
struct OpenStream {
    hub: Arc<Hub>,
    host: String,
    wake: Wake,
    last_sent: u64,
    _count: Option<StreamCount>,
    registers: bool,
}

impl OpenStream {
    async fn next(mut self) -> Option<(Event, Self)> {
        loop {
            let found = match self.hub.store.read(&self.host, self.last_sent, 1).await {
                Ok(found) => found,
                Err(e) => {
                    // The client reconnects and resumes from its Last-Event-ID.
                    tracing::warn!(host = %self.host, error = %e, "ending a stream");
                    return None;
                }
            };
            if let Some(d) = found.into_iter().next() {
                self.last_sent = d.seq;
                self.hub.metrics.delivered.fetch_add(1, Ordering::Relaxed);
                let ev = Event::default()
                    .event(SSE_EVENT)
                    .id(d.seq.to_string())
                    .data(d.json.get());
                return Some((ev, self));
            }
            if self.wake.changed().await == Woken::Gone {
                return None;
            }
        }
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        if self.registers {
            self.hub.store.seen(&self.host);
        }
        tracing::debug!(host = %self.host, "stream closed");
    }
}

/// Every accepted message as it passes; a watcher that lags skips ahead.
pub async fn feed(State(hub): State<Arc<Hub>>) -> Response {
    let rx = hub.store.feed();
    let events = stream::unfold(rx, |mut rx| async move {
        let ev = match rx.recv().await {
            Ok(m) => Event::default().event(SSE_EVENT).data(m.get()),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                Event::default().comment(format!("skipped {n} messages (watcher too slow)"))
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((ev, rx))
    });
    sse(&hub, events)
}
