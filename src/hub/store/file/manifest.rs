//! `store.json` in the data dir: which segments must exist, and a
//! high-water mark of the sequence numbers issued.
//!
//! Segments are written first and listed after (a crash leaves a segment
//! that is not listed yet, which is harmless); a segment is unlisted before
//! compaction deletes it. So a listed segment that is missing was lost, and
//! the hub refuses to start without `--repair`. `seq_reserved` is above
//! every sequence number ever issued; it is raised ahead of use, in steps,
//! so records lost from the newest segment can never make a number be
//! issued twice. The file is replaced whole (temp file, fsync, rename).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::segments::replace_file;
use crate::spool::sync_dir;

const FILE: &str = "store.json";
/// How far ahead of the next sequence number the mark is set, and how
/// close the next number may come to it before the mark is raised again.
const RESERVE: u64 = 4096;
const RAISE_WITHIN: u64 = 1024;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Ids of the segments that must exist, oldest first.
    pub segments: Vec<u64>,
    /// Every sequence number issued so far is below this.
    pub seq_reserved: u64,
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The manifest of `dir`; `None` for a data dir from before manifests.
pub fn load(dir: &Path) -> Result<Option<Manifest>> {
    let path = path(dir);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    serde_json::from_slice(&text).map(Some).with_context(|| {
        format!(
            "{} is damaged; remove it to start without its checks",
            path.display()
        )
    })
}

impl Manifest {
    /// Writes the manifest durably.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let mut text = serde_json::to_vec(self)?;
        text.push(b'\n');
        replace_file(&path(dir), &text)?;
        sync_dir(dir)
    }

    /// Raises the mark (and saves) when `next_seq` comes close to it;
    /// true if it was saved.
    pub fn reserve(&mut self, dir: &Path, next_seq: u64) -> Result<bool> {
        if next_seq + RAISE_WITHIN <= self.seq_reserved {
            return Ok(false);
        }
        let before = self.seq_reserved;
        self.seq_reserved = next_seq + RESERVE;
        if let Err(e) = self.save(dir) {
            self.seq_reserved = before;
            return Err(e);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_stays_ahead_of_every_number_issued() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(load(tmp.path()).unwrap(), None);
        let mut m = Manifest::default();
        assert!(m.reserve(tmp.path(), 1).unwrap());
        assert_eq!(m.seq_reserved, 1 + RESERVE);
        assert!(!m.reserve(tmp.path(), 100).unwrap());
        assert!(m.reserve(tmp.path(), RESERVE - RAISE_WITHIN + 10).unwrap());
        assert_eq!(load(tmp.path()).unwrap(), Some(m.clone()));
        fs::write(path(tmp.path()), b"{").unwrap();
        assert!(load(tmp.path()).is_err());
    }
}
