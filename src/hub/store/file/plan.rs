//! Planning a group of writer requests: turning them, in order, into the
//! records that say what happens (a registration, a message with its
//! sequence number, the acks that find something, a deletion), from the
//! model as it stands plus what the group itself planned before. The writer
//! then writes these records and applies them; planning changes nothing.

use std::collections::HashSet;

use jiff::Timestamp;
use uuid::Uuid;

use super::model::Model;
use super::records::{AckRecord, Deletion, MsgRecord, Record, Registration};
use super::writer::Job;
use crate::api::ItemStatus;
use crate::hub::store::Incoming;

/// Turns a group's jobs into records, in order.
pub struct Planner<'m, 'w> {
    model: &'m Model,
    pub next_seq: u64,
    t: i64,
    /// Ids accepted since this time are duplicates.
    window_start: i64,
    /// Hosts this group registers.
    registered: HashSet<&'w str>,
    /// Hosts this group deletes.
    deleted: HashSet<&'w str>,
    /// Ids this group accepts.
    seen: HashSet<Uuid>,
    pub records: Vec<Record<'w>>,
}

impl<'m, 'w> Planner<'m, 'w> {
    pub fn new(model: &'m Model, next_seq: u64, t: i64, window_start: i64) -> Self {
        Planner {
            model,
            next_seq,
            t,
            window_start,
            registered: HashSet::new(),
            deleted: HashSet::new(),
            seen: HashSet::with_capacity(1024),
            records: Vec::new(),
        }
    }

    pub fn plan(&mut self, jobs: &'w mut [Job]) {
        for job in jobs {
            match job {
                Job::Append {
                    items,
                    statuses,
                    seqs,
                    ..
                } => {
                    let items: &'w Vec<Incoming> = items;
                    for (i, item) in items.iter().enumerate() {
                        statuses.push(self.message(item, i, seqs));
                    }
                }
                Job::Register(host, _) => {
                    let host: &'w String = host;
                    self.register(host);
                }
                Job::Ack(host, ids, _, at) => {
                    let seqs = self.model.pending_ids(host, ids);
                    if !seqs.is_empty() {
                        *at = Some(self.records.len());
                        let host: &'w String = host;
                        self.records.push(Record::Ack(AckRecord {
                            host: host.as_str().into(),
                            seqs,
                        }));
                    }
                }
                Job::Delete(host, _, at) => {
                    let host: &'w String = host;
                    let in_group = self.registered.remove(host.as_str());
                    let known = self.model.cursor(host).is_some_and(|c| c.is_registered())
                        || self
                            .model
                            .host(host)
                            .is_some_and(|h| self.model.pending(h) > 0);
                    if (known && !self.deleted.contains(host.as_str())) || in_group {
                        *at = Some(self.records.len());
                        self.deleted.insert(host);
                        let through = self.next_seq - 1;
                        self.records.push(Record::Delete(Deletion {
                            host: host.as_str().into(),
                            through,
                        }));
                    }
                }
            }
        }
    }

    /// Registers `host` unless it is (or this group already did).
    fn register(&mut self, host: &'w str) {
        let registered = self.model.cursor(host).is_some_and(|c| c.is_registered())
            && !self.deleted.contains(host);
        if registered || !self.registered.insert(host) {
            return;
        }
        let at = Timestamp::from_millisecond(self.t).unwrap_or_else(|_| Timestamp::now());
        tracing::info!(%host, "host registered");
        let after = self.next_seq - 1;
        self.records.push(Record::Register(Registration {
            host: host.into(),
            at,
            after,
        }));
    }

    fn message(
        &mut self,
        item: &'w Incoming,
        i: usize,
        seqs: &mut Vec<(usize, u64)>,
    ) -> ItemStatus {
        self.register(&item.source);
        if self.seen.contains(&item.id) || self.model.is_duplicate(&item.id, self.window_start) {
            return ItemStatus::Duplicate;
        }
        self.seen.insert(item.id);
        let seq = self.next_seq;
        self.next_seq += 1;
        seqs.push((i, seq));
        self.records.push(Record::Msg(MsgRecord {
            seq,
            id: item.id,
            t: self.t,
            from: item.source.as_str().into(),
            to: item.target.as_deref().map(|t| vec![t.into()]),
            msg: &item.json,
        }));
        ItemStatus::Accepted
    }
}
