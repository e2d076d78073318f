//! Reading a request body without letting clients hold the hub's memory.
//!
//! A body is read only after the request passed the credential and origin
//! checks (middleware runs first), only when it is declared JSON, within
//! `body_timeout`, and only while the bodies all requests are reading fit in
//! `max_body_memory`: a request reserves its declared length (or the largest
//! body, when it declares none) before reading a byte, and waits a second
//! for room, then gets 503 (clients retry), when there is none.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::HeaderMap;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::MAX_BODY_BYTES;
use crate::hub::error::ApiError;
use crate::hub::Hub;

/// How long a request waits for room in the budget before it gets 503.
const RESERVE_WAIT: Duration = Duration::from_secs(1);

/// The memory budget is counted in units of this many bytes (a semaphore
/// holds at most `u32::MAX` permits).
const UNIT: usize = 1024;

/// The bound on request bodies in memory, shared by all requests.
pub struct BodyBudget {
    units: Arc<Semaphore>,
    total_units: u32,
    timeout: Duration,
}

impl BodyBudget {
    pub fn new(max_bytes: usize, timeout: Duration) -> Self {
        // At least one largest body must fit, or big batches could never pass.
        let units = max_bytes.max(MAX_BODY_BYTES).div_ceil(UNIT);
        let total_units = u32::try_from(units).unwrap_or(u32::MAX);
        BodyBudget {
            units: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            timeout,
        }
    }
}

/// A JSON request body, read whole; its share of the budget is returned
/// when the handler drops it.
pub struct JsonBody {
    pub bytes: Bytes,
    _reserved: OwnedSemaphorePermit,
}

impl FromRequest<Arc<Hub>> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, hub: &Arc<Hub>) -> Result<Self, ApiError> {
        require_json(req.headers())?;
        let budget = &hub.bodies;
        let declared = match declared_length(req.headers()) {
            Err(e @ ApiError::TooLarge(_)) => {
                // Read and drop what a well-meaning client is still sending,
                // so it sees the 413 rather than a connection reset; this
                // holds no memory and stops at the timeout.
                let drain = drain(req, DRAIN_LIMIT);
                let _ = tokio::time::timeout(budget.timeout, drain).await;
                return Err(e);
            }
            other => other?,
        };
        let want = declared.unwrap_or(MAX_BODY_BYTES).div_ceil(UNIT).max(1);
        let want = u32::try_from(want)
            .unwrap_or(u32::MAX)
            .min(budget.total_units);
        let reserve = budget.units.clone().acquire_many_owned(want);
        let reserved =
            match tokio::time::timeout(RESERVE_WAIT, reserve).await {
                Ok(Ok(permit)) => permit,
                _ => return Err(ApiError::Unavailable(
                    "the hub is reading too many request bodies at once (max_body_memory); retry"
                        .to_string(),
                )),
            };
        let read = read_body(req, declared.unwrap_or(MAX_BODY_BYTES));
        let bytes = match tokio::time::timeout(budget.timeout, read).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(ApiError::Timeout(format!(
                    "the request body did not arrive within {}s (body_timeout)",
                    budget.timeout.as_secs()
                )))
            }
        };
        Ok(JsonBody {
            bytes,
            _reserved: reserved,
        })
    }
}

/// 415 unless the body is declared `application/json`: a web page on
/// another site can send a form-encoded or plain-text POST without asking,
/// but not a JSON one.
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let kind = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = kind.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedType(format!(
            "the body must be JSON, sent with the header Content-Type: application/json (got {:?})",
            kind
        )))
    }
}

/// The declared length, if any; 413 at once when it is over the limit.
fn declared_length(headers: &HeaderMap) -> Result<Option<usize>, ApiError> {
    let Some(v) = headers.get(CONTENT_LENGTH) else {
        return Ok(None);
    };
    let n = v
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .ok_or_else(|| ApiError::BadRequest("Content-Length is not a number".to_string()))?;
    if n > MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(Some(n))
}

/// The body's bytes, refusing more than `limit`.
async fn read_body(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    let mut chunks = req.into_body().into_data_stream();
    let mut out = Vec::with_capacity(limit.min(64 * 1024));
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::BadRequest(format!("cannot read the request body: {e}")))?;
        if out.len() + chunk.len() > limit {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

/// The most bytes of an oversized body read (and dropped) before the 413.
const DRAIN_LIMIT: usize = 4 * MAX_BODY_BYTES;

async fn drain(req: Request, limit: usize) {
    let mut chunks = req.into_body().into_data_stream();
    let mut seen = 0;
    while let Some(Ok(chunk)) = chunks.next().await {
        seen += chunk.len();
        if seen > limit {
            return;
        }
    }
}

fn too_large() -> ApiError {
    ApiError::TooLarge(format!(
        "request body is over the limit of 16 MiB ({MAX_BODY_BYTES} bytes); send smaller batches"
    ))
}
