//! The hub's files under `data_dir`: append-only JSON-lines segment files
//! (`segment-0000000001.jsonl`, ...; see `records.rs` for the lines) and a
//! lock file (`hub.lock`, holding the pid) so two hubs never share a dir.
//!
//! Promises: `append` returns only once the bytes are on disk (fdatasync), so
//! a record is durable before anyone is told it was accepted. A start-up
//! replays every segment in order; a torn last line (a crash mid-write) is
//! cut off with a warning. Every start and every roll begins a new segment
//! with a header of all hosts, so older segments are only needed for their
//! messages and can be deleted oldest first once nothing in them matters.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::records::{self, Record};
use crate::spool::{create_synced, sync_dir};

/// A segment is closed and a new one begun past this size.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
const LOCK_FILE: &str = "hub.lock";
const PREFIX: &str = "segment-";
const SUFFIX: &str = ".jsonl";

/// One segment file and the newest acceptance time of a message in it.
#[derive(Debug)]
pub struct Segment {
    pub id: u64,
    pub path: PathBuf,
    /// Unix ms; `i64::MIN` when it holds no message.
    pub newest_ms: i64,
}

pub struct Store {
    dir: PathBuf,
    _lock: File,
    /// Closed segments, oldest first.
    closed: VecDeque<Segment>,
    active: Segment,
    file: File,
    len: u64,
}

impl Store {
    /// Locks `dir`, feeds every record of every segment to `apply` (with the
    /// segment id), then begins a new segment whose first lines are `header()`.
    pub fn open(
        dir: &Path,
        mut apply: impl FnMut(Record<'_>, u64),
        header: impl FnOnce() -> Vec<u8>,
    ) -> Result<Store> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating hub data dir {}", dir.display()))?;
        let lock = lock(dir)?;
        let mut closed = VecDeque::new();
        for (id, path) in list_segments(dir)? {
            let newest_ms = replay_file(&path, |rec| apply(rec, id))?;
            closed.push_back(Segment {
                id,
                path,
                newest_ms,
            });
        }
        let next = closed.back().map_or(1, |s| s.id + 1);
        let (active, file, len) = create_segment(dir, next, &header())?;
        Ok(Store {
            dir: dir.to_path_buf(),
            _lock: lock,
            closed,
            active,
            file,
            len,
        })
    }

    /// Appends whole lines and waits until they are on disk. `newest_ms` is
    /// the newest acceptance time among the messages in `buf`.
    pub fn append(&mut self, buf: &[u8], newest_ms: i64) -> std::io::Result<()> {
        let written = self
            .file
            .write_all(buf)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Leave no half group behind; the callers report the failure and
            // the clients retry (the dedupe window absorbs any repeat).
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += buf.len() as u64;
        self.active.newest_ms = self.active.newest_ms.max(newest_ms);
        Ok(())
    }

    pub fn active_id(&self) -> u64 {
        self.active.id
    }

    pub fn is_full(&self) -> bool {
        self.len >= SEGMENT_BYTES
    }

    /// Closes the active segment and begins the next with `header`.
    pub fn roll(&mut self, header: &[u8]) -> Result<()> {
        let (active, file, len) = create_segment(&self.dir, self.active.id + 1, header)?;
        let old = std::mem::replace(&mut self.active, active);
        self.file = file;
        self.len = len;
        tracing::info!(segment = %old.path.display(), "segment closed");
        self.closed.push_back(old);
        Ok(())
    }

    pub fn oldest_closed(&self) -> Option<&Segment> {
        self.closed.front()
    }

    /// Deletes the oldest closed segment. Only ever the oldest: an ack in a
    /// later segment may refer to a message in an earlier one.
    pub fn delete_oldest(&mut self) -> Result<()> {
        let Some(seg) = self.closed.pop_front() else {
            return Ok(());
        };
        fs::remove_file(&seg.path).with_context(|| format!("deleting {}", seg.path.display()))?;
        sync_dir(&self.dir)?;
        tracing::info!(segment = %seg.path.display(), "segment deleted: nothing in it is needed any more");
        Ok(())
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{id:010}{SUFFIX}"))
}

/// Segment files in `dir`, oldest first.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    let entries = fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let id = name
            .strip_prefix(PREFIX)
            .and_then(|s| s.strip_suffix(SUFFIX))
            .and_then(|s| s.parse::<u64>().ok());
        if let Some(id) = id {
            found.push((id, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

fn create_segment(dir: &Path, id: u64, header: &[u8]) -> Result<(Segment, File, u64)> {
    let path = segment_path(dir, id);
    let file = create_synced(&path, header)?;
    // The new name must survive a crash as well as its contents.
    sync_dir(dir)?;
    let seg = Segment {
        id,
        path,
        newest_ms: i64::MIN,
    };
    Ok((seg, file, header.len() as u64))
}

/// Feeds each record of one segment to `apply`; returns the newest message
/// time in it. Cuts off a torn last line; skips (and reports) a bad line.
fn replay_file(path: &Path, mut apply: impl FnMut(Record<'_>)) -> Result<i64> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut newest = i64::MIN;
    let mut offset = 0;
    let mut number = 0;
    while offset < bytes.len() {
        number += 1;
        let Some(end) = bytes[offset..].iter().position(|b| *b == b'\n') else {
            tracing::warn!(file = %path.display(), line = number, bytes = bytes.len() - offset,
                "cutting off an incomplete last line (the hub stopped mid-write; it was never acknowledged)");
            truncate(path, offset as u64)?;
            break;
        };
        let line = &bytes[offset..offset + end];
        offset += end + 1;
        if line.is_empty() {
            continue;
        }
        match records::decode(line) {
            Ok(rec) => {
                if let Record::Msg { accepted_ms, .. } = &rec {
                    newest = newest.max(*accepted_ms);
                }
                apply(rec);
            }
            Err(e) => tracing::warn!(file = %path.display(), line = number, error = %e,
                "skipping a line that is not a hub record"),
        }
    }
    Ok(newest)
}

fn truncate(path: &Path, len: u64) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(len).and_then(|()| f.sync_all()))
        .with_context(|| format!("truncating {}", path.display()))
}

/// Takes the data dir's lock, or says which process holds it.
fn lock(dir: &Path) -> Result<File> {
    crate::spool::lock_pid_file(&dir.join(LOCK_FILE), |pid| {
        format!(
            "another mesync hub (pid {pid}) already uses data dir {}",
            dir.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_last_line_is_cut_and_the_rest_replayed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("hub");
        let mut seen = 0;
        let store = Store::open(
            &dir,
            |_, _| seen += 1,
            || b"{\"op\":\"host\",\"host\":\"a\",\"registered_at\":null,\"last_seq\":1}\n".to_vec(),
        )
        .unwrap();
        drop(store);
        let path = segment_path(&dir, 1);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"op\":\"drop\",\"ho").unwrap();
        let full = fs::metadata(&path).unwrap().len();
        let mut seen = 0;
        let store = Store::open(&dir, |_, _| seen += 1, Vec::new).unwrap();
        drop(store);
        assert_eq!(seen, 1);
        assert!(fs::metadata(&path).unwrap().len() < full);
        assert!(segment_path(&dir, 2).exists());
    }

    #[test]
    fn second_open_of_a_dir_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let _first = Store::open(tmp.path(), |_, _| {}, Vec::new).unwrap();
        let err = Store::open(tmp.path(), |_, _| {}, Vec::new).err().unwrap();
        assert!(err.to_string().contains("another mesync hub"), "{err}");
    }

    #[test]
    fn roll_and_delete_oldest_keep_segments_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = Store::open(tmp.path(), |_, _| {}, Vec::new).unwrap();
        store
            .append(b"{\"op\":\"drop\",\"host\":\"a\",\"last_seq\":1}\n", 5)
            .unwrap();
        store.roll(b"").unwrap();
        assert_eq!(store.active_id(), 2);
        let oldest = store.oldest_closed().unwrap();
        assert_eq!((oldest.id, oldest.newest_ms), (1, 5));
        store.delete_oldest().unwrap();
        assert!(store.oldest_closed().is_none());
        assert!(!segment_path(tmp.path(), 1).exists());
        drop(store);
        let mut ids = Vec::new();
        let store = Store::open(tmp.path(), |_, id| ids.push(id), Vec::new).unwrap();
        assert!(ids.is_empty());
        assert_eq!(store.active_id(), 3);
    }
}
