//! A ring of fixed-size datagram slots, allocated once.
//!
//! Each entry is a datagram (at most `slot` bytes) and a little metadata.
//! The payloads live in one buffer of `capacity * slot` bytes, so queueing
//! and dequeueing a datagram is one copy and no allocation: a UDP socket's
//! receive queue, the frames waiting for ARP and the frames the interface
//! makes itself (ARP, ICMP) are all this.

/// The ring.
#[derive(Debug, Clone)]
pub(crate) struct SlotRing<M: Copy> {
    slot: usize,
    data: Vec<u8>,
    meta: Vec<Option<(M, usize)>>,
    head: usize,
    len: usize,
}

impl<M: Copy> SlotRing<M> {
    /// `capacity` entries of at most `slot` bytes each.
    pub(crate) fn new(capacity: usize, slot: usize) -> SlotRing<M> {
        SlotRing {
            slot,
            data: vec![0; capacity * slot],
            meta: vec![None; capacity],
            head: 0,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn capacity(&self) -> usize {
        self.meta.len()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len == self.capacity()
    }

    fn index(&self, k: usize) -> usize {
        (self.head + k) % self.capacity().max(1)
    }

    /// Append; `false` (and nothing stored) if full or `payload` is longer
    /// than a slot.
    pub(crate) fn push(&mut self, meta: M, payload: &[u8]) -> bool {
        if self.is_full() || payload.len() > self.slot {
            return false;
        }
        let i = self.index(self.len);
        self.data[i * self.slot..][..payload.len()].copy_from_slice(payload);
        self.meta[i] = Some((meta, payload.len()));
        self.len += 1;
        true
    }

    /// Append an entry that `f` writes into its slot (of `slot` bytes),
    /// returning its length; `false` if full (then `f` is not called) or
    /// if `f` returned 0 or more than a slot.
    pub(crate) fn push_with(&mut self, meta: M, f: impl FnOnce(&mut [u8]) -> usize) -> bool {
        if self.is_full() {
            return false;
        }
        let i = self.index(self.len);
        let n = f(&mut self.data[i * self.slot..][..self.slot]);
        if n == 0 || n > self.slot {
            return false;
        }
        self.meta[i] = Some((meta, n));
        self.len += 1;
        true
    }

    /// Whether the metadata of any entry satisfies `f`.
    pub(crate) fn any(&self, mut f: impl FnMut(&M) -> bool) -> bool {
        (0..self.len).any(|k| self.meta[self.index(k)].is_some_and(|(m, _)| f(&m)))
    }

    /// How many entries' metadata satisfy `f`.
    pub(crate) fn count(&self, mut f: impl FnMut(&M) -> bool) -> usize {
        (0..self.len)
            .filter(|&k| self.meta[self.index(k)].is_some_and(|(m, _)| f(&m)))
            .count()
    }

    /// The oldest entry.
    pub(crate) fn front(&self) -> Option<(M, &[u8])> {
        if self.len == 0 {
            return None;
        }
        let (m, n) = self.meta[self.head]?;
        Some((m, &self.data[self.head * self.slot..][..n]))
    }

    /// Drop the oldest entry.
    pub(crate) fn pop(&mut self) {
        if self.len > 0 {
            self.meta[self.head] = None;
            self.head = self.index(1);
            self.len -= 1;
        }
    }

    /// Move the oldest entry to the back (one pass over the ring with this
    /// and [`pop`](Self::pop) keeps the order of what stays).
    pub(crate) fn requeue_front(&mut self) {
        if self.len == 0 {
            return;
        }
        let from = self.head;
        let to = self.index(self.len);
        if let Some((_, n)) = self.meta[from] {
            self.data
                .copy_within(from * self.slot..from * self.slot + n, to * self.slot);
        }
        self.meta[to] = self.meta[from];
        if to != from {
            self.meta[from] = None;
        }
        self.head = self.index(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_bounded_and_requeue_keeps_order() {
        let mut r: SlotRing<u8> = SlotRing::new(3, 4);
        assert!(!r.push(0, b"too long"));
        for i in 1..=3u8 {
            assert!(r.push(i, &vec![i; usize::from(i)]));
        }
        assert!(r.is_full());
        assert!(!r.push(4, b"x"));
        // Keep the odd ones, in order.
        for _ in 0..r.len() {
            let (m, _) = r.front().unwrap();
            if m % 2 == 1 {
                r.requeue_front();
            } else {
                r.pop();
            }
        }
        assert_eq!(r.len(), 2);
        assert_eq!(r.front(), Some((1, &[1u8][..])));
        r.pop();
        assert!(r.push(5, b"five"));
        assert_eq!(r.front(), Some((3, &[3u8, 3, 3][..])));
        r.pop();
        assert_eq!(r.front(), Some((5, &b"five"[..])));
        r.pop();
        r.pop();
        assert_eq!(r.front(), None);
        let mut z: SlotRing<u8> = SlotRing::new(0, 4);
        assert!(!z.push(1, b""));
        z.requeue_front();
        z.pop();
    }
}
