//! The file store's files under `data_dir`: append-only JSON-lines segment
//! files (`segment-0000000001.jsonl`, ...; see `records.rs` for the lines)
//! and a lock file (`hub.lock`, holding the pid) so two hubs never share a dir.
//!
//! Promises: `append` returns only once the bytes are on disk (fdatasync), so
//! a record is durable before anyone is told it was accepted. Every start and
//! every roll begins a new segment with a header that states every cursor, so
//! an older segment is only needed for its messages: compaction rewrites it
//! to those still needed (a new file renamed over it, so a crash leaves the
//! old or the new one, never half) or deletes it. A torn last line of the
//! newest segment (a crash mid-write) is cut off with a warning; anywhere
//! else it is damage, and the hub does not start without `--repair`.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::manifest::Manifest;
use crate::spool::{create_synced, sync_dir};

/// A segment is closed and a new one begun past this size.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
const LOCK_FILE: &str = "hub.lock";
const PREFIX: &str = "segment-";
const SUFFIX: &str = ".jsonl";
const TEMP_SUFFIX: &str = ".tmp";

/// One segment file and what its messages span.
#[derive(Debug, Clone)]
pub struct Segment {
    pub id: u64,
    pub path: PathBuf,
    /// Newest acceptance time of a message in it (Unix ms; `i64::MIN` if none).
    pub newest_ms: i64,
    /// Sequence numbers of its first and last message (0, 0 if none).
    pub first_seq: u64,
    pub last_seq: u64,
    pub bytes: u64,
    /// Rewritten by compaction (its first line says so).
    pub compacted: bool,
}

impl Segment {
    fn new(id: u64, path: PathBuf) -> Segment {
        Segment {
            id,
            path,
            newest_ms: i64::MIN,
            first_seq: 0,
            last_seq: 0,
            bytes: 0,
            compacted: false,
        }
    }

    /// Notes a message stored in it.
    pub fn holds(&mut self, seq: u64, t: i64) {
        if self.first_seq == 0 {
            self.first_seq = seq;
        }
        self.last_seq = self.last_seq.max(seq);
        self.newest_ms = self.newest_ms.max(t);
    }
}

pub struct Segments {
    dir: PathBuf,
    _lock: File,
    /// Closed segments, oldest first.
    closed: VecDeque<Segment>,
    active: Segment,
    file: File,
    /// What `store.json` says; saved whenever the list of segments changes.
    manifest: Manifest,
}

impl Segments {
    /// Locks `dir` (creating it) and removes temp files a crash left. The
    /// segments found are `closed`; `begin` starts writing.
    pub fn lock(dir: &Path) -> Result<(File, Vec<(u64, PathBuf)>)> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating hub data dir {}", dir.display()))?;
        crate::spool::warn_if_readable(dir, "hub data dir");
        let lock = crate::spool::lock_pid_file(&dir.join(LOCK_FILE), |pid| {
            format!(
                "another mesync hub (pid {pid}) already uses data dir {}",
                dir.display()
            )
        })?;
        let mut found = Vec::new();
        let entries = fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(TEMP_SUFFIX) {
                tracing::info!(file = %entry.path().display(), "removing a temp file left by a crash");
                fs::remove_file(entry.path())
                    .with_context(|| format!("removing {}", entry.path().display()))?;
                continue;
            }
            if let Some(id) = segment_id(name) {
                found.push((id, entry.path()));
            }
        }
        found.sort();
        Ok((lock, found))
    }

    /// Begins a new active segment after `closed`, starting with `header`,
    /// and lists them all in the manifest.
    pub fn begin(
        dir: &Path,
        lock: File,
        closed: Vec<Segment>,
        header: &[u8],
        mut manifest: Manifest,
    ) -> Result<Segments> {
        let next = closed.last().map_or(1, |s| s.id + 1);
        let (active, file) = create_segment(dir, next, header)?;
        manifest.segments = closed.iter().map(|s| s.id).chain([active.id]).collect();
        manifest.save(dir)?;
        Ok(Segments {
            dir: dir.to_path_buf(),
            _lock: lock,
            closed: closed.into(),
            active,
            file,
            manifest,
        })
    }

    /// Keeps the manifest's high-water mark above `next_seq` (see `manifest.rs`).
    pub fn reserve(&mut self, next_seq: u64) -> Result<()> {
        self.manifest.reserve(&self.dir, next_seq).map(drop)
    }

    /// At a clean stop, with every record durable: the mark becomes exactly
    /// `next_seq`, so a restart does not skip the reserve.
    pub fn settle(&mut self, next_seq: u64) -> Result<()> {
        self.manifest.seq_reserved = next_seq;
        self.manifest.save(&self.dir)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn active(&self) -> &Segment {
        &self.active
    }

    pub fn active_mut(&mut self) -> &mut Segment {
        &mut self.active
    }

    /// Appends whole lines and waits until they are on disk.
    pub fn append(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let written = self
            .file
            .write_all(buf)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Leave no half group behind; the callers report the failure and
            // the clients retry (the dedupe window absorbs any repeat).
            let _ = self.file.set_len(self.active.bytes);
            return Err(e);
        }
        self.active.bytes += buf.len() as u64;
        Ok(())
    }

    /// Whether the active segment should be closed, also so that offsets
    /// within it always fit 32 bits with `more` bytes added.
    pub fn is_full(&self, more: usize) -> bool {
        self.active.bytes >= SEGMENT_BYTES || self.active.bytes + more as u64 > u32::MAX as u64
    }

    /// Closes the active segment and begins the next with `header`.
    pub fn roll(&mut self, header: &[u8]) -> Result<()> {
        let (active, file) = create_segment(&self.dir, self.active.id + 1, header)?;
        let old = std::mem::replace(&mut self.active, active);
        self.file = file;
        tracing::info!(segment = %old.path.display(), "segment closed");
        self.closed.push_back(old);
        self.manifest.segments.push(self.active.id);
        // Unlisted, the new segment is still replayed; only the check that
        // it is not lost waits for the next successful save.
        if let Err(e) = self.manifest.save(&self.dir) {
            tracing::warn!(error = %format!("{e:#}"), "cannot list the new segment in store.json yet");
        }
        Ok(())
    }

    pub fn closed(&self) -> impl Iterator<Item = &Segment> {
        self.closed.iter()
    }

    /// Writes what is to replace closed segment `id` beside it (fsynced);
    /// `None` when `content` is empty, i.e. the segment is to go.
    pub fn stage(&self, id: u64, content: &[u8]) -> Result<Option<PathBuf>> {
        if content.is_empty() {
            return Ok(None);
        }
        let path = segment_path(&self.dir, id);
        let tmp = temp_path(&path);
        drop(create_synced(&tmp, content)?);
        Ok(Some(tmp))
    }

    /// Puts a staged file in place of closed segment `id` (or deletes the
    /// segment). Cheap, so callers can hold a lock around it; `sync` makes
    /// it durable (until then a crash leaves the old file, which is as good).
    pub fn swap(&mut self, id: u64, staged: Option<PathBuf>) -> Result<()> {
        let Some(i) = self.closed.iter().position(|s| s.id == id) else {
            return Ok(());
        };
        let path = self.closed[i].path.clone();
        let Some(tmp) = staged else {
            // Unlisted first: a crash between the two leaves an unlisted
            // file, never a listed one missing.
            let mut manifest = self.manifest.clone();
            manifest.segments.retain(|s| *s != id);
            manifest.save(&self.dir)?;
            self.manifest = manifest;
            fs::remove_file(&path).with_context(|| format!("deleting {}", path.display()))?;
            self.closed.remove(i);
            tracing::info!(segment = %path.display(), "segment deleted: nothing in it is needed any more");
            return Ok(());
        };
        fs::rename(&tmp, &path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        let seg = &mut self.closed[i];
        seg.bytes = fs::metadata(&path).map_or(0, |m| m.len());
        seg.compacted = true;
        tracing::info!(segment = %path.display(), bytes = seg.bytes, "segment compacted to the messages still needed");
        Ok(())
    }

    pub fn sync(&self) -> Result<()> {
        sync_dir(&self.dir)
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(TEMP_SUFFIX);
    PathBuf::from(tmp)
}

/// Writes `content` beside `path` and renames it over `path`.
pub fn replace_file(path: &Path, content: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    drop(create_synced(&tmp, content)?);
    fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

fn segment_id(name: &str) -> Option<u64> {
    name.strip_prefix(PREFIX)?
        .strip_suffix(SUFFIX)?
        .parse()
        .ok()
}

pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{id:010}{SUFFIX}"))
}

fn create_segment(dir: &Path, id: u64, header: &[u8]) -> Result<(Segment, File)> {
    let path = segment_path(dir, id);
    // A file by this name can only be what an earlier attempt left when the
    // disk was full: no segment after the active one holds anything.
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => {}
    }
    let file = match create_synced(&path, header) {
        Ok(f) => f,
        Err(e) => {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
    };
    // The new name must survive a crash as well as its contents.
    sync_dir(dir)?;
    let mut seg = Segment::new(id, path);
    seg.bytes = header.len() as u64;
    Ok((seg, file))
}

/// A segment file read whole: its bytes and where each line is.
pub struct SegmentLines {
    pub seg: Segment,
    bytes: Vec<u8>,
    /// Offset and length (without the newline) of each line.
    pub lines: Vec<(u32, u32)>,
}

impl SegmentLines {
    /// The lines with their offsets and lengths.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], u32, u32)> {
        self.lines
            .iter()
            .map(|&(off, len)| (&self.bytes[off as usize..(off + len) as usize], off, len))
    }
}

/// The lines of one segment, with their byte offsets. A torn last line is
/// cut off when `may_cut` (the newest segment: only ever the tail of a
/// crash, never acknowledged); in any other segment it means damage, and
/// the error names the file, unless `may_cut` is forced by a repair.
pub fn read_lines(id: u64, path: &Path, may_cut: bool) -> Result<SegmentLines> {
    let mut bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let Some(end) = bytes[offset..].iter().position(|b| *b == b'\n') else {
            if !may_cut {
                anyhow::bail!(
                    "{} ends in an incomplete line although it is not the newest segment: the file was damaged; restore it, or start the hub with `--repair` (`mesync serve --repair`, or `mesync start --with-hub --repair`) to cut the line off",
                    path.display()
                );
            }
            tracing::warn!(file = %path.display(), line = lines.len() + 1, bytes = bytes.len() - offset,
                content = %String::from_utf8_lossy(&bytes[offset..]),
                "cutting off an incomplete last line");
            truncate(path, offset as u64)?;
            bytes.truncate(offset);
            break;
        };
        lines.push((offset as u32, end as u32));
        offset += end + 1;
    }
    let mut seg = Segment::new(id, path.to_path_buf());
    seg.bytes = bytes.len() as u64;
    Ok(SegmentLines { seg, bytes, lines })
}

fn truncate(path: &Path, len: u64) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(len).and_then(|()| f.sync_all()))
        .with_context(|| format!("truncating {}", path.display()))
}

/// Reads the lines at `locs` (segment id, offset, length), in order; a line
/// that cannot be read is `None` (its segment was compacted meanwhile).
pub fn read_at(dir: &Path, locs: &[(u64, u32, u32)]) -> Vec<Option<Vec<u8>>> {
    let mut open: Option<(u64, File)> = None;
    locs.iter()
        .map(|&(seg, off, len)| {
            if open.as_ref().map(|(id, _)| *id) != Some(seg) {
                open = File::open(segment_path(dir, seg)).ok().map(|f| (seg, f));
            }
            let (_, file) = open.as_ref()?;
            let mut line = vec![0; len as usize];
            file.read_exact_at(&mut line, u64::from(off)).ok()?;
            Some(line)
        })
        .collect()
}

#[cfg(test)]
#[path = "segments_tests.rs"]
mod tests;
