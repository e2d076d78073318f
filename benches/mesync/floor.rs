//! The raw floor of this disk: what durable files cost with nothing else
//! around them. One durable file is written to a staging dir, fsynced,
//! renamed into place and its directory fsynced, the same calls mesync's
//! spool makes; mesync's end-to-end path pays at least two of these (the
//! hub's log and B's inbox file).

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

    /// `count` durable files the way mesync's inbox writer does it, in
    /// batches of `batch`: each batch's files are written and fsynced on
    /// `threads` threads (concurrent fsyncs share journal commits), then
    /// renamed, then the directory is fsynced once.
    pub fn burst_batched(
        count: usize,
        batch: usize,
        threads: usize,
        bytes: &[u8],
    ) -> Result<Duration, String> {
        let floor = Floor::new()?;
        let start = Instant::now();
        let mut first = 0;
        while first < count {
            let last = (first + batch).min(count);
            floor
                .one_batch(first..last, threads, bytes)
                .map_err(|e| format!("durable files: {e}"))?;
            first = last;
        }
        Ok(start.elapsed())
    }

    fn one_batch(
        &self,
        files: std::ops::Range<usize>,
        threads: usize,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        let per = files.len().div_ceil(threads.max(1)).max(1);
        let stage = &self.stage;
        let names = std::thread::scope(|scope| {
            let handles: Vec<_> = files
                .clone()
                .step_by(per)
                .map(|first| {
                    let part = first..(first + per).min(files.end);
                    scope.spawn(move || {
                        part.map(|n| Self::stage_one(stage, n, bytes))
                            .collect::<std::io::Result<Vec<_>>>()
                    })
                })
                .collect();
            let mut names = Vec::with_capacity(files.len());
            for h in handles {
                let part = h
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("writer panicked")));
                names.extend(part?);
            }
            Ok::<_, std::io::Error>(names)
        })?;
        for name in &names {
            fs::rename(self.stage.join(name), self.dest.join(name))?;
        }
        File::open(&self.dest)?.sync_all()
    }
}
