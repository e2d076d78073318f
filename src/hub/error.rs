//! `ApiError`: every failure the hub answers with, as `{"error": "<sentence>"}`
//! and a fitting status. Handlers and extractors return it, so no request
//! ever gets a plain-text or empty error body from the hub.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::api::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request itself is wrong (bad JSON, bad host id, bad query).
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or unknown credential: send the header Authorization: Bearer <token> (for mesync itself, set token or MESYNC_TOKEN)")]
    Unauthorized,
    /// Over a count limit such as `max_hosts`; the sentence names it.
    #[error("{0}")]
    TooMany(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// The credential or the page's origin may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Over a size or count limit; the sentence names the limit.
    #[error("{0}")]
    TooLarge(String),
    /// The body is not declared as JSON.
    #[error("{0}")]
    UnsupportedType(String),
    /// The client was too slow sending its request.
    #[error("{0}")]
    Timeout(String),
    /// The hub cannot take the request now (store failure, shutting down);
    /// clients treat it as transient and retry.
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            error: self.to_string(),
        };
        (status, Json(body)).into_response()
    }
}

impl From<super::store::StoreError> for ApiError {
    fn from(e: super::store::StoreError) -> Self {
        ApiError::Unavailable(e.0)
    }
}
