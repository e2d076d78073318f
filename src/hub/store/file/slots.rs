//! The log index's storage: fixed chunks of `CHUNK` entry slots indexed by
//! sequence number, so an entry costs its own size and no pointer, growth
//! never doubles a huge buffer, and a chunk nobody needs can be freed whole.

use std::collections::VecDeque;

use super::log::Entry;

/// Slots per chunk.
pub const CHUNK: usize = 4096;

pub enum Chunk {
    Live(Vec<Entry>),
    /// Nothing in it can be asked for; `bcount` and `t` of its last slot.
    Freed {
        bcount: u32,
        t: i64,
    },
}

/// The slots, by sequence number.
pub struct Slots {
    /// Sequence number of the first slot of `chunks[0]`.
    pub first: u64,
    pub chunks: VecDeque<Chunk>,
}

impl Slots {
    /// One past the last slot.
    pub fn end(&self) -> u64 {
        let unused = match self.chunks.back() {
            Some(Chunk::Live(v)) => CHUNK - v.len(),
            _ => 0,
        };
        self.first + (self.chunks.len() * CHUNK - unused) as u64
    }

    pub fn index(&self, seq: u64) -> Option<(usize, usize)> {
        let i = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        Some((i / CHUNK, i % CHUNK))
    }

    /// The slot of `seq`, hole or not.
    pub fn slot(&self, seq: u64) -> Option<&Entry> {
        let (c, i) = self.index(seq)?;
        match self.chunks.get(c)? {
            Chunk::Live(v) => v.get(i),
            Chunk::Freed { .. } => None,
        }
    }

    pub fn slot_mut(&mut self, seq: u64) -> Option<&mut Entry> {
        let (c, i) = self.index(seq)?;
        match self.chunks.get_mut(c)? {
            Chunk::Live(v) => v.get_mut(i),
            Chunk::Freed { .. } => None,
        }
    }

    pub fn push(&mut self, e: Entry) {
        match self.chunks.back_mut() {
            Some(Chunk::Live(v)) if v.len() < CHUNK => v.push(e),
            _ => {
                let mut v = Vec::with_capacity(CHUNK);
                v.push(e);
                self.chunks.push_back(Chunk::Live(v));
            }
        }
    }

    pub fn last(&self) -> Option<(u32, i64)> {
        match self.chunks.back()? {
            Chunk::Live(v) => v.last().map(|e| (e.bcount, e.t)),
            Chunk::Freed { bcount, t } => Some((*bcount, *t)),
        }
    }
}
