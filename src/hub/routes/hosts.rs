//! The host resources: `GET /v1/hosts`, `DELETE /v1/hosts/{host}`, the
//! long-poll `GET /v1/hosts/{host}/messages` and `POST /v1/hosts/{host}/ack`.
//! Long-poll answers carry the stored JSON of each message as is (a
//! `RawValue`): messages are never decoded and re-encoded on the way out.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use jiff::Timestamp;
use serde::Deserialize;

use super::{Caller, HostId, JsonBody, Params};
use crate::api::{
    AckRequest, AckResponse, HostInfo, HostsResponse, RawPollResponse, RawSequenced,
    DEFAULT_POLL_LIMIT, MAX_POLL_LIMIT, MAX_WAIT_SECS,
};
use crate::hub::error::ApiError;
use crate::hub::store::{Delivery, Woken};
use crate::hub::Hub;

/// Registered hosts and hosts with messages queued, with this hub's open streams.
pub async fn list(State(hub): State<Arc<Hub>>) -> Result<Json<HostsResponse>, ApiError> {
    let now = Timestamp::now();
    let hosts = hub
        .store
        .hosts()
        .await?
        .into_iter()
        .filter_map(|h| {
            if h.registered_at.is_none() && h.pending == 0 {
                return None;
            }
            let streams = hub.presence.streams(&h.id);
            let last_seen = match (streams, h.registered_at) {
                (0, Some(reg)) => Some(h.last_seen.unwrap_or(reg).max(reg).to_string()),
                (0, None) => h.last_seen.map(|t| t.to_string()),
                _ => Some(now.to_string()),
            };
            Some(HostInfo {
                id: h.id,
                registered_at: h.registered_at.map(|t| t.to_string()),
                last_seen,
                streams,
                pending: h.pending,
            })
        })
        .collect();
    Ok(Json(HostsResponse { hosts }))
}

pub async fn remove(
    State(hub): State<Arc<Hub>>,
    HostId(host): HostId,
) -> Result<StatusCode, ApiError> {
    if hub.store.delete_host(&host).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "host {host} is not registered and has no queue"
        )))
    }
}

#[derive(Deserialize)]
pub struct PollParams {
    after: Option<u64>,
    limit: Option<usize>,
    wait: Option<u64>,
    /// Look without registering the host.
    watch: Option<bool>,
}

/// Unacked messages after `after`; waits up to `wait` seconds for one if
/// there are none yet. Registers the host, unless watching (`?watch=true`
/// or a read credential).
pub async fn poll(
    State(hub): State<Arc<Hub>>,
    Caller(access): Caller,
    HostId(host): HostId,
    Params(p): Params<PollParams>,
) -> Result<Response, ApiError> {
    let registers = access.registers() && !p.watch.unwrap_or(false);
    let limit = p
        .limit
        .unwrap_or(DEFAULT_POLL_LIMIT)
        .clamp(1, MAX_POLL_LIMIT);
    let wait = Duration::from_secs(p.wait.unwrap_or(0).min(MAX_WAIT_SECS));
    if registers {
        hub.register(&host).await?;
    }
    // Subscribe before reading, so a message queued in between wakes us.
    let mut wake = hub.store.watch(&host);
    let after = checked_cursor(&hub, &host, p.after.unwrap_or(0));
    let deadline = tokio::time::Instant::now() + wait;
    let found = loop {
        let found = hub.store.read(&host, after, limit).await?;
        if !found.is_empty() {
            break found;
        }
        tokio::select! {
            w = wake.changed() => if w == Woken::Gone { break found },
            () = tokio::time::sleep_until(deadline) => break found,
            () = hub.stop.cancelled() => break found,
        }
    };
    if registers {
        hub.store.seen(&host);
    }
    hub.metrics
        .delivered
        .fetch_add(found.len() as u64, Ordering::Relaxed);
    Ok(poll_answer(&found))
}

/// `{"messages":[{"seq":7,"message":{...}},...]}` around the stored JSON.
fn poll_answer(found: &[Delivery]) -> Response {
    let messages = found
        .iter()
        .map(|d| RawSequenced {
            seq: d.seq,
            message: &d.json,
        })
        .collect();
    Json(RawPollResponse { messages }).into_response()
}

/// A cursor the hub can honour: one beyond any sequence number it issued
/// (a daemon of another data dir, say) replays the whole backlog instead
/// of silently skipping.
pub fn checked_cursor(hub: &Hub, host: &str, cursor: u64) -> u64 {
    let last = hub.store.last_seq();
    if cursor > last {
        tracing::warn!(%host, cursor, last_seq = last,
            "cursor is beyond the last sequence number issued; replaying the whole backlog");
        return 0;
    }
    cursor
}

pub async fn ack(
    State(hub): State<Arc<Hub>>,
    HostId(host): HostId,
    body: JsonBody,
) -> Result<Json<AckResponse>, ApiError> {
    let req: AckRequest = serde_json::from_slice(&body.bytes).map_err(|e| {
        ApiError::BadRequest(format!(
            "request body must be {{\"ids\": [\"<uuid>\", ...]}}: {e}"
        ))
    })?;
    let acked = hub.store.ack(&host, req.ids).await?;
    hub.metrics.acked.fetch_add(acked as u64, Ordering::Relaxed);
    Ok(Json(AckResponse { acked }))
}
