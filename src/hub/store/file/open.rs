//! Opening a data dir: lock it, convert first-format segments, check that
//! no segment listed in `store.json` is missing, replay every segment
//! through [`Model::apply`] in order, and begin a new segment whose header
//! states every cursor.
//!
//! Damage is never replayed as if nothing happened: a line that fails its
//! checksum or does not decode is skipped and logged with its file, line
//! and content, and counted; a missing segment or a torn line in any
//! segment but the newest stops the start with one sentence naming the
//! file, unless `repair` asks to go on, logging what is lost. Sequence
//! numbers resume above the manifest's high-water mark, so none is ever
//! issued twice, whatever was lost.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::legacy;
use super::log::Loc;
use super::manifest::{self, Manifest};
use super::model::Model;
use super::records::{self, Checksum, Record};
use super::segments::{read_lines, segment_path, Segment, Segments};

/// What opening found besides the model and the files.
#[derive(Debug, Default)]
pub struct Damage {
    /// Records skipped because they failed their checksum or did not decode.
    pub corrupt: u64,
}

/// The replayed model and the files, ready for the writer. `window_start`:
/// the oldest acceptance time (Unix ms) inside the dedupe window.
pub fn open(dir: &Path, window_start: i64, repair: bool) -> Result<(Model, Segments, Damage)> {
    let (lock, found) = Segments::lock(dir)?;
    let found = legacy::convert_if_needed(dir, found, window_start)?;
    let manifest = manifest::load(dir)?.unwrap_or_default();
    let missing = missing_segments(dir, &manifest, &found, repair)?;
    let mut model = Model::default();
    let mut damage = Damage::default();
    let mut closed = Vec::with_capacity(found.len());
    let mut count = 0;
    let newest = found.last().map(|(id, _)| *id);
    for (id, path) in found {
        if let Some(gone) = missing.iter().find(|(_, next)| *next == id) {
            log_lost_segment(&model, &gone.0, &path);
        }
        let may_cut = repair || Some(id) == newest;
        let (seg, n) = replay_segment(&mut model, id, &path, may_cut, &mut damage)?;
        closed.push(seg);
        count += n;
    }
    model.log.raise_next_seq(manifest.seq_reserved);
    let mut header = Vec::new();
    for rec in model.header() {
        records::encode(&rec, &mut header)?;
    }
    let segments = Segments::begin(dir, lock, closed, &header, manifest)?;
    let hosts = model.hosts();
    tracing::info!(
        records = count,
        hosts = hosts.iter().filter(|h| h.1.is_some()).count(),
        pending = hosts.iter().map(|h| h.3).sum::<usize>(),
        messages = model.log.len(),
        corrupt = damage.corrupt,
        "hub store replayed"
    );
    Ok((model, segments, damage))
}

/// Segments the manifest lists that are not there, each with the id of
/// the segment found after it (0 if none). An error unless `repair`.
fn missing_segments(
    dir: &Path,
    manifest: &Manifest,
    found: &[(u64, PathBuf)],
    repair: bool,
) -> Result<Vec<(PathBuf, u64)>> {
    let mut missing = Vec::new();
    for id in &manifest.segments {
        if found.iter().any(|(f, _)| f == id) {
            continue;
        }
        let path = segment_path(dir, *id);
        if !repair {
            anyhow::bail!(
                "segment file {} is missing (it is listed in {}): the messages in it would be lost; restore it, or start the hub with `--repair` (`mesync serve --repair`, or `mesync start --with-hub --repair`) to go on without it",
                path.display(),
                manifest::path(dir).display()
            );
        }
        let next = found.iter().map(|(f, _)| *f).find(|f| f > id).unwrap_or(0);
        missing.push((path, next));
    }
    Ok(missing)
}

/// Says what a repair gives up with a missing segment: the sequence numbers
/// between what was replayed before it and the next segment's first header.
fn log_lost_segment(model: &Model, gone: &Path, next: &Path) {
    let from = model.head() + 1;
    let until = read_lines(0, next, true)
        .ok()
        .and_then(|read| {
            let (line, _, _) = read.iter().next()?;
            match records::decode(line).ok()? {
                Record::Log(l) => Some(l.next_seq),
                _ => None,
            }
        })
        .unwrap_or(from);
    tracing::error!(segment = %gone.display(), first_seq = from, last_seq = until.saturating_sub(1),
        "repair: segment missing; the messages it held that were still queued are lost (sequence numbers in this range)");
}

/// Applies every record of one segment; returns it described and how many
/// records it held. Corrupt records are skipped, logged and counted.
pub fn replay_segment(
    model: &mut Model,
    id: u64,
    path: &Path,
    may_cut: bool,
    damage: &mut Damage,
) -> Result<(Segment, usize)> {
    let read = read_lines(id, path, may_cut)?;
    let mut seg = read.seg.clone();
    let mut count = 0;
    // Once a segment has checksums, a line without one was damaged too.
    let mut checksummed = false;
    for (n, (line, off, len)) in read.iter().enumerate() {
        if line.is_empty() {
            continue;
        }
        let decoded = records::verify(line).and_then(|sum| {
            if sum == Checksum::Absent && checksummed {
                return Err("no checksum in a segment whose records have one".to_string());
            }
            checksummed |= sum == Checksum::Good;
            records::decode(line)
        });
        match decoded {
            Ok(rec) => {
                match &rec {
                    Record::Msg(m) => seg.holds(m.seq, m.t),
                    Record::Log(l) => seg.compacted = l.compacted,
                    _ => {}
                }
                let loc = Loc {
                    seg: id as u32,
                    off,
                    len,
                };
                model.apply(&rec, loc);
                count += 1;
            }
            Err(e) => {
                damage.corrupt += 1;
                tracing::error!(file = %path.display(), line = n + 1, error = %e,
                    content = %String::from_utf8_lossy(line),
                    "corrupt record not replayed");
            }
        }
    }
    Ok((seg, count))
}
