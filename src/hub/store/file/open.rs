//! Opening a data dir: lock it, convert first-format segments, replay every
//! segment through [`Model::apply`] in order, and begin a new segment whose
//! header states every cursor. A line that does not decode is skipped with a
//! warning naming the file and line; the rest still loads.

use std::path::Path;

use anyhow::Result;

use super::legacy;
use super::log::Loc;
use super::model::Model;
use super::records::{self, Record};
use super::segments::{read_lines, Segment, Segments};

/// The replayed model and the files, ready for the writer. `window_start`:
/// the oldest acceptance time (Unix ms) inside the dedupe window.
pub fn open(dir: &Path, window_start: i64) -> Result<(Model, Segments)> {
    let (lock, found) = Segments::lock(dir)?;
    let found = legacy::convert_if_needed(dir, found, window_start)?;
    let mut model = Model::default();
    let mut closed = Vec::with_capacity(found.len());
    let mut count = 0;
    for (id, path) in found {
        let (seg, n) = replay_segment(&mut model, id, &path)?;
        closed.push(seg);
        count += n;
    }
    let mut header = Vec::new();
    for rec in model.header() {
        records::encode(&rec, &mut header)?;
    }
    let segments = Segments::begin(dir, lock, closed, &header)?;
    let hosts = model.hosts();
    tracing::info!(
        records = count,
        hosts = hosts.iter().filter(|h| h.1.is_some()).count(),
        pending = hosts.iter().map(|h| h.3).sum::<usize>(),
        messages = model.log.len(),
        "hub store replayed"
    );
    Ok((model, segments))
}

/// Applies every record of one segment; returns it described and how many
/// records it held.
pub fn replay_segment(model: &mut Model, id: u64, path: &Path) -> Result<(Segment, usize)> {
    let read = read_lines(id, path)?;
    let mut seg = read.seg.clone();
    let mut count = 0;
    for (n, (line, off, len)) in read.iter().enumerate() {
        if line.is_empty() {
            continue;
        }
        match records::decode(line) {
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
            Err(e) => tracing::warn!(file = %path.display(), line = n + 1, error = %e,
                "skipping a line that is not a hub record"),
        }
    }
    Ok((seg, count))
}
