//! The page served at `GET /`: a placeholder until the dashboard (hosts,
//! queue depths, live feed from `/v1/stream`) is built.

/// The dashboard's HTML.
pub fn page() -> &'static str {
    r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>mesync hub</title></head>
<body>
<h1>mesync hub</h1>
<p>Hosts: <a href="/v1/hosts">/v1/hosts</a>. Live feed: <code>/v1/stream</code>.
Metrics: <a href="/metrics">/metrics</a>.</p>
</body>
</html>
"#
}
