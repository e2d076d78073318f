//! Operator endpoints: `/healthz` (open, for probes), `/metrics`
//! (Prometheus text) and the dashboard page at `/`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::Json;

use crate::api::Health;
use crate::hub::{dashboard, Hub};

pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_string(),
        version: crate::VERSION.to_string(),
    })
}

pub async fn metrics(State(hub): State<Arc<Hub>>) -> impl IntoResponse {
    let text = hub.state.metrics.render(&hub.state.pending());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

pub async fn dashboard() -> impl IntoResponse {
    (dashboard::HEADERS, Html(dashboard::page()))
}
