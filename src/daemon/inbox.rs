//! The inbox writer: the one thread that owns inbox/, the received-ids ledger
//! and the marks of hooks owed. Each batch from the hub becomes staged files,
//! marks, ledger entries, inbox files, acks and hook runs, in that order.
//!
//! Promises: a message is acked only after its file and its ledger entry are
//! durable, so a crash at any point loses nothing (the hub re-delivers what
//! was not acked) and doubles nothing: a file appears in inbox/ only after its
//! ledger entry (see [`crate::spool::Staged`]), so the ledger recognises every
//! message a program may have seen, also after it consumed the file. A
//! message already in the ledger is acked again but neither rewritten nor
//! hooked. Every batch handed over is written: while the disk fails the
//! writer retries with backoff, acking nothing, until it works or the daemon
//! stops (then the hub keeps the batch), so whoever feeds the writer may move
//! its cursor past a batch as soon as it is handed over.
//!
//! Batches reach it through the hand-off of [`super::handoff`], one at a time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::backoff::Backoff;
use super::handoff::{self, InboxInput, ToWriter};
use super::hooks::{self, HookJob, Hooks};
use super::ledger::{self, LedgerFile, Received};
use super::pending::{self, Mark};
use crate::message::{id_from_file_name, Message};
use crate::spool::{sync_dir, Queue, Spool, Staged};

/// How often the ledger is pruned of entries past the hub's retention.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Counts reach the info log at most this often, so a burst is a few lines.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// The writer's state; it lives on its own thread, fed by [`InboxInput`].
pub struct InboxWriter {
    spool: Spool,
    inbox_dir: PathBuf,
    ledger: LedgerFile,
    received: Received,
    retention: Duration,
    last_prune: Instant,
    acks: mpsc::Sender<Vec<Uuid>>,
    hooks: Hooks,
    counts: Counts,
    /// Fired at shutdown: batches not written yet are dropped (not acked).
    cancel: CancellationToken,
}

impl InboxWriter {
    /// Loads the ledger and queues the hooks owed from before this start.
    /// Blocks on the disk.
    pub fn open(
        spool: Spool,
        retention: Duration,
        acks: mpsc::Sender<Vec<Uuid>>,
        hooks: Hooks,
        cancel: CancellationToken,
    ) -> Result<InboxWriter> {
        let (ledger, received) = LedgerFile::open(spool.base(), retention)?;
        let inbox_dir = pending::inbox_dir(&spool);
        let mut writer = InboxWriter {
            spool,
            inbox_dir,
            ledger,
            received,
            retention,
            last_prune: Instant::now(),
            acks,
            hooks,
            counts: Counts::default(),
            cancel,
        };
        writer.recover_staged();
        writer.submit_owed()?;
        Ok(writer)
    }

    /// Starts the writer thread. The token is cancelled when it ends, also
    /// by a panic, so its owner notices.
    pub fn spawn(self) -> Result<(InboxInput, CancellationToken)> {
        let (input, rx) = handoff::channel();
        let gone = CancellationToken::new();
        let guard = gone.clone().drop_guard();
        std::thread::Builder::new()
            .name("mesync-inbox".to_string())
            .spawn(move || {
                let _gone = guard;
                self.run(rx);
            })?;
        Ok((input, gone))
    }

    fn run(mut self, mut rx: mpsc::Receiver<ToWriter>) {
        while let Some(item) = rx.blocking_recv() {
            match item {
                ToWriter::Batch(batch, _turn) => self.deliver(batch),
                ToWriter::Upkeep => self.upkeep(),
            }
        }
        self.counts.log(true);
    }

    /// Queues the hooks owed from before this start. A mark whose message
    /// the ledger does not know was made for a batch a crash stopped before
    /// its commit: that message never reached inbox/ and the hub sends it
    /// again, so the mark goes. (Where its inbox file exists after all, as
    /// data dirs of earlier versions may have it, the message enters the
    /// ledger now, so the re-delivery neither rewrites nor re-hooks it.)
    fn submit_owed(&mut self) -> Result<()> {
        let (owed, uncommitted): (Vec<_>, Vec<_>) = pending::owed(&self.spool)
            .into_iter()
            .partition(|o| self.received.contains_key(&o.message.id) || o.inbox_file.exists());
        uncommitted.into_iter().for_each(|o| o.mark.clear());
        let unknown: Vec<Uuid> = owed
            .iter()
            .map(|o| o.message.id)
            .filter(|id| !self.received.contains_key(id))
            .collect();
        if !unknown.is_empty() {
            let now = ledger::unix_now();
            self.ledger.append(&unknown, now)?;
            self.received.extend(unknown.iter().map(|id| (*id, now)));
        }
        let hooks_dir = self.spool.hooks_dir();
        let mut queued = 0;
        for o in owed {
            match hooks::find(&hooks_dir, &o.message.kind) {
                Some(hook) => {
                    queued += 1;
                    self.hooks.submit(HookJob {
                        hook,
                        message: o.message,
                        json: o.json,
                        inbox_file: o.inbox_file,
                        pending: Some(o.mark),
                    });
                }
                // The hook was removed meanwhile: nothing is owed any more.
                None => o.mark.clear(),
            }
        }
        if queued > 0 {
            tracing::info!(hooks = queued, "running hooks owed from before the restart");
        }
        Ok(())
    }

    /// Writes `batch` (retrying while the disk fails), then hands it on.
    fn deliver(&mut self, batch: Vec<Message>) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut failing = false;
        loop {
            // Stopping: what is not written is not acked, and the hub keeps it.
            if self.cancel.is_cancelled() {
                return;
            }
            match self.write(&batch) {
                Ok(fresh) => {
                    if failing {
                        tracing::info!("inbox/ is writable again");
                    }
                    self.hand_on(batch, fresh);
                    return;
                }
                Err(e) if failing => tracing::debug!("still cannot write to inbox/: {e:#}"),
                Err(e) => {
                    tracing::warn!(
                        "cannot write to inbox/, retrying; nothing is acked meanwhile: {e:#}"
                    );
                    failing = true;
                }
            }
            self.pause(backoff.next_delay());
        }
    }

    /// Writes the new messages of `batch`: staged files first (durable, not
    /// visible), then the marks of the hooks owed (links to the staged files),
    /// then the ledger (the commit), then the files appear in inbox/. A crash
    /// before the ledger entry leaves nothing visible (the hub re-delivers);
    /// one after it is finished at the next start ([`Self::recover_staged`]).
    fn write(&mut self, batch: &[Message]) -> Result<Vec<Fresh>> {
        let positions = ledger::fresh(&self.received, batch.iter().map(|m| &m.id));
        let files: Vec<(String, Vec<u8>)> = positions
            .iter()
            .map(|&i| (batch[i].file_name(), batch[i].to_json_bytes()))
            .collect();
        let staged = self.spool.stage(&files)?;

        let hooks_dir = self.spool.hooks_dir();
        let mut found: HashMap<&str, Option<PathBuf>> = HashMap::new();
        let hooks: Vec<Option<PathBuf>> = positions
            .iter()
            .map(|&i| {
                let kind = batch[i].kind.as_str();
                found
                    .entry(kind)
                    .or_insert_with(|| hooks::find(&hooks_dir, kind))
                    .clone()
            })
            .collect();
        let mut marks = self.mark_hooked(&staged, &hooks)?.into_iter();

        let ids: Vec<Uuid> = positions.iter().map(|&i| batch[i].id).collect();
        let now = ledger::unix_now();
        self.ledger.append(&ids, now)?;
        self.received.extend(ids.iter().map(|id| (*id, now)));
        self.counts.add(ids.len(), batch.len() - ids.len());
        self.publish(&staged)?;
        Ok(positions
            .into_iter()
            .zip(files)
            .zip(hooks)
            .map(|((index, (name, json)), hook)| Fresh {
                mark: hook.as_ref().and_then(|_| marks.next()),
                index,
                name,
                json,
                hook,
            })
            .collect())
    }

    /// Marks the hooks owed, one mark per hooked file, before the ledger
    /// knows the messages: a batch whose marks cannot be made is not written
    /// (it is retried like any other disk failure).
    fn mark_hooked(&self, staged: &Staged, hooks: &[Option<PathBuf>]) -> Result<Vec<Mark>> {
        let hooked: Vec<(&Path, &str)> = staged
            .paths()
            .zip(hooks)
            .filter(|(_, h)| h.is_some())
            .map(|((path, name), _)| (path.as_path(), name))
            .collect();
        if hooked.is_empty() {
            return Ok(Vec::new());
        }
        pending::record(&self.spool, &hooked)
    }

    /// Finishes what a crash left staged: files whose id
    /// is in the ledger go to inbox/, the others (never recorded, so the hub
    /// sends them again) are removed. Blocks on the disk.
    fn recover_staged(&self) {
        let left = self.spool.staged_leftovers();
        if left.is_empty() {
            return;
        }
        let (mut moved, mut dropped, mut failed) = (0, 0, 0);
        for (path, name) in left.paths() {
            let recorded =
                id_from_file_name(name).is_some_and(|id| self.received.contains_key(&id));
            let done = if recorded {
                std::fs::rename(path, self.spool.path(Queue::Inbox, name)).map(|()| moved += 1)
            } else {
                std::fs::remove_file(path).map(|()| dropped += 1)
            };
            if let Err(e) = done {
                tracing::warn!("cannot finish the staged file {}: {e}", path.display());
                failed += 1;
            }
        }
        if moved > 0 {
            if let Err(e) = sync_dir(&self.spool.dir(Queue::Inbox)) {
                tracing::warn!("{e:#}");
                failed += 1;
            }
        }
        tracing::info!(
            moved,
            dropped,
            failed,
            "finished the files a stop left staged"
        );
    }

    /// Moves a recorded batch into inbox/, retrying while that fails (a full
    /// disk) until it works or the daemon stops; then the next start does it.
    fn publish(&self, staged: &Staged) -> Result<()> {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            let Err(e) = self.spool.publish(staged, Queue::Inbox) else {
                return Ok(());
            };
            if self.cancel.is_cancelled() {
                return Err(e.context("stopping with received files still staged"));
            }
            tracing::debug!("cannot move received files into inbox/ yet: {e:#}");
            self.pause(backoff.next_delay());
        }
    }

    /// Queues the acks for the whole batch and the hooks of its new messages.
    fn hand_on(&mut self, batch: Vec<Message>, fresh: Vec<Fresh>) {
        let ids = batch.iter().map(|m| m.id).collect();
        // Only now, with files and ledger durable, may the hub forget them.
        if self.acks.blocking_send(ids).is_err() {
            tracing::warn!("acker stopped; acks left for the hub to re-deliver");
        }
        let mut batch: Vec<Option<Message>> = batch.into_iter().map(Some).collect();
        for f in fresh {
            let Some(message) = batch[f.index].take() else {
                continue;
            };
            tracing::debug!(id = %message.id, kind = %message.kind, source = %message.source, "received");
            if let Some(hook) = f.hook {
                self.hooks.submit(HookJob {
                    hook,
                    message,
                    json: f.json,
                    inbox_file: self.inbox_dir.join(&f.name),
                    pending: f.mark,
                });
            }
        }
        self.counts.log(false);
    }

    fn upkeep(&mut self) {
        self.counts.log(true);

        if self.last_prune.elapsed() < PRUNE_EVERY {
            return;
        }
        self.last_prune = Instant::now();
        if ledger::prune(&mut self.received, self.retention, ledger::unix_now()) == 0 {
            return;
        }
        if let Err(e) = self.ledger.compact(&self.received) {
            tracing::warn!("cannot prune the received-ids ledger: {e:#}");
        }
    }

    /// Waits `delay`, or less when the daemon stops meanwhile.
    fn pause(&self, delay: Duration) {
        let until = Instant::now() + delay;
        while !self.cancel.is_cancelled() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

/// One new message of a batch, as written into inbox/.
struct Fresh {
    /// Its position in the batch.
    index: usize,
    name: String,
    json: Vec<u8>,
    hook: Option<PathBuf>,
    mark: Option<Mark>,
}

/// Messages written and duplicates dropped since the last log line.
#[derive(Default)]
struct Counts {
    written: usize,
    duplicates: usize,
    since: Option<Instant>,
}

impl Counts {
    fn add(&mut self, written: usize, duplicates: usize) {
        self.written += written;
        self.duplicates += duplicates;
        tracing::debug!(written, duplicates, "inbox batch");
    }

    fn log(&mut self, force: bool) {
        let since = *self.since.get_or_insert_with(Instant::now);
        if self.written + self.duplicates == 0 || (!force && since.elapsed() < LOG_EVERY) {
            return;
        }
        tracing::info!(
            received = self.written,
            duplicates = self.duplicates,
            "messages written to inbox/"
        );
        *self = Counts {
            since: Some(Instant::now()),
            ..Counts::default()
        };
    }
}

#[cfg(test)]
#[path = "inbox_tests.rs"]
mod tests;
