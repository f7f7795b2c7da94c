//! Socket buffers: a byte ring whose storage comes with its first byte (or
//! from a pool of finished connections' rings), the assembler that
//! tracks out-of-order data written beyond the ring's readable part, and a
//! ring of fixed-size slots for whole datagrams and frames.

mod assembler;
mod ring;
mod slots;

pub use assembler::{Assembler, TooManyHoles};
pub use ring::RingBuffer;
pub(crate) use slots::SlotRing;

/// Ring storage given back by finished connections, for new ones: a
/// short connection (a benchmark's crr) then neither allocates nor zeroes
/// its two rings. Holds at most `max` buffers; sizes may differ (a ring
/// takes only one of its own capacity).
#[derive(Debug, Default)]
pub struct StoragePool {
    bufs: Vec<Box<[u8]>>,
    max: usize,
    /// Rings given storage from the pool, so far.
    pub provided: u64,
    /// Rings whose storage came back to the pool, so far.
    pub reclaimed: u64,
}

impl StoragePool {
    /// A pool of at most `max` buffers (its list allocated now).
    pub fn new(max: usize) -> StoragePool {
        StoragePool {
            bufs: Vec::with_capacity(max),
            max,
            provided: 0,
            reclaimed: 0,
        }
    }

    /// Buffers held.
    pub fn len(&self) -> usize {
        self.bufs.len()
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// Keeps `buf` for a later ring (dropped when the pool is full).
    pub fn put(&mut self, buf: Box<[u8]>) {
        if self.bufs.len() < self.max {
            self.bufs.push(buf);
        }
    }

    /// Gives `ring` storage from the pool if it has none: one of its
    /// capacity among the last few kept.
    pub fn provide(&mut self, ring: &mut RingBuffer) {
        if ring.has_storage() || ring.capacity() == 0 {
            return;
        }
        let from = self.bufs.len().saturating_sub(8);
        if let Some(i) = (from..self.bufs.len())
            .rev()
            .find(|&i| self.bufs[i].len() == ring.capacity())
        {
            let buf = self.bufs.swap_remove(i);
            match ring.provide(buf) {
                Some(back) => self.put(back),
                None => self.provided += 1,
            }
        }
    }

    /// Takes `ring`'s storage into the pool.
    pub fn reclaim(&mut self, ring: &mut RingBuffer) {
        if let Some(buf) = ring.take_storage() {
            self.reclaimed += 1;
            self.put(buf);
        }
    }
}
