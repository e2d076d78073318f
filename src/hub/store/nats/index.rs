//! The hub's in-memory index of the JetStream stream: a small entry per
//! stored message (its sequence number, id, and its target or source) and
//! the host cursors mirrored from the hosts bucket. It is a cache: every hub
//! rebuilds it from JetStream at start and keeps it current from pushes, so
//! answering "what is in this host's queue" needs no round trip; only the
//! bodies are read back from JetStream.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A host's cursor as stored in the hosts bucket (one JSON value per host).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Cursor {
    /// `None` for a host that never registered or was deleted.
    pub registered_at: Option<Timestamp>,
    /// Broadcasts with a larger sequence number are for this host.
    pub since: u64,
    /// Everything up to here is done for this host (acked or dropped).
    pub floor: u64,
    /// Acked sequence numbers above the floor.
    pub acked: BTreeSet<u64>,
}

/// One stored message, as the index knows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// For one host.
    To(String),
    /// For every registered host but `source`.
    All { source: String },
}

#[derive(Default)]
pub struct Index {
    targeted: HashMap<String, BTreeMap<u64, Uuid>>,
    broadcasts: BTreeMap<u64, (String, Uuid)>,
    ids: HashMap<Uuid, u64>,
    /// Cursors and the bucket revision each was read at.
    cursors: HashMap<String, (Cursor, u64)>,
    /// The newest sequence number indexed.
    pub last_seq: u64,
}

impl Index {
    /// Notes a message from the stream; in sequence order.
    pub fn add(&mut self, seq: u64, id: Uuid, stored: Stored) {
        match stored {
            Stored::To(host) => {
                self.targeted.entry(host).or_default().insert(seq, id);
            }
            Stored::All { source } => {
                self.broadcasts.insert(seq, (source, id));
            }
        }
        self.ids.insert(id, seq);
        self.last_seq = self.last_seq.max(seq);
    }

    /// Forgets every message below `first` (expired from the stream);
    /// returns how many.
    pub fn drop_below(&mut self, first: u64) -> usize {
        let Index {
            targeted,
            broadcasts,
            ids,
            ..
        } = self;
        let mut gone = Vec::new();
        for queue in targeted.values_mut() {
            let keep = queue.split_off(&first);
            gone.extend(std::mem::replace(queue, keep).into_values());
        }
        targeted.retain(|_, q| !q.is_empty());
        let keep = broadcasts.split_off(&first);
        gone.extend(
            std::mem::replace(broadcasts, keep)
                .into_values()
                .map(|(_, id)| id),
        );
        let dropped = gone.len();
        for id in gone {
            ids.remove(&id);
        }
        dropped
    }

    /// Forgets the host's targeted messages up to `through` (purged).
    pub fn drop_targeted(&mut self, host: &str, through: u64) {
        if let Some(queue) = self.targeted.get_mut(host) {
            let keep = queue.split_off(&(through + 1));
            for id in std::mem::replace(queue, keep).into_values() {
                self.ids.remove(&id);
            }
            if queue.is_empty() {
                self.targeted.remove(host);
            }
        }
    }

    /// Applies a cursor from the bucket; false if an equal or newer
    /// revision is already known.
    pub fn set_cursor(&mut self, host: &str, cursor: Cursor, revision: u64) -> bool {
        match self.cursors.get(host) {
            Some((_, known)) if *known >= revision => false,
            _ => {
                self.cursors.insert(host.to_string(), (cursor, revision));
                true
            }
        }
    }

    pub fn cursor(&self, host: &str) -> Option<&(Cursor, u64)> {
        self.cursors.get(host)
    }

    pub fn is_registered(&self, host: &str) -> bool {
        self.cursors
            .get(host)
            .is_some_and(|(c, _)| c.registered_at.is_some())
    }

    /// The host's queue after `after`, in order, at most `limit`.
    pub fn registered_count(&self) -> usize {
        self.cursors
            .values()
            .filter(|(c, _)| c.registered_at.is_some())
            .count()
    }

    pub fn queue(&self, host: &str, after: u64, limit: usize) -> Vec<u64> {
        self.queued(host, after).take(limit).collect()
    }

    /// How many messages the host's queue holds.
    pub fn pending(&self, host: &str) -> usize {
        self.queued(host, 0).count()
    }

    /// The sequence numbers of `ids` that are in the host's queue.
    pub fn pending_of(&self, host: &str, ids: &[Uuid]) -> Vec<u64> {
        let empty = Cursor::default();
        let cursor = self.cursors.get(host).map(|(c, _)| c).unwrap_or(&empty);
        let mut seqs: Vec<u64> = ids
            .iter()
            .filter_map(|id| self.ids.get(id).copied())
            .filter(|seq| self.is_queued(host, cursor, *seq))
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
        seqs
    }

    /// `cursor` with `acked` added and its floor moved past every acked
    /// message at the head of the host's queue.
    pub fn acked(&self, host: &str, cursor: &Cursor, acked: &[u64]) -> Cursor {
        let mut next = cursor.clone();
        next.acked.extend(acked.iter().filter(|s| **s > next.floor));
        let all = Cursor {
            acked: BTreeSet::new(),
            ..next.clone()
        };
        let head: Vec<u64> = self.queued_with(host, &all, 0).collect();
        for seq in head {
            if !next.acked.remove(&seq) {
                break;
            }
            next.floor = seq;
        }
        next
    }

    /// Every host with a cursor or targeted messages, sorted.
    pub fn hosts(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .cursors
            .keys()
            .chain(self.targeted.keys())
            .cloned()
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    fn queued<'a>(&'a self, host: &'a str, after: u64) -> Box<dyn Iterator<Item = u64> + 'a> {
        match self.cursors.get(host) {
            Some((c, _)) => self.queued_with(host, c, after),
            None => Box::new(
                self.targeted
                    .get(host)
                    .into_iter()
                    .flat_map(move |q| q.range(after + 1..).map(|(s, _)| *s)),
            ),
        }
    }

    fn queued_with<'a>(
        &'a self,
        host: &'a str,
        c: &'a Cursor,
        after: u64,
    ) -> Box<dyn Iterator<Item = u64> + 'a> {
        let from = after.max(c.floor) + 1;
        let targeted = self
            .targeted
            .get(host)
            .into_iter()
            .flat_map(move |q| q.range(from..).map(|(s, _)| *s));
        let broadcasts = c.registered_at.is_some().then(|| {
            self.broadcasts
                .range(from.max(c.since + 1)..)
                .filter(move |(_, (source, _))| source != host)
                .map(|(s, _)| *s)
        });
        let merged = Merge {
            a: targeted.peekable(),
            b: broadcasts.into_iter().flatten().peekable(),
        };
        Box::new(merged.filter(move |s| !c.acked.contains(s)))
    }

    fn is_queued(&self, host: &str, c: &Cursor, seq: u64) -> bool {
        if seq <= c.floor || c.acked.contains(&seq) {
            return false;
        }
        if self
            .targeted
            .get(host)
            .is_some_and(|q| q.contains_key(&seq))
        {
            return true;
        }
        c.registered_at.is_some()
            && seq > c.since
            && self
                .broadcasts
                .get(&seq)
                .is_some_and(|(source, _)| source != host)
    }
}

/// Two ascending sequences merged into one.
struct Merge<A: Iterator<Item = u64>, B: Iterator<Item = u64>> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<A: Iterator<Item = u64>, B: Iterator<Item = u64>> Iterator for Merge<A, B> {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) if x <= y => self.a.next(),
            (Some(_), Some(_)) => self.b.next(),
            (Some(_), None) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered(since: u64) -> Cursor {
        Cursor {
            registered_at: Some(Timestamp::UNIX_EPOCH),
            since,
            ..Cursor::default()
        }
    }

    fn all(source: &str) -> Stored {
        Stored::All {
            source: source.into(),
        }
    }

    #[test]
    fn a_queue_is_targeted_and_later_broadcasts_but_not_its_own() {
        let mut ix = Index::default();
        ix.add(1, Uuid::now_v7(), all("b"));
        ix.add(2, Uuid::now_v7(), Stored::To("a".into()));
        ix.set_cursor("a", registered(2), 1);
        ix.add(3, Uuid::now_v7(), all("b"));
        ix.add(4, Uuid::now_v7(), all("a"));
        ix.add(5, Uuid::now_v7(), Stored::To("c".into()));
        assert_eq!(ix.queue("a", 0, 10), vec![2, 3]);
        assert_eq!(ix.queue("a", 2, 10), vec![3]);
        assert_eq!(
            ix.queue("c", 0, 10),
            vec![5],
            "never registered: targeted only"
        );
        assert_eq!(ix.hosts(), vec!["a", "c"]);
    }

    #[test]
    fn acks_move_the_floor_over_the_acked_head() {
        let mut ix = Index::default();
        let ids: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
        ix.set_cursor("a", registered(0), 1);
        for (i, id) in ids.iter().enumerate() {
            ix.add(i as u64 + 1, *id, all("b"));
        }
        let seqs = ix.pending_of("a", &[ids[1], ids[3], Uuid::now_v7()]);
        assert_eq!(seqs, vec![2, 4]);
        let c = ix.acked("a", &registered(0), &seqs);
        assert_eq!((c.floor, c.acked.len()), (0, 2));
        ix.set_cursor("a", c.clone(), 2);
        assert_eq!(ix.queue("a", 0, 10), vec![1, 3]);
        let c = ix.acked("a", &c, &ix.pending_of("a", &[ids[0]]));
        assert_eq!((c.floor, c.acked.len()), (2, 1));
        ix.set_cursor("a", c, 3);
        assert_eq!(ix.pending("a"), 1);
        assert!(ix.pending_of("a", &[ids[0]]).is_empty(), "acked twice");
    }

    #[test]
    fn expired_and_purged_messages_leave_the_index() {
        let mut ix = Index::default();
        ix.add(1, Uuid::now_v7(), Stored::To("a".into()));
        ix.add(2, Uuid::now_v7(), all("b"));
        ix.add(3, Uuid::now_v7(), Stored::To("a".into()));
        ix.set_cursor("a", registered(0), 1);
        ix.drop_below(2);
        assert_eq!(ix.queue("a", 0, 10), vec![2, 3]);
        ix.drop_targeted("a", 3);
        assert_eq!(ix.queue("a", 0, 10), vec![2]);
        assert!(!ix.set_cursor("a", registered(0), 1), "old revision");
    }
}
