//! A fixed-capacity byte ring.

/// Bytes queued in a fixed buffer, read from the front, written at the
/// back; [`write_at`](Self::write_at) writes beyond the back without making
/// the bytes readable (out-of-order data waiting for a hole to fill).
///
/// The storage is taken when the first byte is written (or given with
/// [`provide`](Self::provide), e.g. from a pool of finished connections'
/// rings), and can be taken back with [`take_storage`](Self::take_storage):
/// a connection that never sends costs no send buffer, and a benchmark's
/// thousands of short connections reuse their rings instead of allocating
/// and zeroing two per connection.
#[derive(Debug, Clone)]
pub struct RingBuffer {
    buf: Box<[u8]>,
    capacity: usize,
    head: usize,
    len: usize,
}

impl RingBuffer {
    /// A ring of `capacity` bytes; its storage comes with the first write.
    pub fn new(capacity: usize) -> RingBuffer {
        RingBuffer {
            buf: Box::default(),
            capacity,
            head: 0,
            len: 0,
        }
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the ring holds its storage yet.
    pub fn has_storage(&self) -> bool {
        self.buf.len() == self.capacity
    }

    /// Gives the ring its storage, if it has none and `storage` is exactly
    /// its capacity (its old contents do not matter: only what is written
    /// is ever read). Returns `storage` when it was not taken.
    pub fn provide(&mut self, storage: Box<[u8]>) -> Option<Box<[u8]>> {
        if self.has_storage() || storage.len() != self.capacity {
            return Some(storage);
        }
        self.buf = storage;
        None
    }

    /// Takes the storage out (the ring is then empty, its capacity kept):
    /// `None` if it never had any.
    pub fn take_storage(&mut self) -> Option<Box<[u8]>> {
        self.head = 0;
        self.len = 0;
        (self.capacity > 0 && self.has_storage()).then(|| core::mem::take(&mut self.buf))
    }

    /// Readable bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Nothing readable.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room after the readable bytes.
    pub fn free(&self) -> usize {
        self.capacity() - self.len
    }

    fn index(&self, offset: usize) -> usize {
        let cap = self.capacity();
        if cap == 0 {
            0
        } else {
            (self.head + offset) % cap
        }
    }

    /// Storage for a ring that gave its back (allocated on first write).
    fn ensure_storage(&mut self) {
        if !self.has_storage() {
            self.buf = vec![0; self.capacity].into_boxed_slice();
        }
    }

    /// Append as much of `data` as fits; returns how much did.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let n = self.write_at(0, data);
        self.len += n;
        n
    }

    /// Write `data` at `offset` bytes past the readable end, without making
    /// it readable; clipped to the free room. Returns the bytes written.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> usize {
        let room = self.free().saturating_sub(offset);
        let n = data.len().min(room);
        if n > 0 {
            self.ensure_storage();
        }
        let mut done = 0;
        while done < n {
            let at = self.index(self.len + offset + done);
            let chunk = (n - done).min(self.capacity() - at);
            self.buf[at..at + chunk].copy_from_slice(&data[done..done + chunk]);
            done += chunk;
        }
        n
    }

    /// The longest contiguous run of free room right after the readable
    /// bytes, to write into in place (then [`commit`](Self::commit) what
    /// was written); allocates the storage if the ring has none.
    pub fn free_run_mut(&mut self) -> &mut [u8] {
        if self.free() == 0 {
            return &mut [];
        }
        self.ensure_storage();
        let at = self.index(self.len);
        let n = self.free().min(self.capacity() - at);
        &mut self.buf[at..at + n]
    }

    /// Make `n` bytes written by [`write_at`](Self::write_at) readable.
    pub fn commit(&mut self, n: usize) {
        self.len += n.min(self.free());
    }

    /// The longest contiguous run of readable bytes starting `offset` bytes
    /// from the front (empty past the end).
    pub fn peek_at(&self, offset: usize) -> &[u8] {
        if offset >= self.len {
            return &[];
        }
        let at = self.index(offset);
        let n = (self.len - offset).min(self.capacity() - at);
        &self.buf[at..at + n]
    }

    /// Copy readable bytes into `out` and drop them; returns the count.
    pub fn pop_into(&mut self, out: &mut [u8]) -> usize {
        let mut done = 0;
        while done < out.len() {
            let chunk = self.peek_at(0);
            let n = chunk.len().min(out.len() - done);
            if n == 0 {
                break;
            }
            out[done..done + n].copy_from_slice(&chunk[..n]);
            self.discard(n);
            done += n;
        }
        done
    }

    /// Drop up to `n` readable bytes from the front.
    pub fn discard(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head = self.index(n);
        self.len -= n;
        // The head stays where it is even when the ring empties: bytes
        // written past the end by `write_at` are placed relative to it.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_free_run_ends_at_the_wrap_and_commits_in_place() {
        let mut r = RingBuffer::new(8);
        assert_eq!(r.free_run_mut().len(), 8);
        r.push(b"abcdef");
        r.discard(4);
        // readable "ef" at 4..6: free runs 6..8, then 0..4
        let run = r.free_run_mut();
        assert_eq!(run.len(), 2);
        run.copy_from_slice(b"gh");
        r.commit(2);
        let run = r.free_run_mut();
        assert_eq!(run.len(), 4);
        run[..1].copy_from_slice(b"i");
        r.commit(1);
        let mut out = [0u8; 8];
        assert_eq!(r.pop_into(&mut out), 5);
        assert_eq!(&out[..5], b"efghi");
        r.push(b"12345678");
        assert!(r.free_run_mut().is_empty());
    }

    #[test]
    fn wraps_and_writes_out_of_order() {
        let mut r = RingBuffer::new(8);
        assert_eq!(r.push(b"abcdef"), 6);
        let mut out = [0u8; 4];
        assert_eq!(r.pop_into(&mut out), 4);
        assert_eq!(&out, b"abcd");
        // "ef" at 4..6; write "ijk" two bytes past the end, then "gh".
        assert_eq!(r.write_at(2, b"ijk"), 3);
        assert_eq!(r.write_at(0, b"gh"), 2);
        r.commit(5);
        assert_eq!(r.len(), 7);
        assert_eq!(r.peek_at(0), b"efgh");
        assert_eq!(r.peek_at(4), b"ijk");
        assert_eq!(r.push(b"xyz"), 1);
        let mut all = [0u8; 8];
        assert_eq!(r.pop_into(&mut all), 8);
        assert_eq!(&all, b"efghijkx");
        assert!(r.is_empty());
        assert_eq!(r.write_at(9, b"a"), 0);
        // Emptying the ring keeps data written ahead of its end in place.
        assert_eq!(r.write_at(1, b"b"), 1);
        r.write_at(0, b"a");
        r.commit(2);
        let mut two = [0u8; 2];
        assert_eq!(r.pop_into(&mut two), 2);
        assert_eq!(&two, b"ab");
    }

    #[test]
    fn storage_comes_late_and_goes_back() {
        let mut r = RingBuffer::new(4);
        assert!(!r.has_storage());
        assert_eq!((r.capacity(), r.free()), (4, 4));
        // The wrong size is refused; the right one taken, whatever it holds.
        assert!(r.provide(vec![7; 3].into_boxed_slice()).is_some());
        assert!(r.provide(vec![7; 4].into_boxed_slice()).is_none());
        assert!(r.has_storage());
        assert_eq!(r.push(b"xy"), 2);
        assert_eq!(r.peek_at(0), b"xy");
        let back = r.take_storage().expect("storage");
        assert_eq!(back.len(), 4);
        assert!(r.is_empty() && !r.has_storage());
        // Written again: allocated on demand.
        assert_eq!(r.push(b"abcde"), 4);
        assert_eq!(r.peek_at(0), b"abcd");
    }
}
