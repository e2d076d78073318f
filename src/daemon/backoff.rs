//! Capped exponential backoff, shared by the sender, the stream and the acker.
//!
//! Every retry loop of the daemon waits through one of these, so a hub that is
//! down costs a handful of requests per minute, never a busy loop. Each pause
//! is jittered (between half and all of its nominal length), so a fleet of
//! daemons that lost the hub at the same moment does not come back in
//! lockstep and hit a restarted hub all at once.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    start: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(start: Duration, max: Duration) -> Backoff {
        Backoff {
            start,
            max,
            next: start,
        }
    }

    /// The pause before the next attempt; each call doubles the following one, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        jitter(delay)
    }

    /// Back to the first, short pause after a success.
    pub fn reset(&mut self) {
        self.next = self.start;
    }
}

/// A random length between half of `d` and `d`.
fn jitter(d: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    // Each RandomState is freshly keyed: random enough to spread reconnects,
    // without a dependency for it.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let half = d / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(random % nanos.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        for nominal in [100, 200, 400, 500, 500] {
            let got = b.next_delay().as_millis();
            assert!(
                (nominal / 2..=nominal).contains(&got),
                "{got} for {nominal}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn daemons_starting_together_do_not_retry_in_lockstep() {
        let delays: std::collections::HashSet<Duration> = (0..20)
            .map(|_| Backoff::new(Duration::from_secs(5), Duration::from_secs(5)).next_delay())
            .collect();
        assert!(delays.len() > 10, "{delays:?}");
        assert!(delays.iter().all(|d| *d >= Duration::from_millis(2500)));
    }
}
