//! Operator endpoints: `/healthz` (open, for probes), `/metrics`
//! (Prometheus text), the dashboard page at `/` and the recent activity it
//! starts from (`/v1/activity`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::Json;

use super::Params;
use crate::api::Health;
use crate::hub::error::ApiError;
use crate::hub::{dashboard, Hub};

pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_string(),
        version: crate::VERSION.to_string(),
    })
}

pub async fn metrics(State(hub): State<Arc<Hub>>) -> Result<impl IntoResponse, ApiError> {
    // Hosts that are registered or have something queued.
    let pending: Vec<(String, usize)> = hub
        .store
        .hosts()
        .await?
        .into_iter()
        .filter(|h| h.registered_at.is_some() || h.pending > 0)
        .map(|h| (h.id, h.pending))
        .collect();
    let text = hub.metrics.render(&pending, hub.presence.total());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}

pub async fn dashboard() -> impl IntoResponse {
    (dashboard::HEADERS, Html(dashboard::page()))
}

#[derive(serde::Deserialize)]
pub struct ActivityQuery {
    recent: Option<bool>,
}

/// The last accepted messages and the per-second counts of the last minutes.
pub async fn activity(
    State(hub): State<Arc<Hub>>,
    Params(q): Params<ActivityQuery>,
) -> impl IntoResponse {
    let json = hub.activity.snapshot(q.recent.unwrap_or(true));
    ([(header::CONTENT_TYPE, "application/json")], json)
}
