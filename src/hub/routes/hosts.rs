//! The host resources: `GET /v1/hosts`, `DELETE /v1/hosts/{host}`, the
//! long-poll `GET /v1/hosts/{host}/messages` and `POST /v1/hosts/{host}/ack`.
//! Long-poll answers are assembled from the stored JSON as is; messages are
//! never decoded and re-encoded on the way out.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{body, HostId, Params};
use crate::api::{
    AckRequest, AckResponse, HostsResponse, DEFAULT_POLL_LIMIT, MAX_POLL_LIMIT, MAX_WAIT_SECS,
};
use crate::hub::error::ApiError;
use crate::hub::metrics::add;
use crate::hub::state::Stored;
use crate::hub::Hub;

pub async fn list(State(hub): State<Arc<Hub>>) -> Json<HostsResponse> {
    Json(HostsResponse {
        hosts: hub.state.host_infos(),
    })
}

pub async fn remove(
    State(hub): State<Arc<Hub>>,
    HostId(host): HostId,
) -> Result<StatusCode, ApiError> {
    if hub.writer.drop_host(&host).await? {
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
}

/// Unacked messages after `after`; waits up to `wait` seconds for one if
/// there are none yet. Registers the host.
pub async fn poll(
    State(hub): State<Arc<Hub>>,
    HostId(host): HostId,
    Params(p): Params<PollParams>,
) -> Result<Response, ApiError> {
    let limit = p
        .limit
        .unwrap_or(DEFAULT_POLL_LIMIT)
        .clamp(1, MAX_POLL_LIMIT);
    let wait = Duration::from_secs(p.wait.unwrap_or(0).min(MAX_WAIT_SECS));
    let host = hub.register(&host).await?;
    // Subscribe before reading, so an entry queued in between wakes us.
    let mut changed = host.changed.subscribe();
    let after = host.checked_cursor(p.after.unwrap_or(0));
    let deadline = tokio::time::Instant::now() + wait;
    let found = loop {
        let found = host.after(after, limit);
        if !found.is_empty() {
            break found;
        }
        tokio::select! {
            r = changed.changed() => if r.is_err() { break found },
            () = tokio::time::sleep_until(deadline) => break found,
            () = hub.stop.cancelled() => break found,
        }
    };
    host.touch();
    add(&hub.state.metrics.delivered, found.len() as u64);
    Ok(poll_answer(&found))
}

/// `{"messages":[{"seq":7,"message":{...}},...]}` from the stored JSON.
fn poll_answer(found: &[(u64, Arc<Stored>)]) -> Response {
    let size: usize = found.iter().map(|(_, m)| m.json.len() + 32).sum();
    let mut out = String::with_capacity(size + 16);
    out.push_str("{\"messages\":[");
    for (i, (seq, m)) in found.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{{\"seq\":{seq},\"message\":{}}}", m.json);
    }
    out.push_str("]}");
    ([(header::CONTENT_TYPE, "application/json")], out).into_response()
}

pub async fn ack(
    State(hub): State<Arc<Hub>>,
    HostId(host): HostId,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<AckResponse>, ApiError> {
    let raw = body(raw)?;
    let req: AckRequest = serde_json::from_slice(&raw).map_err(|e| {
        ApiError::BadRequest(format!(
            "request body must be {{\"ids\": [\"<uuid>\", ...]}}: {e}"
        ))
    })?;
    let Some(host) = hub.state.host(&host) else {
        return Ok(Json(AckResponse { acked: 0 }));
    };
    host.touch();
    let acked = hub.writer.ack(host, req.ids).await?;
    Ok(Json(AckResponse { acked }))
}
