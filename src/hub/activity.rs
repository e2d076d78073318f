//! The recent past the dashboard shows (`GET /v1/activity`, with
//! `?recent=false` for the counts alone): the last 50
//! messages the hub accepted, so the feed is not empty on a quiet hub, and
//! how many messages were accepted and delivered in each second of the last
//! 10 minutes, for its chart.
//!
//! Both live in memory only, in fixed-size rings: a restarted hub starts
//! them empty. They are filled by one task that follows the hub-wide feed
//! and samples the counters once a second, so the message path does no
//! extra work and any store feeds them alike.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::broadcast;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;

/// Accepted messages kept for a newly opened dashboard.
pub const RECENT: usize = 50;
/// Seconds of per-second counts kept for the chart (10 minutes).
pub const SECONDS: usize = 600;

#[derive(Default)]
pub struct Activity {
    inner: Mutex<Rings>,
}

#[derive(Default)]
struct Rings {
    recent: VecDeque<Arc<RawValue>>,
    accepted: VecDeque<u64>,
    delivered: VecDeque<u64>,
    /// When the newest count's second ended (Unix ms).
    until_ms: i64,
}

/// The answer of `GET /v1/activity`: oldest first everywhere.
#[derive(Serialize)]
struct Snapshot<'a> {
    recent: Vec<&'a RawValue>,
    per_second: PerSecond<'a>,
}

#[derive(Serialize)]
struct PerSecond<'a> {
    /// The end of the newest second (Unix ms); the counts run up to it.
    until_ms: i64,
    accepted: &'a VecDeque<u64>,
    delivered: &'a VecDeque<u64>,
}

impl Activity {
    /// The JSON of `GET /v1/activity`; without the messages unless
    /// `with_recent` (a dashboard asks for them once, then for the counts).
    pub fn snapshot(&self, with_recent: bool) -> String {
        let Ok(rings) = self.inner.lock() else {
            return String::from("{}");
        };
        let recent = match with_recent {
            true => rings.recent.iter().map(|m| &**m).collect(),
            false => Vec::new(),
        };
        let snapshot = Snapshot {
            recent,
            per_second: PerSecond {
                until_ms: rings.until_ms,
                accepted: &rings.accepted,
                delivered: &rings.delivered,
            },
        };
        // Numbers and JSON that was valid when stored: cannot fail.
        serde_json::to_string(&snapshot).unwrap_or_else(|_| String::from("{}"))
    }

    fn took(&self, message: Arc<RawValue>) {
        if let Ok(mut rings) = self.inner.lock() {
            push(&mut rings.recent, message, RECENT);
        }
    }

    fn counted(&self, accepted: u64, delivered: u64) {
        if let Ok(mut rings) = self.inner.lock() {
            push(&mut rings.accepted, accepted, SECONDS);
            push(&mut rings.delivered, delivered, SECONDS);
            rings.until_ms = jiff::Timestamp::now().as_millisecond();
        }
    }

    /// Follows `feed` and samples `metrics` every second until `stop`.
    pub async fn follow(
        self: Arc<Self>,
        mut feed: broadcast::Receiver<Arc<RawValue>>,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) {
        let totals = || {
            (
                metrics.accepted.load(Ordering::Relaxed),
                metrics.delivered.load(Ordering::Relaxed),
            )
        };
        let mut last = totals();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {
                    let now = totals();
                    self.counted(now.0.saturating_sub(last.0), now.1.saturating_sub(last.1));
                    last = now;
                }
                m = feed.recv() => match m {
                    Ok(m) => self.took(m),
                    // Fell behind a burst: what comes next is newer anyway.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }
}

/// Appends `item`, dropping the oldest beyond `cap`.
fn push<T>(ring: &mut VecDeque<T>, item: T, cap: usize) {
    if ring.len() == cap {
        ring.pop_front();
    }
    ring.push_back(item);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_messages_and_seconds() {
        let a = Activity::default();
        for i in 0..(RECENT + 5) {
            let json = RawValue::from_string(format!("{{\"n\":{i}}}")).unwrap();
            a.took(Arc::from(json));
        }
        for i in 0..(SECONDS as u64 + 3) {
            a.counted(i, 2 * i);
        }
        let v: serde_json::Value = serde_json::from_str(&a.snapshot(true)).unwrap();
        let recent = v["recent"].as_array().unwrap();
        assert_eq!(recent.len(), RECENT);
        assert_eq!(recent[0]["n"], 5);
        assert_eq!(recent[RECENT - 1]["n"], RECENT + 4);
        let accepted = v["per_second"]["accepted"].as_array().unwrap();
        assert_eq!(accepted.len(), SECONDS);
        assert_eq!(accepted[0], 3);
        assert_eq!(v["per_second"]["delivered"][SECONDS - 1], 2 * (SECONDS + 2));
        let v: serde_json::Value = serde_json::from_str(&a.snapshot(false)).unwrap();
        assert_eq!(v["recent"], serde_json::json!([]));
    }
}
