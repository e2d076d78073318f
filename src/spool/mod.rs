//! The queue directories of a base dir and the one atomic-write helper.
//!
//! A file is visible in a queue only when it is complete and durable: every
//! write goes to a hidden temp dir on the same file system, is fsynced, then
//! `rename(2)`d into place, and the queue directory is fsynced so the rename
//! itself survives a crash. Moves between queues are renames, so a message is
//! always in exactly one queue. The locks that keep a second daemon off a
//! base dir (and a second hub off a data dir) are in [`lock`].

mod entry;
mod lock;
mod staged;

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};

pub use entry::{read_entry, Entry};
pub use lock::{lock_pid_file, write_hub_file, DaemonLock};
pub use staged::Staged;

/// Hidden directory, inside the base dir, where files are written before the rename.
const TMP_DIR: &str = ".tmp";

/// The four message queues of a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    Outbox,
    Inbox,
    Sent,
    Failed,
}

impl Queue {
    pub const ALL: [Queue; 4] = [Queue::Outbox, Queue::Inbox, Queue::Sent, Queue::Failed];

    pub fn name(self) -> &'static str {
        match self {
            Queue::Outbox => "outbox",
            Queue::Inbox => "inbox",
            Queue::Sent => "sent",
            Queue::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Queue> {
        Queue::ALL.into_iter().find(|q| q.name() == s)
    }
}

impl std::fmt::Display for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The base dir of one machine: its queues, hooks and temp dir.
#[derive(Debug, Clone)]
pub struct Spool {
    base: PathBuf,
}

impl Spool {
    /// Opens `base`, creating it (mode 0700) and its queue directories if missing.
    pub fn open(base: &Path) -> Result<Spool> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(base)
            .with_context(|| format!("creating base dir {}", base.display()))?;
        warn_if_readable(base, "base dir");
        let spool = Spool {
            base: base.to_path_buf(),
        };
        for q in Queue::ALL {
            create_dir(&spool.dir(q))?;
        }
        create_dir(&spool.hooks_dir())?;
        create_dir(&spool.base.join(TMP_DIR))?;
        Ok(spool)
    }

    /// The spool of an existing base dir, without creating anything.
    pub fn open_existing(base: &Path) -> Option<Spool> {
        base.is_dir().then(|| Spool {
            base: base.to_path_buf(),
        })
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    pub fn dir(&self, q: Queue) -> PathBuf {
        self.base.join(q.name())
    }

    pub fn hooks_dir(&self) -> PathBuf {
        self.base.join("hooks")
    }

    pub fn path(&self, q: Queue, name: &str) -> PathBuf {
        self.dir(q).join(name)
    }

    /// Writes `bytes` as `q/name` atomically and durably; replaces an existing file.
    pub fn write(&self, q: Queue, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        let dest = self.path(q, name);
        let tmp = self.write_tmp(name, bytes)?;
        rename(&tmp, &dest)?;
        sync_dir(&self.dir(q))?;
        Ok(dest)
    }

    /// Writes several files into `q`: each is complete and durable before any
    /// becomes visible, they appear in the order given, and the directory is
    /// fsynced once for all of them.
    pub fn write_batch(&self, q: Queue, files: &[(String, Vec<u8>)]) -> Result<()> {
        // A failed batch leaves no temp file behind: a writer that retries
        // (a full disk) must not fill the temp dir meanwhile.
        let mut staged = Vec::with_capacity(files.len());
        if let Err(e) = self.write_synced(files, &|name| self.tmp_path(name), &mut staged) {
            staged.iter().for_each(|tmp| drop(fs::remove_file(tmp)));
            return Err(e);
        }
        for (i, (tmp, (name, _))) in staged.iter().zip(files).enumerate() {
            if let Err(e) = rename(tmp, &self.path(q, name)) {
                staged[i..]
                    .iter()
                    .for_each(|tmp| drop(fs::remove_file(tmp)));
                return Err(e);
            }
        }
        if !staged.is_empty() {
            sync_dir(&self.dir(q))?;
        }
        Ok(())
    }

    /// Moves each of `names` from `from/` to `to/` without waiting for the
    /// disk: only for archiving what needs no promise (sent/). After a crash
    /// a file may be back in `from/`; a sent file then goes to the hub again,
    /// which answers "duplicate" (and receivers' ledgers know its id), so
    /// nothing is doubled. Names already gone from `from/` are skipped;
    /// returns how many moved.
    pub fn archive_batch(&self, from: Queue, names: &[String], to: Queue) -> Result<usize> {
        let mut moved = 0;
        for name in names {
            match fs::rename(self.path(from, name), self.path(to, name)) {
                Ok(()) => moved += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("moving {from}/{name} to {to}/")),
            }
        }
        Ok(moved)
    }

    /// Moves `from/name` to `to/name` durably; returns the new path.
    pub fn move_to(&self, from: Queue, name: &str, to: Queue) -> Result<PathBuf> {
        let dest = self.path(to, name);
        rename(&self.path(from, name), &dest)?;
        sync_dir(&self.dir(to))?;
        sync_dir(&self.dir(from))?;
        Ok(dest)
    }

    /// Moves `from/name` to `failed/` with a sibling `<name>.error` saying when and why.
    pub fn fail(&self, from: Queue, name: &str, reason: &str) -> Result<PathBuf> {
        let note = format!("{}\n{}\n", jiff::Timestamp::now(), reason.trim_end());
        let tmp = self.write_tmp(&format!("{name}.error"), note.as_bytes())?;
        rename(&tmp, &self.path(Queue::Failed, &format!("{name}.error")))?;
        self.move_to(from, name, Queue::Failed)
    }

    /// Message files in `q` (`*.json`, not hidden), sorted by name, i.e. by time.
    pub fn list(&self, q: Queue) -> Result<Vec<String>> {
        let dir = self.dir(q);
        let mut names = Vec::new();
        let entries =
            fs::read_dir(&dir).with_context(|| format!("reading directory {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("reading directory {}", dir.display()))?;
            if let Some(name) = entry.file_name().to_str() {
                if is_message_file(name) {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    pub fn read(&self, q: Queue, name: &str) -> Result<Vec<u8>> {
        let path = self.path(q, name);
        fs::read(&path).with_context(|| format!("reading {}", path.display()))
    }

    /// Removes `q/name` and, in `failed/`, its `.error` sibling.
    pub fn remove(&self, q: Queue, name: &str) -> Result<()> {
        let path = self.path(q, name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
        if q == Queue::Failed {
            let _ = fs::remove_file(self.path(q, &format!("{name}.error")));
        }
        Ok(())
    }

    /// Removes the temp files a crash left in the hidden temp dir: those of
    /// processes no longer alive (a `mesync send` running now keeps its own).
    /// Call it holding the daemon lock. Blocking; returns how many went.
    pub fn remove_crash_leftovers(&self) -> usize {
        let dir = self.base.join(TMP_DIR);
        let Ok(entries) = fs::read_dir(&dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let writer = name
                .to_str()
                .and_then(|n| n.split('.').next()?.parse::<i32>().ok());
            if writer.is_some_and(lock::alive) {
                continue;
            }
            if fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, dir = %dir.display(), "removed temp files left by a crash");
        }
        removed
    }

    fn write_tmp(&self, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        create_or_clean(self.tmp_path(name), bytes)
    }

    /// A fresh name in the temp dir for a file to be called `name`.
    fn tmp_path(&self, name: &str) -> PathBuf {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        self.base
            .join(TMP_DIR)
            .join(format!("{}.{n}.{name}", std::process::id()))
    }

    /// Creates each file at `path_for(name)`, durably, pushing each path to
    /// `staged` in order. A small batch is written on the calling thread. A
    /// larger one is written in two steps on a few threads: every file is
    /// written and its write-back started, and only then is each fsynced.
    /// The first fsync's journal commit then carries most of the batch's
    /// files, and the fsyncs after it find their file already on disk.
    fn write_synced(
        &self,
        files: &[(String, Vec<u8>)],
        path_for: &(dyn Fn(&str) -> PathBuf + Sync),
        staged: &mut Vec<PathBuf>,
    ) -> Result<()> {
        let writers = (files.len() / FILES_PER_WRITER).clamp(1, MAX_WRITERS);
        if writers == 1 {
            for (name, bytes) in files {
                staged.push(create_or_clean(path_for(name), bytes)?);
            }
            return Ok(());
        }
        let chunk = files.len().div_ceil(writers);
        let written = std::sync::Barrier::new(files.chunks(chunk).len());
        let written = &written;
        let parts: Vec<Vec<Result<PathBuf>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = files
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        let open: Vec<_> = part
                            .iter()
                            .map(|(name, bytes)| {
                                let created = create_unsynced(path_for(name), bytes);
                                created.inspect(|(_, file)| start_writeback(file))
                            })
                            .collect();
                        written.wait();
                        open.into_iter()
                            .map(|r| r.and_then(sync_or_clean))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| match h.join() {
                    Ok(part) => part,
                    Err(_) => vec![Err(anyhow::anyhow!("a file writer thread panicked"))],
                })
                .collect()
        });
        let mut failed = None;
        for r in parts.into_iter().flatten() {
            match r {
                Ok(tmp) => staged.push(tmp),
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

/// Files per writer thread below which one thread stages a batch alone.
const FILES_PER_WRITER: usize = 64;
const MAX_WRITERS: usize = 4;

/// Creates `path` (which must not exist) holding `bytes`, fsynced, and
/// returns it open for appending. The caller fsyncs the directory when the
/// new name itself must survive a crash.
pub fn create_synced(path: &Path, bytes: &[u8]) -> Result<File> {
    let mut file = open_new(path)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(file)
}

/// Warns when a directory that already existed lets other local users in:
/// mesync creates its files 0600, but names (message ids, host ids) still
/// show, and files put there by hand or by older versions may be readable.
pub fn warn_if_readable(dir: &Path, what: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(dir) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                dir = %dir.display(),
                mode = format!("{mode:o}"),
                "the {what} is open to other local users; chmod 700 it"
            );
        }
    }
}

/// Creates `path` (which must not exist), open for appending.
fn open_new(path: &Path) -> Result<File> {
    // 0600 whatever the directory's mode: messages are for this user only.
    OpenOptions::new()
        .create_new(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// Creates `path` holding `bytes`, not yet durable: [`sync_or_clean`] makes
/// it so. A failure to write removes the file: a full disk must not fill a
/// directory with halves.
fn create_unsynced(path: PathBuf, bytes: &[u8]) -> Result<(PathBuf, File)> {
    let mut file = open_new(&path)?;
    if let Err(e) = file.write_all(bytes) {
        let _ = fs::remove_file(&path);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok((path, file))
}

/// fsyncs a file [`create_unsynced`] made; a failure removes it.
fn sync_or_clean((path, file): (PathBuf, File)) -> Result<PathBuf> {
    match file.sync_all() {
        Ok(()) => Ok(path),
        Err(e) => {
            let _ = fs::remove_file(&path);
            Err(e).with_context(|| format!("writing {}", path.display()))
        }
    }
}

/// Starts writing a file's dirty pages to disk without waiting (Linux's
/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`). Only a head start for the
/// fsync that follows, which alone makes the file durable; elsewhere, and
/// on any error, a no-op.
fn start_writeback(file: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain syscall on a file descriptor this function borrows.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

/// Creates `path` holding `bytes`, durably, or leaves nothing behind.
fn create_or_clean(path: PathBuf, bytes: &[u8]) -> Result<PathBuf> {
    create_unsynced(path, bytes).and_then(sync_or_clean)
}

/// Names mesync treats as messages: `*.json`, not hidden (foreign writers use
/// dot-files or other suffixes while a file is incomplete).
pub fn is_message_file(name: &str) -> bool {
    name.ends_with(".json") && !name.starts_with('.')
}

fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating directory {}", dir.display()))
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).with_context(|| format!("moving {} to {}", from.display(), to.display()))
}

/// fsync of a directory makes the entries created or removed in it durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

#[cfg(test)]
mod tests;
