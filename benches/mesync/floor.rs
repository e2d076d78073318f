//! The raw floor of this disk: what durable files cost with nothing else
//! around them. One durable file is written to a staging dir, fsynced,
//! renamed into place and its directory fsynced, the same calls mesync's
//! spool makes; mesync's end-to-end path pays at least two of these (the
//! hub's log and B's inbox file). A burst is also measured through mesync's
//! own batch writer alone, which is what B's side of a burst must do, and
//! beside the bare creation of as many empty files.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Staging and destination dirs in a fresh temp dir on mesync's disk.
pub struct Floor {
    _tmp: tempfile::TempDir,
    stage: PathBuf,
    dest: PathBuf,
    written: usize,
}

impl Floor {
    pub fn new() -> Result<Floor, String> {
        let tmp = tempfile::tempdir().map_err(|e| format!("no temp dir: {e}"))?;
        let (stage, dest) = (tmp.path().join("stage"), tmp.path().join("dest"));
        for d in [&stage, &dest] {
            fs::create_dir(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
        }
        Ok(Floor {
            _tmp: tmp,
            stage,
            dest,
            written: 0,
        })
    }

    /// Writes and fsyncs one file in the staging dir; returns its name.
    fn stage_one(stage: &Path, n: usize, bytes: &[u8]) -> std::io::Result<String> {
        let name = format!("{n:08}.json");
        let mut f = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(stage.join(&name))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(name)
    }

    /// One durable file: write, fsync, rename into place, fsync the directory.
    fn one(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let name = Self::stage_one(&self.stage, self.written, bytes)?;
        self.written += 1;
        fs::rename(self.stage.join(&name), self.dest.join(&name))?;
        File::open(&self.dest)?.sync_all()
    }

    /// The time one durable file takes.
    pub fn sample(&mut self, bytes: &[u8]) -> Result<Duration, String> {
        let start = Instant::now();
        self.one(bytes)
            .map(|()| start.elapsed())
            .map_err(|e| format!("durable file: {e}"))
    }

    /// `count` durable files one after another, each with its own directory fsync.
    pub fn burst_one_by_one(count: usize, bytes: &[u8]) -> Result<Duration, String> {
        let mut floor = Floor::new()?;
        let start = Instant::now();
        for _ in 0..count {
            floor.one(bytes).map_err(|e| format!("durable file: {e}"))?;
        }
        Ok(start.elapsed())
    }

    /// `count` empty files created one by one in a fresh dir, nothing
    /// written and nothing fsynced: what the file system charges for new
    /// files alone, which no writer of one file per message can go under.
    pub fn burst_create(count: usize) -> Result<Duration, String> {
        let floor = Floor::new()?;
        let start = Instant::now();
        for n in 0..count {
            OpenOptions::new()
                .create_new(true)
                .write(true)
                .open(floor.dest.join(format!("{n:08}.json")))
                .map_err(|e| format!("creating a file: {e}"))?;
        }
        Ok(start.elapsed())
    }

    /// `count` durable files written by mesync's own inbox writer
    /// (`Spool::write_batch`) in batches of `batch`, with nothing else
    /// running: each batch's files are written and fsynced on up to 4
    /// threads (concurrent fsyncs share journal commits), renamed in order,
    /// and the directory is fsynced once a batch.
    pub fn burst_spool(count: usize, batch: usize, bytes: &[u8]) -> Result<Duration, String> {
        let tmp = tempfile::tempdir().map_err(|e| format!("no temp dir: {e}"))?;
        let spool = mesync::spool::Spool::open(tmp.path()).map_err(|e| format!("{e:#}"))?;
        let files: Vec<(String, Vec<u8>)> = (0..count)
            .map(|n| (format!("{n:08}.json"), bytes.to_vec()))
            .collect();
        let start = Instant::now();
        for chunk in files.chunks(batch.max(1)) {
            spool
                .write_batch(mesync::spool::Queue::Inbox, chunk)
                .map_err(|e| format!("{e:#}"))?;
        }
        Ok(start.elapsed())
    }
}
