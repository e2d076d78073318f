//! The hub's counters, kept with atomics and rendered as Prometheus text at
//! `GET /metrics`. Counting never takes a lock on the message path; only the
//! per-route duration table is a map, and its keys are the route templates,
//! so it stays as small as the router.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

/// Upper bounds (seconds) of the request-duration histogram buckets.
const BUCKETS: [f64; 9] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0, 5.0];

#[derive(Default)]
pub struct Metrics {
    pub accepted: AtomicU64,
    pub duplicate: AtomicU64,
    pub rejected: AtomicU64,
    /// Messages sent to a host over SSE or long-poll (a resend counts again).
    pub delivered: AtomicU64,
    pub acked: AtomicU64,
    pub expired: AtomicU64,
    /// Records the store found damaged at start and did not replay.
    pub store_corrupt_records: AtomicU64,
    durations: DashMap<String, Histogram>,
}

#[derive(Default)]
struct Histogram {
    /// One counter per bucket of `BUCKETS`, plus +Inf.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    /// Records how long one request on `route` (a route template) took.
    pub fn observe(&self, route: &str, secs: f64) {
        let bucket = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        let record = |h: &Histogram| {
            h.counts[bucket].fetch_add(1, Ordering::Relaxed);
            h.sum_micros
                .fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
        };
        match self.durations.get(route) {
            Some(h) => record(&h),
            None => record(&self.durations.entry(route.to_string()).or_default()),
        }
    }

    /// The Prometheus text exposition; `pending` is (host, queue depth).
    pub fn render(&self, pending: &[(String, usize)], open_streams: u64) -> String {
        let mut out = String::with_capacity(4096);
        let counters = [
            (
                "accepted",
                &self.accepted,
                "Messages stored and fanned out.",
            ),
            (
                "duplicate",
                &self.duplicate,
                "Messages refused as already seen within dedupe_window.",
            ),
            (
                "rejected",
                &self.rejected,
                "Messages refused for their content.",
            ),
            (
                "delivered",
                &self.delivered,
                "Messages sent to hosts over SSE or long-poll.",
            ),
            ("acked", &self.acked, "Queue entries removed by an ack."),
            (
                "expired",
                &self.expired,
                "Unacked queue entries dropped after retention.",
            ),
        ];
        for (name, counter, help) in counters {
            let _ = writeln!(out, "# HELP mesync_messages_{name}_total {help}");
            let _ = writeln!(out, "# TYPE mesync_messages_{name}_total counter");
            let _ = writeln!(
                out,
                "mesync_messages_{name}_total {}",
                counter.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP mesync_store_corrupt_records_total Store records that failed their checksum or did not decode at start, not replayed.\n");
        out.push_str("# TYPE mesync_store_corrupt_records_total counter\n");
        let _ = writeln!(
            out,
            "mesync_store_corrupt_records_total {}",
            self.store_corrupt_records.load(Ordering::Relaxed)
        );
        out.push_str("# HELP mesync_pending Unacked messages queued per host.\n");
        out.push_str("# TYPE mesync_pending gauge\n");
        for (host, n) in pending {
            // Host ids are validated to [A-Za-z0-9._-], so no label escaping is needed.
            let _ = writeln!(out, "mesync_pending{{host=\"{host}\"}} {n}");
        }
        out.push_str("# HELP mesync_open_streams Open SSE connections.\n");
        out.push_str("# TYPE mesync_open_streams gauge\n");
        let _ = writeln!(out, "mesync_open_streams {open_streams}");
        self.render_durations(&mut out);
        out
    }

    fn render_durations(&self, out: &mut String) {
        out.push_str(
            "# HELP mesync_request_duration_seconds Time to answer a request, by route.\n",
        );
        out.push_str("# TYPE mesync_request_duration_seconds histogram\n");
        let mut routes: Vec<String> = self.durations.iter().map(|e| e.key().clone()).collect();
        routes.sort();
        for route in routes {
            let Some(h) = self.durations.get(&route) else {
                continue;
            };
            let mut total = 0;
            for (i, count) in h.counts.iter().enumerate() {
                total += count.load(Ordering::Relaxed);
                let le = BUCKETS
                    .get(i)
                    .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
                let _ = writeln!(
                    out,
                    "mesync_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {total}"
                );
            }
            let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "mesync_request_duration_seconds_sum{{route=\"{route}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "mesync_request_duration_seconds_count{{route=\"{route}\"}} {total}"
            );
        }
    }
}
