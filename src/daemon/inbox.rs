//! Receiving: a batch of messages from the hub becomes inbox files, ledger
//! entries, acks and hook runs — in that order.
//!
//! Promise: a message is acked only after its inbox file and its ledger entry
//! are durable, so a crash at any point loses nothing (the hub re-delivers what
//! was not acked) and doubles nothing (the ledger recognises what was already
//! written, also after the inbox file was deleted). A message already in the
//! ledger is acked again but neither rewritten nor hooked.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::backoff::Backoff;
use super::hooks::{self, HookJob, Hooks};
use super::ledger::{self, LedgerFile, Received};
use super::pending;
use crate::client::HubClient;
use crate::message::Message;
use crate::spool::{Queue, Spool};

/// Most ids in one ack request.
const ACK_CHUNK: usize = 1000;
/// How often the ledger is pruned of entries past the hub's retention.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Counts reach the info log at most this often, so a burst is a few lines.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// The receiving side of one base dir: inbox writes, ledger and hand-offs.
pub struct Inbox {
    spool: Spool,
    received: Received,
    ledger: Option<LedgerFile>,
    retention: Duration,
    last_prune: Instant,
    acks: mpsc::Sender<Vec<Uuid>>,
    hooks: Hooks,
    counts: Counts,
}

#[derive(Default)]
struct Counts {
    written: usize,
    duplicates: usize,
    since: Option<Instant>,
}

impl Inbox {
    /// Loads the ledger (blocking: call at start, off the reactor).
    pub fn open(
        spool: Spool,
        retention: Duration,
        acks: mpsc::Sender<Vec<Uuid>>,
        hooks: Hooks,
    ) -> Result<Inbox> {
        let (ledger, received) = LedgerFile::open(spool.base(), retention)?;
        for job in pending::owed(&spool) {
            hooks.submit(job);
        }
        Ok(Inbox {
            spool,
            received,
            ledger: Some(ledger),
            retention,
            last_prune: Instant::now(),
            acks,
            hooks,
            counts: Counts::default(),
        })
    }

    /// Writes the new messages of `batch` into inbox/ and the ledger, then
    /// queues acks for the whole batch and hooks for the new ones. On error
    /// nothing of the batch is acked.
    pub async fn deliver(&mut self, batch: Vec<Message>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let fresh = ledger::fresh(&self.received, batch.iter().map(|m| &m.id));
        let mut wanted: HashSet<Uuid> = fresh.into_iter().collect();
        let new: Vec<Message> = batch
            .iter()
            .filter(|m| wanted.remove(&m.id))
            .cloned()
            .collect();
        let all_ids: Vec<Uuid> = batch.iter().map(|m| m.id).collect();
        let duplicates = batch.len() - new.len();

        let ledger = self.ledger.take().context("the ledger is unavailable")?;
        let spool = self.spool.clone();
        let now = ledger::unix_now();
        let (ledger, written) =
            tokio::task::spawn_blocking(move || write_durably(&spool, ledger, new, now))
                .await
                .context("inbox writer stopped")?;
        self.ledger = Some(ledger);
        let written = written?;

        for w in &written {
            self.received.insert(w.message.id, now);
            tracing::debug!(id = %w.message.id, kind = %w.message.kind, source = %w.message.source, "received");
        }
        self.count(written.len(), duplicates);
        // Only now, with files and ledger durable, may the hub forget them.
        if self.acks.send(all_ids).await.is_err() {
            tracing::warn!("acker stopped; acks left for the hub to re-deliver");
        }
        for w in written {
            if let Some(hook) = w.hook {
                self.hooks.submit(HookJob {
                    hook,
                    json: w.json,
                    inbox_file: w.path,
                    message: w.message,
                    pending: w.pending,
                });
            }
        }
        Ok(())
    }

    /// Periodic upkeep: the counts log line and the ledger pruning.
    pub async fn tick(&mut self) {
        self.log_counts(true);
        if self.last_prune.elapsed() < PRUNE_EVERY {
            return;
        }
        self.last_prune = Instant::now();
        if ledger::prune(&mut self.received, self.retention, ledger::unix_now()) == 0 {
            return;
        }
        let Some(mut file) = self.ledger.take() else {
            return;
        };
        let snapshot = self.received.clone();
        let file = tokio::task::spawn_blocking(move || {
            if let Err(e) = file.compact(&snapshot) {
                tracing::warn!("cannot prune the received-ids ledger: {e:#}");
            }
            file
        })
        .await;
        self.ledger = file.ok();
    }

    fn count(&mut self, written: usize, duplicates: usize) {
        self.counts.written += written;
        self.counts.duplicates += duplicates;
        tracing::debug!(written, duplicates, "inbox batch");
        self.log_counts(false);
    }

    fn log_counts(&mut self, force: bool) {
        let c = &mut self.counts;
        let since = *c.since.get_or_insert_with(Instant::now);
        if c.written + c.duplicates == 0 || (!force && since.elapsed() < LOG_EVERY) {
            return;
        }
        tracing::info!(
            received = c.written,
            duplicates = c.duplicates,
            "messages written to inbox/"
        );
        *c = Counts {
            since: Some(Instant::now()),
            ..Counts::default()
        };
    }
}

/// One message as written into inbox/.
struct Written {
    message: Message,
    json: Vec<u8>,
    path: PathBuf,
    hook: Option<PathBuf>,
    pending: Option<PathBuf>,
}

/// The blocking part of [`Inbox::deliver`]: inbox files first, then the ledger,
/// so that an id in the ledger always has had its inbox file, then the marks
/// of the hooks owed (so a mark always belongs to a message the ledger knows).
fn write_durably(
    spool: &Spool,
    mut ledger: LedgerFile,
    new: Vec<Message>,
    now: u64,
) -> (LedgerFile, Result<Vec<Written>>) {
    let result = (|| {
        let files: Vec<(String, Vec<u8>)> = new
            .iter()
            .map(|m| (m.file_name(), m.to_json_bytes()))
            .collect();
        spool.write_batch(Queue::Inbox, &files)?;
        let ids: Vec<Uuid> = new.iter().map(|m| m.id).collect();
        ledger.append(&ids, now)?;
        let hooks_dir = spool.hooks_dir();
        let mut found: HashMap<String, Option<PathBuf>> = HashMap::new();
        let hooks: Vec<Option<PathBuf>> = new
            .iter()
            .map(|m| {
                found
                    .entry(m.kind.clone())
                    .or_insert_with(|| hooks::find(&hooks_dir, &m.kind))
                    .clone()
            })
            .collect();
        let hooked: Vec<&str> = files
            .iter()
            .zip(&hooks)
            .filter(|(_, h)| h.is_some())
            .map(|((name, _), _)| name.as_str())
            .collect();
        let mut marks = pending::record(spool, &hooked)?.into_iter();
        let inbox = std::path::absolute(spool.dir(Queue::Inbox)).unwrap_or(spool.dir(Queue::Inbox));
        Ok(new
            .into_iter()
            .zip(files)
            .zip(hooks)
            .map(|((message, (name, json)), hook)| Written {
                pending: hook.as_ref().and_then(|_| marks.next().flatten()),
                path: inbox.join(name),
                message,
                json,
                hook,
            })
            .collect())
    })();
    (ledger, result)
}

/// Sends the ids the inbox queued, in as few requests as possible, retrying
/// with backoff while the hub fails. Ends when every [`Inbox`] is gone and
/// the queued ids are acked, or when `cancel` fires while the hub is failing
/// (the hub then re-delivers those messages and the ledger drops them).
pub async fn ack_loop(
    client: HubClient,
    host: String,
    mut rx: mpsc::Receiver<Vec<Uuid>>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut pending: Vec<Uuid> = Vec::new();
    loop {
        if pending.is_empty() {
            match rx.recv().await {
                Some(ids) => pending = ids,
                None => return,
            }
        }
        // Everything queued meanwhile rides along in the same requests.
        while let Ok(more) = rx.try_recv() {
            pending.extend(more);
        }
        match ack_all(&client, &host, &pending).await {
            Ok(()) => {
                backoff.reset();
                pending.clear();
            }
            Err(done) => {
                pending.drain(..done);
                let delay = backoff.next_delay();
                tokio::select! {
                    _ = cancel.cancelled() => {
                        tracing::warn!(unacked = pending.len(), "shutting down with acks the hub did not take; it will re-deliver them");
                        return;
                    }
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Acks `ids` in chunks; on a failure returns how many were acked before it.
async fn ack_all(client: &HubClient, host: &str, ids: &[Uuid]) -> Result<(), usize> {
    let mut done = 0;
    for chunk in ids.chunks(ACK_CHUNK) {
        match client.ack(host, chunk).await {
            Ok(_) => done += chunk.len(),
            Err(e) if e.is_transient() => {
                tracing::warn!("ack failed, will retry: {e}");
                return Err(done);
            }
            Err(e) => {
                // A refused ack would be refused again; the hub re-delivers
                // these messages and the ledger recognises them.
                tracing::warn!(count = chunk.len(), "hub refused an ack: {e}");
                done += chunk.len();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Priority;

    #[tokio::test]
    async fn a_message_is_written_once_even_after_its_file_is_deleted() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let (hooks, _task) = Hooks::start(1, Duration::from_secs(5), CancellationToken::new());
        let mut inbox = Inbox::open(spool.clone(), Duration::from_secs(3600), tx, hooks).unwrap();
        let msg = Message::new("t", "m1", None, Priority::Normal, serde_json::json!({})).unwrap();

        inbox.deliver(vec![msg.clone(), msg.clone()]).await.unwrap();
        assert_eq!(spool.list(Queue::Inbox).unwrap(), vec![msg.file_name()]);
        assert_eq!(rx.recv().await.unwrap(), vec![msg.id, msg.id]);

        spool.remove(Queue::Inbox, &msg.file_name()).unwrap();
        drop(inbox);
        let (tx, mut rx) = mpsc::channel(16);
        let (hooks, _task) = Hooks::start(1, Duration::from_secs(5), CancellationToken::new());
        let mut inbox = Inbox::open(spool.clone(), Duration::from_secs(3600), tx, hooks).unwrap();
        inbox.deliver(vec![msg.clone()]).await.unwrap();
        assert!(spool.list(Queue::Inbox).unwrap().is_empty());
        // Still acked: the hub re-sent it because an earlier ack was lost.
        assert_eq!(rx.recv().await.unwrap(), vec![msg.id]);
    }
}
