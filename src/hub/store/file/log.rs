//! The in-memory index of the log: one small [`Entry`] per message, found by
//! sequence number or by id. Bodies stay in the segment files; an entry only
//! says where (`Loc`). This is what memory holds per message, so it is kept
//! to 48 bytes plus about 9–18 bytes in the id table.
//!
//! Entries live in fixed chunks of slots indexed by sequence number
//! (`slots.rs`). Sequence numbers the log skipped are holes; a chunk whose
//! entries nobody can ask for any more is freed whole, keeping only the
//! running broadcast count the pending arithmetic needs.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;

use hashbrown::HashTable;
use uuid::Uuid;

use super::slots::{Chunk, Slots, CHUNK};
/// `Entry::to` values that are not a host index.
pub const BROADCAST: u32 = u32::MAX;
pub const NOBODY: u32 = u32::MAX - 1;
pub const HOLE: u32 = u32::MAX - 2;
/// Several hosts, listed in `Log::groups` (only data converted from the
/// first format has such messages). Host indexes stay below this.
pub const GROUP: u32 = u32::MAX - 3;

/// Where a message's record is: segment id, byte offset and length of its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loc {
    pub seg: u32,
    pub off: u32,
    pub len: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub id: Uuid,
    /// Acceptance time, Unix ms.
    pub t: i64,
    pub loc: Loc,
    /// The sender's host index.
    pub from: u32,
    /// A host index, `BROADCAST`, `NOBODY`, `HOLE` or `GROUP | i`.
    pub to: u32,
    /// Broadcasts up to and including this entry (wrapping; only differences count).
    pub bcount: u32,
}

pub struct Log {
    slots: Slots,
    /// Sequence numbers of entries, hashed by id (an id may repeat after its window).
    ids: HashTable<u64>,
    hasher: std::hash::RandomState,
    /// The lowest sequence number never issued.
    next_seq: u64,
    /// Broadcasts among all entries so far.
    broadcasts: u32,
    /// Hosts of `GROUP` entries, by sequence number.
    groups: HashMap<u64, Box<[u32]>>,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            slots: Slots {
                first: 1,
                chunks: VecDeque::new(),
            },
            ids: HashTable::new(),
            hasher: std::hash::RandomState::new(),
            next_seq: 1,
            broadcasts: 0,
            groups: HashMap::new(),
        }
    }
}

impl Log {
    /// The newest sequence number issued (0 before any).
    pub fn head(&self) -> u64 {
        self.next_seq - 1
    }

    /// Records that sequence numbers below `next` were issued.
    pub fn raise_next_seq(&mut self, next: u64) {
        self.next_seq = self.next_seq.max(next);
    }

    /// The newest acceptance time in the log.
    pub fn newest_t(&self) -> i64 {
        self.slots.last().map_or(i64::MIN, |(_, t)| t)
    }

    /// Adds a message as `seq` (numbers skipped before it become holes); true
    /// if it was new. A `seq` already present only moves to `loc`: that is
    /// how a compacted segment's copies are recorded.
    pub fn append(&mut self, seq: u64, mut entry: Entry, group: Option<Box<[u32]>>) -> bool {
        if seq < self.slots.end() {
            if let Some(e) = self.slots.slot_mut(seq).filter(|e| e.to != HOLE) {
                e.loc = entry.loc;
            }
            return false;
        }
        if self.slots.chunks.is_empty() {
            self.slots.first = seq;
        }
        let t = self.newest_t();
        while self.slots.end() < seq {
            let hole = Entry {
                id: Uuid::nil(),
                t,
                loc: Loc::default(),
                from: 0,
                to: HOLE,
                bcount: self.broadcasts,
            };
            self.slots.push(hole);
        }
        if entry.to == BROADCAST {
            self.broadcasts = self.broadcasts.wrapping_add(1);
        }
        entry.bcount = self.broadcasts;
        if let Some(g) = group {
            self.groups.insert(seq, g);
        }
        let hash = self.hasher.hash_one(entry.id);
        self.slots.push(entry);
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.ids.insert_unique(hash, seq, |s| {
            hasher.hash_one(slots.slot(*s).map_or(Uuid::nil(), |e| e.id))
        });
        self.next_seq = self.next_seq.max(seq + 1);
        true
    }

    /// The entry of `seq`, unless it is a hole, freed or unknown.
    pub fn get(&self, seq: u64) -> Option<&Entry> {
        self.slots.slot(seq).filter(|e| e.to != HOLE)
    }

    /// Broadcasts in the whole log so far (wrapping; only differences count).
    pub fn broadcasts(&self) -> u32 {
        self.broadcasts
    }

    /// Broadcasts up to and including a point at or just after `seq`, and
    /// that point. Inside a freed chunk the point is the chunk's end: its
    /// broadcasts are all settled, so a host counting from `seq` must skip
    /// them (and its acks and own broadcasts up to that point) too.
    pub fn broadcasts_through(&self, seq: u64) -> (u64, u32) {
        let first = self.slots.first;
        if seq >= self.slots.end() {
            return (seq, self.broadcasts);
        }
        let Some((c, i)) = self.slots.index(seq) else {
            return (first.saturating_sub(1), self.first_bcount());
        };
        match &self.slots.chunks[c] {
            Chunk::Live(v) => (seq, v[i].bcount),
            Chunk::Freed { bcount, .. } => (first + ((c + 1) * CHUNK) as u64 - 1, *bcount),
        }
    }

    /// The count before the first slot.
    fn first_bcount(&self) -> u32 {
        match self.slots.chunks.front() {
            Some(Chunk::Live(v)) => {
                let e = &v[0];
                e.bcount.wrapping_sub(u32::from(e.to == BROADCAST))
            }
            Some(Chunk::Freed { bcount, .. }) => *bcount,
            None => self.broadcasts,
        }
    }

    /// The hosts of a `GROUP` entry.
    pub fn group(&self, seq: u64) -> &[u32] {
        self.groups.get(&seq).map_or(&[], |g| g)
    }

    /// Sequence numbers of entries with this id, oldest first.
    pub fn find(&self, id: &Uuid) -> Vec<u64> {
        let hash = self.hasher.hash_one(id);
        let mut found: Vec<u64> = self
            .ids
            .iter_hash(hash)
            .copied()
            .filter(|s| self.get(*s).is_some_and(|e| e.id == *id))
            .collect();
        found.sort_unstable();
        found
    }

    /// The entries with this id, in no particular order.
    pub fn entries_of<'a>(&'a self, id: &'a Uuid) -> impl Iterator<Item = &'a Entry> + 'a {
        let hash = self.hasher.hash_one(id);
        self.ids
            .iter_hash(hash)
            .filter_map(|s| self.get(*s))
            .filter(move |e| e.id == *id)
    }

    /// Entries after `after`, oldest first (holes and freed chunks skipped).
    pub fn after(&self, after: u64) -> impl Iterator<Item = (u64, &Entry)> + '_ {
        let first = self.slots.first;
        let start = after.saturating_add(1).max(first);
        let skip = usize::try_from(start - first).unwrap_or(usize::MAX);
        let (c0, i0) = (skip / CHUNK, skip % CHUNK);
        self.slots
            .chunks
            .iter()
            .enumerate()
            .skip(c0)
            .flat_map(move |(c, chunk)| {
                let live: &[Entry] = match chunk {
                    Chunk::Live(v) => v,
                    Chunk::Freed { .. } => &[],
                };
                let from = if c == c0 { i0.min(live.len()) } else { 0 };
                live[from..]
                    .iter()
                    .enumerate()
                    .map(move |(i, e)| (first + (c * CHUNK + from + i) as u64, e))
            })
            .filter(|(_, e)| e.to != HOLE)
    }

    /// Frees every chunk but the newest in which `keep` (given an entry and,
    /// for a `GROUP` entry, its hosts) holds for no entry, and drops freed
    /// chunks from the front. Returns how many entries went.
    pub fn forget(&mut self, mut keep: impl FnMut(u64, &Entry, &[u32]) -> bool) -> usize {
        let mut forgotten = 0;
        let last = self.slots.chunks.len().saturating_sub(1);
        for c in 0..last {
            let base = self.slots.first + (c * CHUNK) as u64;
            let Chunk::Live(v) = &self.slots.chunks[c] else {
                continue;
            };
            let mut live = v.iter().enumerate().filter(|(_, e)| e.to != HOLE);
            let groups = &self.groups;
            if live.any(|(i, e)| {
                let seq = base + i as u64;
                keep(seq, e, groups.get(&seq).map_or(&[], |g| g))
            }) {
                continue;
            }
            let (bcount, t) = v.last().map_or((0, i64::MIN), |e| (e.bcount, e.t));
            for (i, e) in v.iter().enumerate().filter(|(_, e)| e.to != HOLE) {
                forgotten += 1;
                let seq = base + i as u64;
                if let Ok(found) = self
                    .ids
                    .find_entry(self.hasher.hash_one(e.id), |s| *s == seq)
                {
                    found.remove();
                }
                if e.to == GROUP {
                    self.groups.remove(&seq);
                }
            }
            self.slots.chunks[c] = Chunk::Freed { bcount, t };
        }
        while self.slots.chunks.len() > 1 {
            let Some(Chunk::Freed { .. }) = self.slots.chunks.front() else {
                break;
            };
            self.slots.chunks.pop_front();
            self.slots.first += CHUNK as u64;
        }
        forgotten
    }

    /// Entries held (holes and freed slots excluded).
    pub fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(to: u32, t: i64) -> Entry {
        Entry {
            id: Uuid::now_v7(),
            t,
            loc: Loc {
                seg: 1,
                off: 0,
                len: 1,
            },
            from: 0,
            to,
            bcount: 0,
        }
    }

    #[test]
    fn entries_are_found_by_seq_and_id_with_holes_between() {
        let mut log = Log::default();
        let a = entry(BROADCAST, 1);
        assert!(log.append(3, a, None));
        log.append(4, entry(7, 2), None);
        log.append(9, entry(BROADCAST, 3), None);
        assert_eq!(log.head(), 9);
        assert_eq!(log.get(3).unwrap().id, a.id);
        assert!(log.get(5).is_none() && log.get(10).is_none() && log.get(0).is_none());
        assert_eq!(log.find(&a.id), [3]);
        assert_eq!(log.after(3).map(|(s, _)| s).collect::<Vec<_>>(), [4, 9]);
        assert_eq!(log.after(0).count(), 3);
        // Broadcasts up to a seq: 3 is one, 9 is the second.
        let count = |s| log.broadcasts_through(s).1;
        assert_eq!((count(2), count(3), count(8), count(9)), (0, 1, 1, 2));
        assert_eq!((count(100), log.broadcasts()), (2, 2));
    }

    #[test]
    fn moving_an_entry_keeps_everything_else() {
        let mut log = Log::default();
        log.append(1, entry(5, 1), None);
        let mut moved = entry(5, 1);
        moved.loc = Loc {
            seg: 9,
            off: 10,
            len: 3,
        };
        assert!(!log.append(1, moved, None));
        assert_eq!(log.get(1).unwrap().loc.seg, 9);
        assert_eq!(log.len(), 1);
    }

    #[test]
    fn forgetting_frees_whole_chunks_and_keeps_counts() {
        let mut log = Log::default();
        let n = CHUNK as u64 * 3 + 10;
        for seq in 1..=n {
            log.append(
                seq,
                entry(if seq % 2 == 0 { BROADCAST } else { 1 }, seq as i64),
                None,
            );
        }
        let keep = 2 * CHUNK as u64 + 5;
        let before = log.broadcasts_through(keep);
        let gone = log.forget(|seq, _, _| seq == keep || seq == 5);
        assert_eq!(gone, CHUNK);
        assert!(log.get(5).is_some() && log.get(CHUNK as u64 + 1).is_none());
        assert_eq!(log.broadcasts_through(keep), before);
        // Counting from inside a freed chunk starts at its end.
        let end = 2 * CHUNK as u64;
        assert_eq!(
            log.broadcasts_through(CHUNK as u64 + 7),
            (end, (end / 2) as u32)
        );
        assert_eq!(log.broadcasts_through(n).1, (n / 2) as u32);
        // Freed chunks at the front go; counting before them starts after.
        log.forget(|seq, _, _| seq == keep);
        assert_eq!(log.broadcasts_through(7), (end, (end / 2) as u32));
        assert_eq!(log.after(0).next().unwrap().0, end + 1);
        assert_eq!(log.len(), (n - end) as usize);
    }
}
