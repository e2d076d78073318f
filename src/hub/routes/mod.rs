//! The hub's HTTP surface: the router, the extractors that turn a bad path,
//! query or body into an `ApiError` (never axum's plain-text rejections), and
//! the middleware for the token and request timing. Handlers live in one
//! file per resource.

mod body;
mod hosts;
mod messages;
mod ops;
mod origin;
mod stream;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde::de::DeserializeOwned;

use super::auth::Access;
use super::error::ApiError;
use super::Hub;
use crate::api::MAX_BODY_BYTES;
use crate::message::validate_host_id;
pub use body::{BodyBudget, JsonBody};

pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/v1/messages", post(messages::post))
        .route("/v1/hosts", get(hosts::list))
        .route("/v1/hosts/{host}", delete(hosts::remove))
        .route("/v1/hosts/{host}/messages", get(hosts::poll))
        .route("/v1/hosts/{host}/ack", post(hosts::ack))
        .route("/v1/hosts/{host}/stream", get(stream::host))
        .route("/v1/stream", get(stream::feed))
        .route("/v1/activity", get(ops::activity))
        .route("/metrics", get(ops::metrics))
        .route("/healthz", get(ops::healthz))
        .route("/", get(ops::dashboard))
        .route_layer(middleware::from_fn_with_state(hub.clone(), authorize))
        .route_layer(middleware::from_fn_with_state(
            hub.clone(),
            origin::same_origin,
        ))
        .route_layer(middleware::from_fn_with_state(hub.clone(), time_request))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(hub)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint; the endpoints are listed in docs/http-api.md".to_string())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Identifies the caller (401 for a missing or unknown credential) and
/// applies the route policy (403), on everything but `/healthz` and the
/// dashboard page (`GET /`), which holds no data: it asks for a credential
/// and sends it with each of its own requests. Stream endpoints also take
/// `?token=`, since a browser's EventSource cannot send headers. Handlers
/// find the caller's [`Access`] among the request's extensions.
async fn authorize(State(hub): State<Arc<Hub>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path == "/healthz" || (path == "/" && req.method() == Method::GET) {
        return next.run(req).await;
    }
    let presented = presented_credential(&req, &path);
    let access = match hub.credentials.identify(presented.as_deref()) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = access.allows(req.method(), &path) {
        return e.into_response();
    }
    req.extensions_mut().insert(access);
    next.run(req).await
}

/// The credential a request presents: `Authorization: Bearer`, or on the
/// stream routes `?token=`.
fn presented_credential(req: &Request, path: &str) -> Option<String> {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    match header {
        Some(t) => Some(t.to_string()),
        None if is_stream_route(req.method(), path) => Query::<TokenParam>::try_from_uri(req.uri())
            .ok()
            .and_then(|q| q.0.token),
        None => None,
    }
}

/// The caller's access, as [`authorize`] found it.
pub struct Caller(pub Access);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Access>()
            .cloned()
            .map(Caller)
            .ok_or(ApiError::Unauthorized)
    }
}

/// The credential of an `Authorization: Bearer <token>` value; the scheme
/// is case-insensitive, as HTTP says.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The stream routes, the only ones that take `?token=` (a browser's
/// EventSource cannot send headers): `GET /v1/stream` and
/// `GET /v1/hosts/{host}/stream`. Anywhere else a token in the URL would
/// end up in proxy logs for no reason.
fn is_stream_route(method: &Method, path: &str) -> bool {
    if method != Method::GET {
        return false;
    }
    let parts: Vec<&str> = path.split('/').collect();
    matches!(
        parts.as_slice(),
        ["", "v1", "stream"] | ["", "v1", "hosts", _, "stream"]
    )
}

#[derive(serde::Deserialize)]
struct TokenParam {
    token: Option<String>,
}

async fn time_request(State(hub): State<Arc<Hub>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let start = Instant::now();
    let resp = next.run(req).await;
    hub.metrics.observe(&route, start.elapsed().as_secs_f64());
    resp
}

/// A `{host}` path segment that passed the host-id rule (after percent-decoding,
/// so `%2e%2e` and `%2F` are refused like `..` and `/`).
pub struct HostId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for HostId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(host) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(format!("bad host id in path: {}", e.body_text())))?;
        validate_host_id("host id", &host).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(HostId(host))
    }
}

/// Query parameters, with a sentence naming the bad one on error.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|q| Params(q.0))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::{bearer, is_stream_route};
    use axum::http::Method;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearerabc"), None);
    }

    #[test]
    fn only_stream_routes_take_a_query_token() {
        assert!(is_stream_route(&Method::GET, "/v1/stream"));
        assert!(is_stream_route(&Method::GET, "/v1/hosts/web-1/stream"));
        assert!(!is_stream_route(&Method::DELETE, "/v1/hosts/stream"));
        assert!(!is_stream_route(&Method::GET, "/v1/hosts/stream"));
        assert!(!is_stream_route(&Method::DELETE, "/v1/hosts/web-1/stream"));
        assert!(!is_stream_route(&Method::GET, "/v1/hosts/a/b/stream"));
    }
}
