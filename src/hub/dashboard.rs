//! The dashboard page served at `GET /`: registered hosts, the hub's
//! counters and a live feed of messages. The page is self-contained (HTML,
//! CSS and vanilla JS from `assets/dashboard/`, inlined into one document,
//! nothing fetched from elsewhere) and compiled into the binary. It holds no
//! data, so it is served without a token; it asks for the token itself and
//! sends it with each request (`Authorization: Bearer`, `?token=` on the stream).

use std::sync::LazyLock;

use axum::http::header::{self, HeaderName};

/// The page with its style and script inlined, so it is one response.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    include_str!("../../assets/dashboard/dashboard.html")
        .replacen(
            "/* dashboard.css */\n",
            include_str!("../../assets/dashboard/dashboard.css"),
            1,
        )
        .replacen(
            "// dashboard.js\n",
            include_str!("../../assets/dashboard/dashboard.js"),
            1,
        )
});

/// The dashboard's HTML.
pub fn page() -> &'static str {
    &PAGE
}

/// Response headers for the page. The policy lets it talk to this hub
/// only, so even a bug that turned message data into markup could load
/// nothing and send nothing elsewhere; `no-cache` makes a new binary's page
/// show up at once.
pub const HEADERS: [(HeaderName, &str); 3] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
         connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'",
    ),
    (header::CACHE_CONTROL, "no-cache"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
];

#[cfg(test)]
mod tests {
    use super::page;

    #[test]
    fn page_is_self_contained_and_never_parses_data_as_markup() {
        let html = page();
        assert!(!html.contains("/* dashboard.css */") && !html.contains("// dashboard.js"));
        assert!(html.contains("</script>") && html.len() > 10_000);
        for banned in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
        ] {
            assert!(!html.contains(banned), "the page uses {banned}");
        }
        for remote in ["src=\"http", "href=\"http", "@import", "url(http"] {
            assert!(!html.contains(remote), "the page loads {remote}...");
        }
    }
}
