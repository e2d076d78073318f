//! Keeping memory and the data dir small, run by the writer (which owns the
//! files, so nothing appends meanwhile) every minute:
//!
//! - retention: an `expire` record ends every message older than
//!   `retention`, like any other record (written, then applied);
//! - memory: index entries nobody can ask for any more (not queued for
//!   anyone and older than `dedupe_window`) are forgotten, a chunk at a time;
//! - files: a closed segment whose messages are all older than
//!   `dedupe_window` is rewritten to the messages still queued for someone
//!   (or deleted when there are none), oldest segment first. Its other
//!   records are not needed: the next segment's header states every cursor.
//!   The copies are applied to the model to record their new place.

use std::sync::atomic::Ordering;

use super::cursor::Cursor;
use super::log::{Entry, Loc, BROADCAST, GROUP, HOLE, NOBODY};
use super::model::{Applied, Model};
use super::records::{self, Expiry, LogStart, Record, FORMAT};
use super::segments::{read_at, Segment};
use super::writer::Writer;

/// What decides whether an entry is still queued for someone.
pub struct Needs {
    /// Registered hosts that have not passed every broadcast, by where their
    /// broadcasts begin (lowest first). Usually few: caught-up hosts' floors
    /// sit at the head.
    lagging: Vec<(u64, u32)>,
}

impl Model {
    pub fn needs(&self) -> Needs {
        let head = self.log.head();
        let mut lagging: Vec<(u64, u32)> = (0..self.cursors.len() as u32)
            .map(|h| (&self.cursors[h as usize], h))
            .filter(|(c, _)| c.is_registered() && c.broadcast_floor() < head)
            .map(|(c, h)| (c.broadcast_floor(), h))
            .collect();
        lagging.sort_unstable();
        Needs { lagging }
    }

    pub fn is_needed(&self, needs: &Needs, seq: u64, e: &Entry) -> bool {
        is_needed(&self.cursors, needs, seq, e, self.log.group(seq))
    }

    /// The newest sequence number accepted before `cutoff_ms` (Unix ms).
    pub fn expiry_point(&self, cutoff_ms: i64) -> u64 {
        let mut through = self.expired_through;
        for (seq, e) in self.log.after(self.expired_through) {
            if e.t >= cutoff_ms {
                break;
            }
            through = seq;
        }
        through
    }

    /// Forgets entries that are neither needed nor inside the dedupe window
    /// (accepted at or after `window_start`); returns how many.
    pub fn forget_settled(&mut self, window_start: i64) -> usize {
        let needs = self.needs();
        let cursors = &self.cursors;
        self.log.forget(|seq, e, group| {
            e.t >= window_start || is_needed(cursors, &needs, seq, e, group)
        })
    }

    /// The needed messages stored in segment `seg`, with their places.
    pub fn needed_in(&self, seg: &Segment) -> Vec<(u64, Loc)> {
        let needs = self.needs();
        let id = seg.id as u32;
        self.log
            .after(seg.first_seq.saturating_sub(1))
            .take_while(|(seq, _)| *seq <= seg.last_seq)
            .filter(|(seq, e)| e.loc.seg == id && self.is_needed(&needs, *seq, e))
            .map(|(seq, e)| (seq, e.loc))
            .collect()
    }
}

/// Whether entry `seq` is still queued for someone (`group`: the hosts of a
/// `GROUP` entry). A broadcast is while a registered host that has not
/// passed it, other than its sender, has not acked it.
fn is_needed(cursors: &[Cursor], needs: &Needs, seq: u64, e: &Entry, group: &[u32]) -> bool {
    match e.to {
        BROADCAST => needs
            .lagging
            .iter()
            .take_while(|(floor, _)| *floor < seq)
            .any(|(_, h)| *h != e.from && !cursors[*h as usize].is_acked(seq)),
        NOBODY | HOLE => false,
        GROUP => group.iter().any(|h| cursors[*h as usize].is_targeted(seq)),
        h => cursors[h as usize].is_targeted(seq),
    }
}

impl Writer {
    /// Expires, forgets and compacts as of `now` (Unix ms).
    pub fn sweep(&mut self, now: i64) {
        let limits = self.shared.limits;
        self.expire(now - limits.retention_ms);
        let window_start = now - limits.dedupe_window_ms;
        let forgotten = self.shared.model_mut().forget_settled(window_start);
        if forgotten > 0 {
            tracing::debug!(entries = forgotten, "forgot settled messages");
        }
        let old: Vec<Segment> = self
            .segments
            .closed()
            .take_while(|s| s.newest_ms < window_start)
            .cloned()
            .collect();
        for seg in old {
            if let Err(e) = self.compact(&seg) {
                // Later segments must not lose records an older one still relies on.
                tracing::error!(error = %format!("{e:#}"), segment = %seg.path.display(), "cannot compact a segment; keeping it");
                break;
            }
        }
        self.shared.wakes.prune();
    }

    fn expire(&mut self, cutoff_ms: i64) {
        let shared = self.shared.clone();
        let model = shared.model();
        let through = model.expiry_point(cutoff_ms);
        if through <= model.expired_through {
            return;
        }
        let rec = [Record::Expire(Expiry { through })];
        let written = self.write(&rec, &model);
        drop(model);
        match written {
            Ok(locs) => {
                if let [Applied::Expired(n)] = self.apply(&rec, &locs)[..] {
                    if n > 0 {
                        tracing::info!(messages = n, "unacked messages expired after retention");
                    }
                    shared
                        .metrics
                        .expired
                        .fetch_add(n as u64, Ordering::Relaxed);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot record expired messages; retrying later"),
        }
    }

    /// Rewrites `seg` to its needed messages, or deletes it if none are.
    fn compact(&mut self, seg: &Segment) -> anyhow::Result<()> {
        let needed = self.shared.model().needed_in(seg);
        let mut content = Vec::new();
        let mut kept = Vec::with_capacity(needed.len());
        if let Some((first, _)) = needed.first() {
            let start = Record::Log(LogStart {
                format: FORMAT,
                next_seq: *first,
                compacted: true,
            });
            records::encode(&start, &mut content)?;
            let locs: Vec<_> = needed.iter().map(|(_, l)| (seg.id, l.off, l.len)).collect();
            for ((seq, _), line) in needed.iter().zip(read_at(self.segments.dir(), &locs)) {
                let Some(line) = line else {
                    anyhow::bail!("cannot read message {seq} back from {}", seg.path.display());
                };
                let off = content.len() as u32;
                content.extend_from_slice(&line);
                content.push(b'\n');
                kept.push((
                    line,
                    Loc {
                        seg: seg.id as u32,
                        off,
                        len: (content.len() - 1) as u32 - off,
                    },
                ));
            }
        }
        if seg.compacted && content.len() as u64 == seg.bytes {
            return Ok(());
        }
        let copies = kept
            .iter()
            .map(|(line, loc)| Ok((records::decode(line).map_err(anyhow::Error::msg)?, *loc)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let staged = self.segments.stage(seg.id, &content)?;
        {
            // Readers look places up under this lock: none sees the new file
            // with the old places.
            let shared = self.shared.clone();
            let mut model = shared.model_mut();
            self.segments.swap(seg.id, staged)?;
            for (rec, loc) in &copies {
                model.apply(rec, *loc);
            }
        }
        self.segments.sync()
    }
}
