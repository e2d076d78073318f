//! The locks of a base dir and a hub data dir: an exclusive `flock(2)` on a
//! file holding the owner's pid. The lock dies with its process, so a crash
//! never leaves a stale one, and the pid tells a second instance who holds it.
//!
//! Beside the lock, a running daemon names the hub it talks to (`daemon.hub`,
//! one URL), so that `mesync status`, `hosts` and `watch` in another shell
//! find the same hub, also one whose port was chosen at start. The file is
//! believed only while the lock is held, and removed with it.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::Spool;

const LOCK_FILE: &str = "daemon.lock";
const HUB_FILE: &str = "daemon.hub";

impl Spool {
    /// Takes the daemon lock of this base dir, or explains who holds it.
    pub fn lock_daemon(&self) -> Result<DaemonLock> {
        let file = lock_pid_file(&self.base.join(LOCK_FILE), |pid| {
            format!(
                "another mesync daemon (pid {pid}) already uses base dir {}",
                self.base.display()
            )
        })?;
        Ok(DaemonLock {
            _file: file,
            hub_file: self.daemon_hub_file(),
        })
    }

    /// The hub URL of the daemon holding this base dir, if one runs and said.
    pub fn daemon_hub(&self) -> Option<String> {
        self.daemon_holder()?;
        let text = fs::read_to_string(self.daemon_hub_file()).ok()?;
        let url = text.trim();
        (!url.is_empty()).then(|| url.to_string())
    }

    /// Where a running daemon names its hub.
    pub fn daemon_hub_file(&self) -> PathBuf {
        self.base.join(HUB_FILE)
    }

    /// The pid written by the daemon that holds this base dir, if one does.
    pub fn daemon_holder(&self) -> Option<String> {
        let path = self.base.join(LOCK_FILE);
        let file = File::open(&path).ok()?;
        if try_flock(&file) {
            // Nobody held it; dropping `file` releases our probe lock.
            return None;
        }
        Some(
            fs::read_to_string(&path)
                .unwrap_or_default()
                .trim()
                .to_string(),
        )
    }
}

/// Held while a daemon runs; released when dropped or when the process dies.
#[derive(Debug)]
pub struct DaemonLock {
    _file: File,
    hub_file: PathBuf,
}

impl DaemonLock {
    /// Records `url` as the hub this daemon talks to (read by [`Spool::daemon_hub`]).
    /// Written to a temp name and renamed, so a reader sees a whole URL.
    pub fn announce_hub(&self, url: &str) -> Result<()> {
        write_hub_file(&self.hub_file, url)
    }

    /// Where [`DaemonLock::announce_hub`] writes.
    pub fn hub_file(&self) -> &Path {
        &self.hub_file
    }
}

/// Writes the hub file whole: to a temp name, then renamed.
pub fn write_hub_file(path: &Path, url: &str) -> Result<()> {
    let tmp = path.with_extension("hub.tmp");
    fs::write(&tmp, format!("{url}\n"))
        .and_then(|()| fs::rename(&tmp, path))
        .with_context(|| format!("writing {}", path.display()))
}

impl Drop for DaemonLock {
    fn drop(&mut self) {
        // Before the lock goes (the file closes after this), so no reader
        // sees the old URL next to a new daemon's lock.
        let _ = fs::remove_file(&self.hub_file);
    }
}

/// Takes an exclusive `flock(2)` on `path` and writes this process's pid into
/// it. The lock dies with the process, so a crash never leaves a stale lock.
/// When another process holds it, the error is `held(<its pid>)`.
pub fn lock_pid_file(path: &Path, held: impl FnOnce(&str) -> String) -> Result<File> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    if !flock_unless_alive(&file, path) {
        let holder = fs::read_to_string(path).unwrap_or_default();
        anyhow::bail!(held(holder.trim()));
    }
    file.set_len(0)
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(file)
}

/// How long a lock whose holder is dead may still take to be released: the
/// kernel closes a killed process's files a few ms after it is reaped.
const DEAD_HOLDER_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Takes the lock; while it is held by a process that no longer exists (a
/// restart right after `kill -9`), tries again for a short bounded time.
fn flock_unless_alive(file: &File, path: &Path) -> bool {
    let until = std::time::Instant::now() + DEAD_HOLDER_GRACE;
    loop {
        if try_flock(file) {
            return true;
        }
        let holder = fs::read_to_string(path).unwrap_or_default();
        let dead = holder.trim().parse::<i32>().is_ok_and(|pid| !alive(pid));
        if !dead || std::time::Instant::now() >= until {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Whether a process `pid` exists (a zombie counts as gone).
pub(super) fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    // A zombie (killed, not yet reaped) holds no files any more soon.
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    !matches!(state, Some('Z' | 'X'))
}

fn try_flock(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: the fd is valid for the lifetime of `file`.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_lock_is_exclusive() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        assert_eq!(spool.daemon_holder(), None);
        let lock = spool.lock_daemon().unwrap();
        let err = spool.lock_daemon().unwrap_err().to_string();
        assert!(err.contains("another mesync daemon"), "{err}");
        assert_eq!(spool.daemon_holder(), Some(std::process::id().to_string()));
        assert_eq!(spool.daemon_hub(), None);
        lock.announce_hub("http://127.0.0.1:9").unwrap();
        assert_eq!(spool.daemon_hub().as_deref(), Some("http://127.0.0.1:9"));
        drop(lock);
        assert_eq!(spool.daemon_holder(), None);
        assert_eq!(spool.daemon_hub(), None);
        assert!(!tmp.path().join(HUB_FILE).exists());
    }

    #[test]
    fn a_lock_whose_holder_died_is_taken_once_released() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.lock");
        let held = lock_pid_file(&path, |pid| pid.to_string()).unwrap();
        // The holder's pid names no process (above any pid_max), as after
        // kill -9 while the kernel has not closed its files yet. No child is
        // spawned here: a fork would share the lock of the other test.
        fs::write(&path, "2147483646\n").unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            drop(held);
        });
        let file = lock_pid_file(&path, |pid| format!("held by {pid}"));
        release.join().unwrap();
        assert!(file.is_ok(), "{:?}", file.err());
        assert_eq!(
            fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
    }
}
