//! Files written durably but not yet visible, for a writer that must record
//! something of its own between "the bytes are safe" and "a reader may see
//! them". The inbox writer stages a batch, appends its ids to the ledger (the
//! commit), then publishes: after a crash, a staged file whose id is in the
//! ledger is published at the next start, and any other is removed, so a
//! file is never visible without its ledger entry (a program that consumed
//! it would otherwise get it a second time).

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::{create_dir, sync_dir, Queue, Spool};

/// Hidden directory of the base dir where staged files wait.
const STAGED_DIR: &str = ".staged";

/// A batch written durably into the staging dir, in order, not yet visible.
#[derive(Debug, Default)]
pub struct Staged {
    files: Vec<(PathBuf, String)>,
}

impl Staged {
    /// The staged file of each name, in the order given.
    pub fn paths(&self) -> impl Iterator<Item = (&PathBuf, &str)> {
        self.files.iter().map(|(p, n)| (p, n.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

impl Spool {
    /// Writes `files` durably into the staging dir (replacing what an
    /// earlier failed attempt left under the same names); nothing is visible
    /// in a queue yet. On failure nothing stays staged.
    pub fn stage(&self, files: &[(String, Vec<u8>)]) -> Result<Staged> {
        let dir = self.base.join(STAGED_DIR);
        create_dir(&dir)?;
        for (name, _) in files {
            let _ = fs::remove_file(dir.join(name));
        }
        let mut paths = Vec::with_capacity(files.len());
        if let Err(e) = self.write_synced(files, &|name| dir.join(name), &mut paths) {
            paths.iter().for_each(|p| drop(fs::remove_file(p)));
            return Err(e);
        }
        let names = files.iter().map(|(n, _)| n.clone());
        Ok(Staged {
            files: paths.into_iter().zip(names).collect(),
        })
    }

    /// Moves the staged files into `q` in order and makes the moves durable.
    /// Calling it again after a failure moves the rest. A file that could not
    /// move stays staged for [`Spool::staged_leftovers`].
    pub fn publish(&self, staged: &Staged, q: Queue) -> Result<()> {
        for (path, name) in staged.paths() {
            match fs::rename(path, self.path(q, name)) {
                Ok(()) => {}
                // Moved by an earlier call.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !path.exists() => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("moving {} into {q}/", path.display()))
                }
            }
        }
        if !staged.is_empty() {
            sync_dir(&self.dir(q))?;
        }
        Ok(())
    }

    /// What a crash left staged, oldest name first.
    pub fn staged_leftovers(&self) -> Staged {
        let dir = self.base.join(STAGED_DIR);
        let mut files: Vec<(PathBuf, String)> = fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .map(|name| (dir.join(&name), name))
                    .collect()
            })
            .unwrap_or_default();
        files.sort_by(|a, b| a.1.cmp(&b.1));
        Staged { files }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_files_are_invisible_until_published_and_survive_as_leftovers() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        let files = vec![("a.json".to_string(), b"{}".to_vec())];
        let staged = spool.stage(&files).unwrap();
        assert!(spool.list(Queue::Inbox).unwrap().is_empty());
        let left = spool.staged_leftovers();
        assert_eq!(left.paths().map(|(_, n)| n).collect::<Vec<_>>(), ["a.json"]);
        // Staging the same name again replaces the leftover.
        let again = spool.stage(&files).unwrap();
        spool.publish(&again, Queue::Inbox).unwrap();
        assert_eq!(spool.list(Queue::Inbox).unwrap(), ["a.json"]);
        assert!(spool.staged_leftovers().is_empty());
        drop(staged);
    }
}
