//! The sending side: watch outbox/ and send what appears, at once.
//!
//! inotify (through `notify`) says "something changed"; events are coalesced
//! into one pending wake-up, and one pass sends everything present, so a burst
//! of ten thousand files costs a few passes, not ten thousand rescans. The
//! tick rescans anyway as a safety net (and cleans sent/). While the hub fails,
//! passes wait for a capped exponential backoff — or for the receiving side to
//! report the hub back — so a down hub never causes a busy loop.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, Notify};
use tokio::time::{interval, sleep_until, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::send::{OutboxSender, PassReport};
use crate::spool::{Queue, Spool};

pub struct Outbox {
    pub sender: OutboxSender,
    pub spool: Spool,
    pub poll_interval: Duration,
    pub sent_ttl: Duration,
    /// Notified when the hub answers again, to retry without waiting out the backoff.
    pub hub_back: Arc<Notify>,
}

impl Outbox {
    /// Sends until `cancel` fires; a pass in progress finishes its current batch.
    pub async fn run(mut self, cancel: CancellationToken) {
        // Capacity 1 and `try_send`: any number of events while a pass runs
        // leave exactly one wake-up behind, which is all the coalescing needed.
        let (tx, mut rx) = mpsc::channel::<()>(1);
        let _watcher = watch(&self.spool.dir(Queue::Outbox), tx);
        let mut tick = interval(self.poll_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        let mut retry_at: Option<Instant> = None;
        let mut recheck_at: Option<Instant> = None;
        let mut log = SendLog::default();
        let mut now_again = true;
        loop {
            if !now_again {
                let wake = [retry_at, recheck_at].into_iter().flatten().min();
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return,
                    _ = self.hub_back.notified() => retry_at = None,
                    _ = rx.recv() => {}
                    _ = tick.tick() => {
                        log.flush();
                        self.clean_sent().await;
                    }
                    _ = sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {}
                }
            }
            now_again = false;
            if retry_at.is_some_and(|t| Instant::now() < t) {
                continue;
            }
            let report = match self.sender.pass(&cancel).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("send pass failed: {e:#}");
                    retry_at = Some(Instant::now() + backoff.next_delay());
                    continue;
                }
            };
            log.pass(&report);
            recheck_at = report.recheck_at.map(Instant::from_std);
            if report.hub_error.is_some() {
                retry_at = Some(Instant::now() + backoff.next_delay());
            } else {
                backoff.reset();
                retry_at = None;
                now_again = report.more;
            }
        }
    }

    /// Deletes sent/ files whose mtime is older than `sent_ttl`.
    async fn clean_sent(&self) {
        let (dir, ttl) = (self.spool.dir(Queue::Sent), self.sent_ttl);
        let removed = tokio::task::spawn_blocking(move || remove_older(&dir, ttl))
            .await
            .unwrap_or(0);
        if removed > 0 {
            tracing::info!(removed, "deleted sent/ files older than sent_ttl");
        }
    }
}

/// The sender's log: counts at most once a second (a burst is a few lines),
/// an outage once when it starts and once when it ends.
#[derive(Default)]
struct SendLog {
    sent: usize,
    since: Option<Instant>,
    hub_down: bool,
}

impl SendLog {
    fn pass(&mut self, report: &PassReport) {
        self.sent += report.sent;
        tracing::debug!(sent = report.sent, failed = report.failed, "send pass");
        match &report.hub_error {
            Some(e) if !self.hub_down => {
                tracing::warn!("cannot send, files stay in outbox/ and are retried: {e}");
                self.hub_down = true;
            }
            Some(e) => tracing::debug!("still cannot send: {e}"),
            None if self.hub_down && report.sent > 0 => {
                tracing::info!("hub reachable again");
                self.hub_down = false;
            }
            None => {}
        }
        if self
            .since
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.sent > 0 {
            tracing::info!(sent = self.sent, "messages sent to the hub");
        }
        self.sent = 0;
        self.since = Some(Instant::now());
    }
}

/// Watches `dir`; every event becomes a wake-up. Without a watcher (inotify
/// limits) the tick still finds new files, only later.
fn watch(dir: &Path, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    let handler = move |event: notify::Result<notify::Event>| {
        if event.as_ref().is_ok_and(|e| !may_add_a_file(&e.kind)) {
            return;
        }
        // Full means a wake-up is already pending: that one covers this event.
        let _ = tx.try_send(());
    };
    let result = notify::recommended_watcher(handler)
        .and_then(|mut w| w.watch(dir, RecursiveMode::NonRecursive).map(|()| w));
    match result {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), "cannot watch outbox/, relying on poll_interval: {e}");
            None
        }
    }
}

/// Whether an event may mean a new or completed file. Opening, reading and
/// removing do not; reacting to them would make every pass (which opens the
/// directory and its files) trigger the next one.
fn may_add_a_file(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Remove(_) => false,
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => false,
        _ => true,
    }
}

fn remove_older(dir: &Path, ttl: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let cutoff = SystemTime::now().checked_sub(ttl);
    let mut removed = 0;
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| cutoff.is_some_and(|c| t < c));
        if old
            && entry.file_type().is_ok_and(|t| t.is_file())
            && std::fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, RemoveKind};

    #[test]
    fn only_events_that_can_bring_a_file_wake_the_sender() {
        let wakes = [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Any,
        ];
        let quiet = [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Remove(RemoveKind::File),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
        ];
        assert!(wakes.iter().all(may_add_a_file));
        assert!(!quiet.iter().any(may_add_a_file));
    }
}
