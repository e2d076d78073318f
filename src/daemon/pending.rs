//! Hooks owed: a received message whose hook has not started yet is recorded
//! as a hard link to its inbox file in `<base>/.hooks-pending/`, so a hook that
//! was still queued when the daemon stopped or crashed runs after the restart.
//!
//! The link is made once the message is in the ledger and removed just before
//! its hook starts, so each hook runs at most once and a queued one is not
//! forgotten. A link costs no data write, and the directory is fsynced once
//! per batch; it also keeps the message readable for the hook if a program
//! consumed the inbox file first.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::hooks::{self, HookJob};
use crate::message::Message;
use crate::spool::{sync_dir, Queue, Spool};

const DIR: &str = ".hooks-pending";

fn dir(spool: &Spool) -> PathBuf {
    spool.base().join(DIR)
}

/// Records that the inbox files `names` still owe their hooks a run.
pub fn record(spool: &Spool, names: &[&str]) -> Result<Vec<Option<PathBuf>>> {
    let pending = dir(spool);
    std::fs::create_dir_all(&pending).with_context(|| format!("creating {}", pending.display()))?;
    let mut marks = Vec::with_capacity(names.len());
    for name in names {
        let mark = pending.join(name);
        let linked = match std::fs::hard_link(spool.path(Queue::Inbox, name), &mark) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => true,
            // Consumed already (the hook still runs now, from memory).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(e).with_context(|| format!("linking {}", mark.display())),
        };
        marks.push(linked.then_some(mark));
    }
    if marks.iter().any(Option::is_some) {
        sync_dir(&pending)?;
    }
    Ok(marks)
}

/// Forgets a mark: its hook is starting (or can no longer run).
pub fn clear(mark: &Path) {
    if let Err(e) = std::fs::remove_file(mark) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("cannot remove {}: {e}", mark.display());
        }
    }
}

/// The hooks still owed from before this start, oldest first. Blocking.
pub fn owed(spool: &Spool) -> Vec<HookJob> {
    let pending = dir(spool);
    let Ok(entries) = std::fs::read_dir(&pending) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    let hooks_dir = spool.hooks_dir();
    let inbox = std::path::absolute(spool.dir(Queue::Inbox)).unwrap_or(spool.dir(Queue::Inbox));
    let mut jobs = Vec::new();
    for name in names {
        let mark = pending.join(&name);
        let parsed = std::fs::read(&mark)
            .ok()
            .and_then(|json| Message::parse(&json).ok().map(|m| (m, json)));
        let Some((message, json)) = parsed else {
            tracing::warn!("dropping unreadable pending hook {}", mark.display());
            clear(&mark);
            continue;
        };
        match hooks::find(&hooks_dir, &message.kind) {
            Some(hook) => jobs.push(HookJob {
                hook,
                inbox_file: inbox.join(&name),
                message,
                json,
                pending: Some(mark),
            }),
            None => clear(&mark),
        }
    }
    if !jobs.is_empty() {
        tracing::info!(
            hooks = jobs.len(),
            "running hooks owed from before the restart"
        );
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn recorded_hooks_are_owed_until_cleared() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        let hook = spool.hooks_dir().join("job.done");
        std::fs::write(&hook, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
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

        let marks = record(&spool, &[name.as_str(), "gone.json"]).unwrap();
        assert!(marks[0].is_some() && marks[1].is_none());
        // The consumer deletes the inbox file; the hook is still owed, with its message.
        std::fs::remove_file(spool.path(Queue::Inbox, &name)).unwrap();
        let jobs = owed(&spool);
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].message.id, m.id);
        clear(jobs[0].pending.as_ref().unwrap());
        assert!(owed(&spool).is_empty());
    }
}
