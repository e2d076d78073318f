//! Hooks owed: a received message whose hook has not started yet is recorded
//! as a hard link to its inbox file in `<base>/.hooks-pending/`, so a hook that
//! was still queued when the daemon stopped or crashed runs after the restart.
//!
//! The link is made to the staged file before the ledger entry (the commit;
//! see [`crate::spool::Staged`]), and removed by the hook's own process just
//! before it executes the hook, so a queued hook is never forgotten and a
//! started one is not started again. A link costs no data write, and the directory is fsynced once
//! per batch; it also keeps the message readable for the hook if a program
//! consumed the inbox file first.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::message::Message;
use crate::spool::{sync_dir, Queue, Spool};

const DIR: &str = ".hooks-pending";

fn dir(spool: &Spool) -> PathBuf {
    spool.base().join(DIR)
}

/// The durable mark that one hook is owed.
#[derive(Debug)]
pub struct Mark(PathBuf);

impl Mark {
    /// The mark's path for a C call (`None` if it holds a NUL byte).
    pub fn c_path(&self) -> Option<std::ffi::CString> {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::CString::new(self.0.as_os_str().as_bytes()).ok()
    }

    /// Forgets the mark: its hook is starting (or can no longer run).
    /// Blocks on the disk.
    pub fn clear(self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("cannot remove {}: {e}", self.0.display());
            }
        }
    }
}

/// A hook owed from before this start: the message it is for and its mark.
#[derive(Debug)]
pub struct Owed {
    pub message: Message,
    pub json: Vec<u8>,
    /// The message's file in inbox/ (it may have been consumed since).
    pub inbox_file: PathBuf,
    pub mark: Mark,
}

/// Records that the staged files `files` (path, inbox name) still owe their
/// hooks a run: one mark per file. Blocking.
pub fn record(spool: &Spool, files: &[(&Path, &str)]) -> Result<Vec<Mark>> {
    let pending = dir(spool);
    std::fs::create_dir_all(&pending).with_context(|| format!("creating {}", pending.display()))?;
    let mut marks = Vec::with_capacity(files.len());
    for (source, name) in files {
        let mark = pending.join(name);
        // A mark left by an attempt that failed before its commit is replaced.
        let _ = std::fs::remove_file(&mark);
        std::fs::hard_link(source, &mark).with_context(|| format!("linking {}", mark.display()))?;
        marks.push(Mark(mark));
    }
    if !marks.is_empty() {
        sync_dir(&pending)?;
    }
    Ok(marks)
}

/// The hooks still owed from before this start, oldest first. Blocking.
pub fn owed(spool: &Spool) -> Vec<Owed> {
    let pending = dir(spool);
    let Ok(entries) = std::fs::read_dir(&pending) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    let inbox = inbox_dir(spool);
    let mut owed = Vec::new();
    for name in names {
        let mark = Mark(pending.join(&name));
        let parsed = std::fs::read(&mark.0)
            .ok()
            .and_then(|json| Message::parse(&json).ok().map(|m| (m, json)));
        let Some((message, json)) = parsed else {
            tracing::warn!("dropping unreadable pending hook {}", mark.0.display());
            mark.clear();
            continue;
        };
        owed.push(Owed {
            message,
            json,
            inbox_file: inbox.join(&name),
            mark,
        });
    }
    owed
}

/// inbox/ as an absolute path, as hooks are told where their file is.
pub fn inbox_dir(spool: &Spool) -> PathBuf {
    let dir = spool.dir(Queue::Inbox);
    std::path::absolute(&dir).unwrap_or(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_hooks_are_owed_until_cleared() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        let m = Message::new(
            "job.done",
            "m1",
            None,
            Default::default(),
            serde_json::json!({}),
        )
        .unwrap();
        let name = m.file_name();
        spool
            .write(Queue::Inbox, &name, &m.to_json_bytes())
            .unwrap();

        let file = spool.path(Queue::Inbox, &name);
        let marks = record(&spool, &[(file.as_path(), name.as_str())]).unwrap();
        assert_eq!(marks.len(), 1);
        // The consumer deletes the inbox file; the hook is still owed, with its message.
        std::fs::remove_file(spool.path(Queue::Inbox, &name)).unwrap();
        let jobs = owed(&spool);
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].message.id, m.id);
        assert_eq!(jobs[0].inbox_file, inbox_dir(&spool).join(&name));
        jobs.into_iter().for_each(|j| j.mark.clear());
        assert!(owed(&spool).is_empty());
    }
}
