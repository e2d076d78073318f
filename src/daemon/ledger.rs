//! The received-ids ledger: which message ids already reached this machine's inbox.
//!
//! The hub delivers at least once, so the daemon must recognise a message it
//! already wrote, also after a program consumed and deleted the inbox file.
//! The ledger is `received.log` in the base dir, one `<uuid> <unix seconds>`
//! line per received message, appended and fsynced once per batch, and only
//! after the batch's inbox files are durable (an id in the ledger therefore
//! always means "its inbox file was written"). At start it is loaded into a
//! set and pruned of entries older than the hub's retention plus a margin, by
//! rewriting it atomically; the hub never re-delivers anything older.
//!
//! All methods block on the disk: call them from `spawn_blocking`.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use uuid::Uuid;

use crate::spool::{create_synced, sync_dir};

pub const LEDGER_FILE: &str = "received.log";

/// Kept beyond `retention` so that clock skew between hub and host cannot
/// let a re-delivered message slip past the ledger.
const MARGIN: Duration = Duration::from_secs(24 * 3600);

/// The append handle of the ledger file.
#[derive(Debug)]
pub struct LedgerFile {
    path: PathBuf,
    file: File,
}

/// The ids already received, with the time each was first recorded.
pub type Received = HashMap<Uuid, u64>;

impl LedgerFile {
    /// Loads `base/received.log`, drops entries older than `keep` (+ margin),
    /// rewrites the file if anything was dropped, and opens it for appending.
    pub fn open(base: &Path, keep: Duration) -> Result<(LedgerFile, Received)> {
        let path = base.join(LEDGER_FILE);
        let (received, dropped) = load(&path, keep)?;
        if dropped > 0 {
            rewrite(&path, &received)?;
            tracing::info!(
                dropped,
                kept = received.len(),
                "pruned the received-ids ledger"
            );
        }
        let file = open_append(&path)?;
        Ok((LedgerFile { path, file }, received))
    }

    /// Appends `ids` received at `now` and makes them durable.
    pub fn append(&mut self, ids: &[Uuid], now: u64) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut text = String::with_capacity(ids.len() * 48);
        for id in ids {
            text.push_str(&format!("{id} {now}\n"));
        }
        self.file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("appending to {}", self.path.display()))
    }

    /// Rewrites the ledger with only `received` (after pruning it in memory).
    pub fn compact(&mut self, received: &Received) -> Result<()> {
        self.file = rewrite(&self.path, received)?;
        Ok(())
    }
}

/// Drops from `received` what is older than `keep` (+ margin); returns how many.
pub fn prune(received: &mut Received, keep: Duration, now: u64) -> usize {
    let cutoff = now.saturating_sub((keep + MARGIN).as_secs());
    let before = received.len();
    received.retain(|_, t| *t >= cutoff);
    before - received.len()
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn load(path: &Path, keep: Duration) -> Result<(Received, usize)> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Received::new(), 0)),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let mut received = Received::new();
    let mut lines = 0usize;
    for line in BufReader::new(file).lines() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        lines += 1;
        // A torn last line (crash mid-append) is skipped: its batch was not
        // acked, so the hub re-delivers it and the inbox write is idempotent.
        let mut parts = line.split_ascii_whitespace();
        let (Some(id), Some(t)) = (parts.next(), parts.next()) else {
            continue;
        };
        if let (Ok(id), Ok(t)) = (Uuid::parse_str(id), t.parse::<u64>()) {
            received.entry(id).or_insert(t);
        }
    }
    prune(&mut received, keep, unix_now());
    let dropped = lines - received.len();
    Ok((received, dropped))
}

/// Atomic replacement: a crash leaves either the old or the new ledger, whole.
/// Returns the append handle of the new ledger, opened before the rename so
/// that appends can never go to the replaced file.
fn rewrite(path: &Path, received: &Received) -> Result<File> {
    let tmp = path.with_file_name(format!(".{LEDGER_FILE}.tmp"));
    // A leftover from a crash mid-rewrite is stale: the ledger itself is whole.
    let _ = fs::remove_file(&tmp);
    let mut text = String::with_capacity(received.len() * 48);
    let mut entries: Vec<_> = received.iter().collect();
    entries.sort_by_key(|(_, t)| **t);
    for (id, t) in entries {
        text.push_str(&format!("{id} {t}\n"));
    }
    let file = create_synced(&tmp, text.as_bytes())?;
    fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(file)
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Positions in `ids` of the ids not yet in `received`, first occurrence only.
pub fn fresh<'a>(received: &Received, ids: impl Iterator<Item = &'a Uuid>) -> Vec<usize> {
    let mut seen = HashSet::new();
    ids.enumerate()
        .filter(|(_, id)| !received.contains_key(id) && seen.insert(**id))
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

    #[test]
    fn appended_ids_survive_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut ledger, received) = LedgerFile::open(tmp.path(), WEEK).unwrap();
        assert!(received.is_empty());
        let ids = [Uuid::now_v7(), Uuid::now_v7()];
        ledger.append(&ids, unix_now()).unwrap();
        drop(ledger);
        let (_, received) = LedgerFile::open(tmp.path(), WEEK).unwrap();
        assert!(ids.iter().all(|id| received.contains_key(id)));
    }

    #[test]
    fn old_entries_and_torn_lines_are_pruned_at_open() {
        let tmp = tempfile::tempdir().unwrap();
        let (old, new) = (Uuid::now_v7(), Uuid::now_v7());
        let text = format!("{old} 1000\n{new} {}\n0193a0a4-7c1e", unix_now());
        fs::write(tmp.path().join(LEDGER_FILE), text).unwrap();
        let (_, received) = LedgerFile::open(tmp.path(), WEEK).unwrap();
        assert_eq!(received.len(), 1);
        assert!(received.contains_key(&new));
        let text = fs::read_to_string(tmp.path().join(LEDGER_FILE)).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
    }

    #[test]
    fn compact_keeps_appending_to_the_new_file() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut ledger, mut received) = LedgerFile::open(tmp.path(), WEEK).unwrap();
        let (old, new) = (Uuid::now_v7(), Uuid::now_v7());
        ledger.append(&[old], 1000).unwrap();
        received.insert(old, 1000);
        assert_eq!(prune(&mut received, WEEK, unix_now()), 1);
        ledger.compact(&received).unwrap();
        ledger.append(&[new], unix_now()).unwrap();
        let (_, received) = LedgerFile::open(tmp.path(), WEEK).unwrap();
        assert_eq!(received.keys().collect::<Vec<_>>(), vec![&new]);
    }

    #[test]
    fn fresh_skips_known_and_repeated_ids() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let received: Received = [(a, 1)].into_iter().collect();
        assert_eq!(fresh(&received, [a, b, b].iter()), vec![1]);
    }
}
