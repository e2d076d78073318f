//! A host's cursor into the log: where it registered, its ack floor and its
//! acks above the floor, plus two small indexes derived from the log (its
//! pending targeted messages and its own broadcasts above the floor) that
//! make its queue depth a subtraction instead of a scan.
//!
//! A cursor costs nothing per broadcast: a broadcast is the host's when it
//! came after the host registered and not from the host, which the log
//! already says. Only acks above the floor, targeted messages and the
//! host's own broadcasts take a slot (8 bytes) each, and the floor moves up
//! past them as they are acked.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};

use jiff::Timestamp;

#[derive(Debug, Default)]
pub struct Cursor {
    /// `None` while the host is not registered: broadcasts skip it, but
    /// messages targeted at it still queue.
    pub(super) registered_at: Option<Timestamp>,
    /// Broadcasts after this sequence number are the host's (while registered).
    pub(super) reg: u64,
    /// Every message up to here is done for the host.
    pub(super) floor: u64,
    /// Acked sequence numbers above the floor, sorted.
    pub(super) acked: VecDeque<u64>,
    /// The broadcasts among them (the log may forget them once acked, so
    /// their kind is kept here for the queue-depth arithmetic).
    acked_broadcasts: VecDeque<u64>,
    /// Pending messages addressed to the host by name above the floor, sorted.
    pub(super) targeted: VecDeque<u64>,
    /// The host's own broadcasts above the floor, sorted.
    pub(super) own: VecDeque<u64>,
    /// Unix ms; 0 = never seen. Changed under a shared lock, hence atomic.
    pub(super) last_seen_ms: AtomicI64,
}

impl Cursor {
    /// A host first heard of when the log's newest sequence number was `head`.
    pub fn new(head: u64) -> Cursor {
        Cursor {
            floor: head,
            reg: head,
            ..Cursor::default()
        }
    }

    pub fn is_registered(&self) -> bool {
        self.registered_at.is_some()
    }

    /// Where the host's broadcasts begin: after its floor and its registration.
    pub fn broadcast_floor(&self) -> u64 {
        self.floor.max(self.reg)
    }

    pub fn is_acked(&self, seq: u64) -> bool {
        self.acked.binary_search(&seq).is_ok()
    }

    pub fn is_targeted(&self, seq: u64) -> bool {
        self.targeted.binary_search(&seq).is_ok()
    }

    /// Own broadcasts after `seq`.
    pub fn own_after(&self, seq: u64) -> usize {
        count_after(&self.own, seq)
    }

    /// Acked broadcasts after `seq`.
    pub fn acked_broadcasts_after(&self, seq: u64) -> usize {
        count_after(&self.acked_broadcasts, seq)
    }

    /// Queues a message addressed to the host.
    pub fn add_targeted(&mut self, seq: u64) {
        if seq > self.floor && !self.is_acked(seq) {
            insert_sorted(&mut self.targeted, seq);
        }
    }

    pub fn add_own(&mut self, seq: u64) {
        if seq > self.floor {
            insert_sorted(&mut self.own, seq);
        }
    }

    /// Records an ack of `seq`, which must be pending for the host; false if
    /// it was not a pending targeted message when `targeted` says it is one.
    pub fn ack(&mut self, seq: u64, targeted: bool) -> bool {
        if targeted {
            match self.targeted.binary_search(&seq) {
                Ok(i) => drop(self.targeted.remove(i)),
                Err(_) => return false,
            }
        } else {
            insert_sorted(&mut self.acked_broadcasts, seq);
        }
        insert_sorted(&mut self.acked, seq);
        true
    }

    /// Raises the floor to `floor` and forgets what it passed.
    pub fn raise_floor(&mut self, floor: u64) {
        self.floor = self.floor.max(floor);
        let lists = [
            &mut self.acked,
            &mut self.acked_broadcasts,
            &mut self.targeted,
            &mut self.own,
        ];
        for list in lists {
            while list.front().is_some_and(|s| *s <= self.floor) {
                list.pop_front();
            }
        }
    }

    /// Moves the floor up by one if `next` is the next sequence number and
    /// the host acked it; true if it moved.
    pub fn pass_acked(&mut self, next: u64) -> bool {
        if self.acked.front() == Some(&next) {
            self.acked.pop_front();
            if self.acked_broadcasts.front() == Some(&next) {
                self.acked_broadcasts.pop_front();
            }
            self.floor = next;
            return true;
        }
        false
    }

    /// Replaces the cursor's stated part (a segment header's `host` record);
    /// `is_broadcast` tells which acks were of broadcasts.
    pub fn restate(
        &mut self,
        registered_at: Option<Timestamp>,
        reg: u64,
        floor: u64,
        acked: &[u64],
        is_broadcast: impl Fn(u64) -> bool,
    ) {
        self.registered_at = registered_at;
        self.reg = reg;
        self.floor = floor;
        let mut acked: Vec<u64> = acked.iter().copied().filter(|s| *s > floor).collect();
        acked.sort_unstable();
        acked.dedup();
        self.acked_broadcasts = acked.iter().copied().filter(|s| is_broadcast(*s)).collect();
        self.acked = acked.into();
        let (floor, acked) = (self.floor, &self.acked);
        self.targeted
            .retain(|s| *s > floor && acked.binary_search(s).is_err());
        self.own.retain(|s| *s > floor);
    }

    /// Deregisters and drops everything queued up to `through`.
    pub fn delete(&mut self, through: u64) {
        self.registered_at = None;
        self.acked.clear();
        self.acked_broadcasts.clear();
        self.raise_floor(through);
    }

    pub fn seen(&self, at_ms: i64) {
        self.last_seen_ms.fetch_max(at_ms, Ordering::Relaxed);
    }

    pub fn last_seen(&self) -> Option<Timestamp> {
        match self.last_seen_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Timestamp::from_millisecond(ms).ok(),
        }
    }
}

fn count_after(list: &VecDeque<u64>, seq: u64) -> usize {
    list.len() - list.partition_point(|s| *s <= seq)
}

/// Inserts keeping `list` sorted and free of repeats; appending is the usual case.
fn insert_sorted(list: &mut VecDeque<u64>, seq: u64) {
    if list.back().is_none_or(|last| *last < seq) {
        list.push_back(seq);
    } else if let Err(i) = list.binary_search(&seq) {
        list.insert(i, seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_and_floor_keep_lists_sorted_and_above_the_floor() {
        let mut c = Cursor::new(2);
        for s in [5, 3, 9, 5] {
            c.add_targeted(s);
        }
        assert_eq!(c.targeted, [3, 5, 9]);
        assert!(c.ack(5, true));
        assert!(
            !c.ack(5, true),
            "a second ack of a targeted message finds nothing"
        );
        assert!(c.ack(4, false));
        assert_eq!(c.acked, [4, 5]);
        assert!(!c.pass_acked(3));
        c.raise_floor(4);
        assert_eq!((c.floor, c.targeted.len()), (4, 1));
        assert!(c.pass_acked(5));
        c.add_own(5);
        c.add_own(11);
        assert_eq!(
            (c.own_after(5), c.own_after(10), c.own_after(11)),
            (1, 1, 0)
        );
        c.restate(None, 0, 6, &[10, 9, 2], |s| s == 10);
        assert_eq!(c.acked_broadcasts_after(0), 1);
        assert_eq!(
            (c.acked, c.targeted),
            (VecDeque::from([9, 10]), VecDeque::new())
        );
    }
}
