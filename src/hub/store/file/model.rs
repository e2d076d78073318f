//! The file store's state machine: the log index and every host's cursor,
//! changed only by [`Model::apply`], one [`Record`] at a time. Replay at
//! start, the writer after each fsync and compaction after each segment
//! rewrite all call it, so memory always equals what the files say.
//!
//! A host's queue is the log filtered for it: messages after its floor that
//! are addressed to it, or broadcasts after its registration that it did not
//! send, minus its acks. Nothing is copied per host, so a broadcast costs the
//! same however many hosts are registered.

use std::collections::HashMap;

use jiff::Timestamp;

use super::cursor::Cursor;
use super::log::{Entry, Loc, Log, BROADCAST, GROUP, HOLE, NOBODY};
use super::records::{HostCursor, LogStart, MsgRecord, Record, FORMAT};

/// What applying a record changed, for the caller to act on (wake streams,
/// cache the body, count).
#[derive(Debug, PartialEq)]
pub enum Applied {
    Nothing,
    /// A new message.
    Message,
    /// A message already known, now at a new place in the files.
    Moved,
    Acked(usize),
    /// A host deleted; whether it was registered or had a queue.
    Deleted {
        existed: bool,
    },
    /// Queue entries ended by retention.
    Expired(usize),
}

#[derive(Default)]
pub struct Model {
    pub(super) log: Log,
    pub(super) names: Vec<String>,
    pub(super) by_name: HashMap<String, u32>,
    pub(super) cursors: Vec<Cursor>,
    /// Messages up to here are past retention.
    pub(super) expired_through: u64,
    /// False while replaying a compacted segment: its messages come before
    /// the header that states the cursors, so they are only indexed (see
    /// `message`) and nothing is settled until then.
    unstated: bool,
}

impl Model {
    pub fn head(&self) -> u64 {
        self.log.head()
    }

    pub fn host(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    pub fn cursor(&self, name: &str) -> Option<&Cursor> {
        self.host(name).map(|h| &self.cursors[h as usize])
    }

    /// The host's index, known from now on if it was not.
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(h) = self.host(name) {
            return h;
        }
        let h = self.cursors.len() as u32;
        self.names.push(name.to_string());
        self.by_name.insert(name.to_string(), h);
        // Nothing before now was for a new host; but before a header, its
        // floor is not known yet and every message must count.
        let floor = if self.unstated { 0 } else { self.log.head() };
        self.cursors.push(Cursor::new(floor));
        h
    }

    /// Whether entry `seq` is in host `h`'s queue if nothing acked it.
    pub(super) fn is_for(&self, h: u32, seq: u64, e: &Entry) -> bool {
        match e.to {
            BROADCAST => {
                let c = &self.cursors[h as usize];
                c.is_registered() && e.from != h && seq > c.reg
            }
            NOBODY | HOLE => false,
            GROUP => self.log.group(seq).contains(&h),
            to => to == h,
        }
    }

    /// Applies one record; `loc` is where a message record sits in the files.
    pub fn apply(&mut self, rec: &Record<'_>, loc: Loc) -> Applied {
        match rec {
            Record::Log(LogStart {
                next_seq,
                compacted,
                ..
            }) => {
                self.log.raise_next_seq(*next_seq);
                self.unstated = *compacted;
                Applied::Nothing
            }
            Record::Host(c) => {
                self.restate(c);
                Applied::Nothing
            }
            Record::Register(r) => {
                let h = self.intern(&r.host) as usize;
                let c = &mut self.cursors[h];
                if !c.is_registered() {
                    c.registered_at = Some(r.at);
                    c.reg = r.after;
                }
                Applied::Nothing
            }
            Record::Msg(m) => self.message(m, loc),
            Record::Ack(a) => match self.host(&a.host) {
                Some(h) => Applied::Acked(self.ack(h, &a.seqs)),
                None => Applied::Acked(0),
            },
            Record::Delete(d) => {
                let h = self.intern(&d.host);
                let existed = self.cursors[h as usize].is_registered() || self.pending(h) > 0;
                self.cursors[h as usize].delete(d.through);
                Applied::Deleted { existed }
            }
            Record::Expire(x) => Applied::Expired(self.expire(x.through)),
        }
    }

    fn restate(&mut self, c: &HostCursor<'_>) {
        let h = self.intern(&c.host) as usize;
        let cursor = &mut self.cursors[h];
        let reg = c.after.unwrap_or(c.floor);
        let log = &self.log;
        let is_broadcast = |s| log.get(s).is_some_and(|e| e.to == BROADCAST);
        cursor.restate(c.registered_at, reg, c.floor, &c.acked, is_broadcast);
        if let Some(seen) = c.last_seen {
            cursor.seen(seen.as_millisecond());
        }
    }

    fn message(&mut self, m: &MsgRecord<'_>, loc: Loc) -> Applied {
        let from = self.intern(&m.from);
        let (to, group) = match m.to.as_deref() {
            None => (BROADCAST, None),
            Some([]) => (NOBODY, None),
            Some([one]) => (self.intern(one), None),
            Some(hosts) => {
                let idx: Box<[u32]> = hosts.iter().map(|h| self.intern(h)).collect();
                (GROUP, Some(idx))
            }
        };
        let entry = Entry {
            id: m.id,
            t: m.t,
            loc,
            from,
            to,
            bcount: 0,
        };
        if !self.log.append(m.seq, entry, group) {
            return Applied::Moved;
        }
        match to {
            BROADCAST => {
                self.cursors[from as usize].add_own(m.seq);
                // A sender that has read everything is done up to here, so
                // its floor never holds back forgetting and compaction.
                self.settle(from);
            }
            NOBODY => {}
            GROUP => {
                for h in self.log.group(m.seq).to_vec() {
                    self.cursors[h as usize].add_targeted(m.seq);
                }
            }
            h => self.cursors[h as usize].add_targeted(m.seq),
        }
        Applied::Message
    }

    /// Acks what of `seqs` is pending for `h`; returns how many were.
    fn ack(&mut self, h: u32, seqs: &[u64]) -> usize {
        let mut n = 0;
        for &seq in seqs {
            let Some(e) = self.log.get(seq).copied() else {
                continue;
            };
            let c = &self.cursors[h as usize];
            if seq <= c.floor || c.is_acked(seq) || !self.is_for(h, seq, &e) {
                continue;
            }
            if self.cursors[h as usize].ack(seq, e.to != BROADCAST) {
                n += 1;
            }
        }
        self.settle(h);
        n
    }

    /// Moves the floor past everything done for `h` at the start of its queue.
    fn settle(&mut self, h: u32) {
        if self.unstated {
            return;
        }
        let head = self.log.head();
        if self.pending(h) == 0 {
            self.cursors[h as usize].raise_floor(head);
            return;
        }
        loop {
            let c = &self.cursors[h as usize];
            if c.floor >= head || c.targeted.front() == Some(&(c.floor + 1)) {
                break;
            }
            let next = c.floor + 1;
            if self.cursors[h as usize].pass_acked(next) {
                continue;
            }
            if self.log.get(next).is_some_and(|e| self.is_for(h, next, e)) {
                break;
            }
            self.cursors[h as usize].raise_floor(next);
        }
    }

    /// Ends every message up to `through`; returns how many queue entries went.
    fn expire(&mut self, through: u64) -> usize {
        self.expired_through = self.expired_through.max(through);
        let mut gone = 0;
        for h in 0..self.cursors.len() as u32 {
            if self.cursors[h as usize].floor >= through {
                continue;
            }
            let before = self.pending(h);
            self.cursors[h as usize].raise_floor(through);
            gone += before.saturating_sub(self.pending(h));
        }
        gone
    }

    /// How many messages are in host `h`'s queue.
    pub fn pending(&self, h: u32) -> usize {
        let c = &self.cursors[h as usize];
        let mut n = c.targeted.len();
        if c.is_registered() {
            let (from, before) = self.log.broadcasts_through(c.broadcast_floor());
            let all = self.log.broadcasts().wrapping_sub(before) as usize;
            n += all.saturating_sub(c.own_after(from) + c.acked_broadcasts_after(from));
        }
        n
    }

    /// Up to `limit` of the host's queue after `after`: sequence numbers and
    /// where their records are.
    pub fn queue(&self, name: &str, after: u64, limit: usize) -> Vec<(u64, Loc)> {
        let Some(h) = self.host(name) else {
            return Vec::new();
        };
        let c = &self.cursors[h as usize];
        let from = after.max(c.floor);
        if !c.is_registered() {
            let start = c.targeted.partition_point(|s| *s <= from);
            return c
                .targeted
                .range(start..)
                .filter_map(|s| Some((*s, self.log.get(*s)?.loc)))
                .take(limit)
                .collect();
        }
        self.log
            .after(from)
            .filter(|(s, e)| self.is_for(h, *s, e) && !c.is_acked(*s))
            .map(|(s, e)| (s, e.loc))
            .take(limit)
            .collect()
    }

    /// Whether `seq` is in host `h`'s queue now.
    pub fn is_pending(&self, h: u32, seq: u64) -> bool {
        let c = &self.cursors[h as usize];
        let Some(e) = self.log.get(seq) else {
            return false;
        };
        seq > c.floor
            && !c.is_acked(seq)
            && self.is_for(h, seq, e)
            && (e.to == BROADCAST || c.is_targeted(seq))
    }

    /// The sequence numbers of these ids that are in the host's queue.
    pub fn pending_ids(&self, name: &str, ids: &[uuid::Uuid]) -> Vec<u64> {
        let Some(h) = self.host(name) else {
            return Vec::new();
        };
        let mut seqs: Vec<u64> = ids
            .iter()
            .flat_map(|id| self.log.find(id))
            .filter(|seq| self.is_pending(h, *seq))
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
        seqs
    }

    /// Whether `id` was accepted at or after `window_start` (Unix ms).
    pub fn is_duplicate(&self, id: &uuid::Uuid, window_start: i64) -> bool {
        self.log.entries_of(id).any(|e| e.t >= window_start)
    }

    /// The records that state every host's cursor: the head of each segment.
    pub fn header(&self) -> Vec<Record<'_>> {
        let mut recs = vec![Record::Log(LogStart {
            format: FORMAT,
            next_seq: self.log.head() + 1,
            compacted: false,
        })];
        recs.extend(self.cursor_records());
        recs
    }

    /// One `host` record per known host.
    pub fn cursor_records(&self) -> impl Iterator<Item = Record<'_>> {
        self.cursors.iter().zip(&self.names).map(|(c, name)| {
            Record::Host(HostCursor {
                host: name.as_str().into(),
                registered_at: c.registered_at,
                after: c.is_registered().then_some(c.reg),
                floor: c.floor,
                acked: c.acked.iter().copied().collect(),
                last_seen: c.last_seen(),
            })
        })
    }

    /// Every known host: name, registration, last seen, queue depth.
    pub fn hosts(&self) -> Vec<(String, Option<Timestamp>, Option<Timestamp>, usize)> {
        let mut all: Vec<_> = (0..self.cursors.len() as u32)
            .map(|h| {
                let c = &self.cursors[h as usize];
                let name = self.names[h as usize].clone();
                (name, c.registered_at, c.last_seen(), self.pending(h))
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}
