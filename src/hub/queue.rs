//! One host's queue of unacked messages, indexed by sequence number.
//!
//! A host's sequence numbers are issued one after another, so the queue is a
//! ring of slots where slot `i` holds sequence number `first + i`: a lookup
//! is an index, and an entry costs one pointer (8 bytes) instead of a tree
//! node's share (about 40). An acked entry leaves an empty slot until the
//! slots before it are acked too; empty slots at either end are dropped at
//! once, so the ring spans only the oldest to the newest unacked message.

use std::collections::VecDeque;
use std::sync::Arc;

use super::state::Stored;

#[derive(Default)]
pub struct Entries {
    /// The sequence number of `slots[0]`.
    first: u64,
    slots: VecDeque<Option<Arc<Stored>>>,
    /// Occupied slots.
    live: usize,
}

impl Entries {
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Queues `m` as `seq`, replacing what `seq` held. New messages come in
    /// order; a replay after compaction may bring older ones later.
    pub fn insert(&mut self, seq: u64, m: Arc<Stored>) {
        if self.slots.is_empty() {
            self.first = seq;
        }
        if seq < self.first {
            for _ in seq..self.first {
                self.slots.push_front(None);
            }
            self.first = seq;
        }
        let index = self.index(seq);
        while self.slots.len() <= index {
            self.slots.push_back(None);
        }
        if self.slots[index].replace(m).is_none() {
            self.live += 1;
        }
    }

    pub fn get(&self, seq: u64) -> Option<&Arc<Stored>> {
        let index = seq.checked_sub(self.first)?;
        self.slots.get(usize::try_from(index).ok()?)?.as_ref()
    }

    /// Empties the slot of `seq`; true if it held a message.
    pub fn remove(&mut self, seq: u64) -> bool {
        let Some(index) = seq
            .checked_sub(self.first)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return false;
        };
        let taken = self.slots.get_mut(index).and_then(Option::take).is_some();
        if taken {
            self.live -= 1;
            self.trim();
        }
        taken
    }

    /// Keeps the entries for which `keep` is true; returns how many went.
    pub fn retain(&mut self, mut keep: impl FnMut(&Arc<Stored>) -> bool) -> usize {
        let mut gone = 0;
        for slot in self.slots.iter_mut() {
            if slot.as_ref().is_some_and(|m| !keep(m)) {
                *slot = None;
                gone += 1;
            }
        }
        self.live -= gone;
        self.trim();
        gone
    }

    pub fn clear(&mut self) {
        self.slots.clear();
        self.live = 0;
    }

    /// Every entry, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Arc<Stored>)> {
        self.after(0)
    }

    /// The entries with a sequence number after `after`, oldest first.
    pub fn after(&self, after: u64) -> impl Iterator<Item = (u64, &Arc<Stored>)> {
        let skip = after.saturating_add(1).saturating_sub(self.first);
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        let first = self.first;
        self.slots
            .iter()
            .enumerate()
            .skip(skip)
            .filter_map(move |(i, slot)| slot.as_ref().map(|m| (first + i as u64, m)))
    }

    fn index(&self, seq: u64) -> usize {
        // Callers keep `seq >= first`, and the span is bounded by the
        // unacked backlog, which fits in memory.
        (seq - self.first) as usize
    }

    /// Drops empty slots at both ends, and gives back memory a burst left.
    fn trim(&mut self) {
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.first += 1;
        }
        while let Some(None) = self.slots.back() {
            self.slots.pop_back();
        }
        if self.slots.capacity() > 64 && self.slots.capacity() > 4 * self.slots.len() {
            self.slots.shrink_to(2 * self.slots.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    fn stored(n: i64) -> Arc<Stored> {
        Arc::new(Stored {
            id: uuid::Uuid::now_v7(),
            json: "{}".into(),
            accepted_ms: n,
            segment: AtomicU64::new(1),
        })
    }

    fn seqs(e: &Entries) -> Vec<u64> {
        e.iter().map(|(s, _)| s).collect()
    }

    #[test]
    fn in_order_inserts_index_by_sequence() {
        let mut e = Entries::default();
        for seq in 5..10 {
            e.insert(seq, stored(seq as i64));
        }
        assert_eq!(e.len(), 5);
        assert_eq!(e.get(7).unwrap().accepted_ms, 7);
        assert!(e.get(4).is_none() && e.get(10).is_none());
        assert_eq!(e.after(6).map(|(s, _)| s).collect::<Vec<_>>(), [7, 8, 9]);
        assert_eq!(e.after(0).count(), 5);
        assert_eq!(e.after(u64::MAX).count(), 0);
    }

    #[test]
    fn removing_leaves_holes_until_the_ends_are_trimmed() {
        let mut e = Entries::default();
        for seq in 1..=5 {
            e.insert(seq, stored(0));
        }
        assert!(e.remove(3));
        assert!(!e.remove(3));
        assert_eq!(seqs(&e), [1, 2, 4, 5]);
        assert!(e.remove(1) && e.remove(2));
        assert_eq!(e.first, 4);
        assert_eq!(e.slots.len(), 2);
        assert!(e.remove(5));
        assert_eq!(seqs(&e), [4]);
        assert!(e.remove(4));
        assert!(e.is_empty() && e.slots.is_empty());
        // After emptying, numbering restarts wherever the next insert is.
        e.insert(9, stored(0));
        assert_eq!(seqs(&e), [9]);
    }

    #[test]
    fn older_and_repeated_inserts_from_a_replay_keep_order() {
        let mut e = Entries::default();
        e.insert(10, stored(10));
        e.insert(12, stored(12));
        e.insert(3, stored(3));
        e.insert(10, stored(11));
        assert_eq!(seqs(&e), [3, 10, 12]);
        assert_eq!(e.len(), 3);
        assert_eq!(e.get(10).unwrap().accepted_ms, 11);
    }

    #[test]
    fn retain_expires_and_counts() {
        let mut e = Entries::default();
        for seq in 1..=6 {
            e.insert(seq, stored(seq as i64));
        }
        assert_eq!(e.retain(|m| m.accepted_ms % 2 == 0), 3);
        assert_eq!(seqs(&e), [2, 4, 6]);
        assert_eq!(e.len(), 3);
        e.clear();
        assert!(e.is_empty());
    }
}
