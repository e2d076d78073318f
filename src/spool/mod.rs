//! The queue directories of a base dir and the one atomic-write helper.
//!
//! A file is visible in a queue only when it is complete and durable: every
//! write goes to a hidden temp dir on the same file system, is fsynced, then
//! `rename(2)`d into place, and the queue directory is fsynced so the rename
//! itself survives a crash. Moves between queues are renames, so a message is
//! always in exactly one queue. The locks that keep a second daemon off a
//! base dir (and a second hub off a data dir) are in [`lock`].

mod lock;

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};

pub use lock::{lock_pid_file, write_hub_file, DaemonLock};

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
    /// fsynced once for all of them. Each file still needs its own fsync;
    /// fsyncs issued together share the file system's journal commits, so a
    /// large batch stages its temp files on a few threads.
    pub fn write_batch(&self, q: Queue, files: &[(String, Vec<u8>)]) -> Result<()> {
        let writers = (files.len() / FILES_PER_WRITER).clamp(1, MAX_WRITERS);
        let chunk = files.len().div_ceil(writers).max(1);
        let results: Vec<Result<PathBuf>> = std::thread::scope(|scope| {
            let handles: Vec<_> = files
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|(name, bytes)| self.write_tmp(name, bytes))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| match h.join() {
                    Ok(part) => part,
                    Err(_) => vec![Err(anyhow::anyhow!("a file writer thread panicked"))],
                })
                .collect()
        });
        // A failed batch leaves no temp file behind: a writer that retries
        // (a full disk) must not fill the temp dir meanwhile.
        let mut staged = Vec::with_capacity(files.len());
        let mut failed = None;
        for r in results {
            match r {
                Ok(tmp) => staged.push(tmp),
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        if let Some(e) = failed {
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

    /// Moves each of `names` from `from/` to `to/`, then fsyncs both
    /// directories once. Names already gone from `from/` are skipped; returns
    /// how many moved.
    pub fn move_batch(&self, from: Queue, names: &[String], to: Queue) -> Result<usize> {
        let mut moved = 0;
        for name in names {
            match fs::rename(self.path(from, name), self.path(to, name)) {
                Ok(()) => moved += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("moving {from}/{name} to {to}/")),
            }
        }
        if moved > 0 {
            sync_dir(&self.dir(to))?;
            sync_dir(&self.dir(from))?;
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

    fn write_tmp(&self, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .base
            .join(TMP_DIR)
            .join(format!("{}.{n}.{name}", std::process::id()));
        create_synced(&tmp, bytes)?;
        Ok(tmp)
    }
}

/// Files per writer thread below which one thread stages a batch alone.
const FILES_PER_WRITER: usize = 64;
const MAX_WRITERS: usize = 4;

/// Creates `path` (which must not exist) holding `bytes`, fsynced, and
/// returns it open for appending. The caller fsyncs the directory when the
/// new name itself must survive a crash.
pub fn create_synced(path: &Path, bytes: &[u8]) -> Result<File> {
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(file)
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
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn open_creates_base_0700_and_queues() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("base");
        let spool = Spool::open(&base).unwrap();
        let mode = fs::metadata(&base).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        for q in Queue::ALL {
            assert!(spool.dir(q).is_dir());
        }
        assert!(spool.hooks_dir().is_dir());
    }

    #[test]
    fn write_leaves_no_temp_file_and_list_skips_hidden() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        spool.write(Queue::Outbox, "b.json", b"{}").unwrap();
        spool.write(Queue::Outbox, "a.json", b"{}").unwrap();
        fs::write(spool.path(Queue::Outbox, ".c.json"), b"{").unwrap();
        fs::write(spool.path(Queue::Outbox, "d.json.tmp"), b"{").unwrap();
        assert_eq!(spool.list(Queue::Outbox).unwrap(), vec!["a.json", "b.json"]);
        assert_eq!(fs::read_dir(tmp.path().join(TMP_DIR)).unwrap().count(), 0);
    }

    #[test]
    fn fail_writes_error_sibling_and_remove_drops_it() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        spool.write(Queue::Outbox, "a.json", b"x").unwrap();
        spool.fail(Queue::Outbox, "a.json", "type: bad").unwrap();
        assert!(spool.list(Queue::Outbox).unwrap().is_empty());
        let err = fs::read_to_string(spool.path(Queue::Failed, "a.json.error")).unwrap();
        assert!(err.contains("type: bad"));
        spool.remove(Queue::Failed, "a.json").unwrap();
        assert_eq!(fs::read_dir(spool.dir(Queue::Failed)).unwrap().count(), 0);
    }

    #[test]
    fn a_failed_write_batch_leaves_no_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        fs::remove_dir(spool.dir(Queue::Inbox)).unwrap();
        let files: Vec<_> = (0..3).map(|i| (format!("{i}.json"), vec![b'1'])).collect();
        assert!(spool.write_batch(Queue::Inbox, &files).is_err());
        assert_eq!(fs::read_dir(tmp.path().join(TMP_DIR)).unwrap().count(), 0);
    }

    #[test]
    fn write_batch_makes_all_files_visible() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        let files: Vec<_> = (0..5).map(|i| (format!("{i}.json"), vec![b'1'])).collect();
        spool.write_batch(Queue::Inbox, &files).unwrap();
        assert_eq!(spool.list(Queue::Inbox).unwrap().len(), 5);
        let many: Vec<_> = (0..300)
            .map(|i| (format!("m{i:03}.json"), vec![b'2']))
            .collect();
        spool.write_batch(Queue::Inbox, &many).unwrap();
        assert_eq!(spool.list(Queue::Inbox).unwrap().len(), 305);
        assert_eq!(fs::read_dir(tmp.path().join(TMP_DIR)).unwrap().count(), 0);
        let names: Vec<String> = many.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(
            spool.move_batch(Queue::Inbox, &names, Queue::Sent).unwrap(),
            300
        );
        assert_eq!(spool.list(Queue::Sent).unwrap().len(), 300);
    }
}
