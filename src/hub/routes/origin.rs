//! Refusing requests that a web page on another site makes the browser send.
//!
//! A browser attaches `Origin` to cross-site requests (and `Sec-Fetch-Site`
//! to every request, including an `<img>` tag's). A request whose origin is
//! neither the hub's own (the `Host` it was sent to) nor listed in
//! `allowed_origins` is 403, so a page a user happens to open cannot post
//! messages, register hosts or read queues through that user's browser.
//! Requests without these headers (curl, the daemon) are not affected.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::hub::error::ApiError;
use crate::hub::Hub;

pub async fn same_origin(State(hub): State<Arc<Hub>>, req: Request, next: Next) -> Response {
    match refusal(req.headers(), &hub.limits.allowed_origins) {
        None => next.run(req).await,
        Some(why) => ApiError::Forbidden(why).into_response(),
    }
}

/// Why the request is refused, if it is.
fn refusal(headers: &HeaderMap, allowed: &[String]) -> Option<String> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match text(ORIGIN.as_str()) {
        Some(origin) => {
            let own = text(HOST.as_str()).is_some_and(|host| authority_of(origin) == Some(host));
            let listed = allowed
                .iter()
                .any(|a| a.eq_ignore_ascii_case(origin.trim_end_matches('/')));
            (!own && !listed).then(|| {
                format!(
                    "requests from pages of {origin} are refused; \
                     list that origin in allowed_origins to allow them"
                )
            })
        }
        // No Origin: only a browser's cross-site request that leaves it
        // out (an image, a link) says so in Sec-Fetch-Site.
        None => {
            let site = text("sec-fetch-site").unwrap_or("none");
            matches!(site, "cross-site" | "same-site").then(|| {
                "requests that a page of another site makes the browser send are refused"
                    .to_string()
            })
        }
    }
}

/// `host:port` of an origin, as a `Host` header would name it.
fn authority_of(origin: &str) -> Option<&str> {
    let uri: Uri = origin.parse().ok()?;
    uri.scheme()?;
    let start = origin.find("://")? + 3;
    let auth = &origin[start..];
    Some(auth.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::refusal;
    use axum::http::HeaderMap;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn own_origin_passes_and_others_do_not() {
        let own = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(refusal(&own, &[]).is_none());
        let other = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
        ]);
        assert!(refusal(&other, &[]).is_some());
        let listed = vec!["http://evil.example".to_string()];
        assert!(refusal(&other, &listed).is_none());
        let null = headers(&[("host", "127.0.0.1:8080"), ("origin", "null")]);
        assert!(refusal(&null, &[]).is_some());
    }

    #[test]
    fn cross_site_without_origin_is_refused() {
        let img = headers(&[("host", "h:1"), ("sec-fetch-site", "cross-site")]);
        assert!(refusal(&img, &[]).is_some());
        let typed = headers(&[("host", "h:1"), ("sec-fetch-site", "none")]);
        assert!(refusal(&typed, &[]).is_none());
        assert!(refusal(&headers(&[]), &[]).is_none());
    }
}
