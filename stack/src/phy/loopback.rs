//! Two in-memory devices joined back to back, for tests.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use super::{Device, DeviceCaps};

/// One direction of the link: frames in flight (a buffer and the frame's
/// length in it), and spare buffers so that a running test does not
/// allocate per frame. Buffers keep their full size: a transmit hands out
/// one as it is, like a device's transmit buffer (nothing zeroes it).
#[derive(Debug, Default)]
struct Wire {
    frames: VecDeque<(Vec<u8>, usize)>,
    spare: Vec<Vec<u8>>,
    dropped: u64,
}

/// One end of an in-memory link. What one end transmits, the other
/// receives, in order, after the sender's [`Device::flush`]; a direction
/// holds at most `queue` frames, and a transmit into a full direction is
/// dropped (counted by [`Loopback::dropped`]), like a NIC ring that
/// overflows.
#[derive(Debug)]
pub struct Loopback {
    caps: DeviceCaps,
    queue: usize,
    rx: Rc<RefCell<Wire>>,
    tx: Rc<RefCell<Wire>>,
    /// Frames committed since the last flush.
    pending: Vec<(Vec<u8>, usize)>,
    /// Frames that may be committed between two flushes (a transmit ring's
    /// size); `transmit` refuses more.
    tx_ring: usize,
}

impl Loopback {
    /// A pair of ends joined to each other, each direction holding at most
    /// `queue` frames of at most `mtu` bytes of IP packet.
    pub fn pair(mtu: usize, queue: usize) -> (Loopback, Loopback) {
        let a = Rc::new(RefCell::new(Wire::default()));
        let b = Rc::new(RefCell::new(Wire::default()));
        let caps = DeviceCaps::mtu(mtu);
        let end = |rx: &Rc<RefCell<Wire>>, tx: &Rc<RefCell<Wire>>| Loopback {
            caps,
            queue,
            rx: Rc::clone(rx),
            tx: Rc::clone(tx),
            pending: Vec::new(),
            tx_ring: usize::MAX,
        };
        (end(&a, &b), end(&b, &a))
    }

    /// Let at most `frames` be committed between two flushes, like a
    /// transmit ring of that size: [`Device::transmit`] then returns
    /// `false` until the next [`Device::flush`].
    pub fn set_tx_ring(&mut self, frames: usize) {
        self.tx_ring = frames;
    }

    /// Frames waiting to be received at this end.
    pub fn rx_queued(&self) -> usize {
        self.rx.borrow().frames.len()
    }

    /// Frames this end transmitted that the link dropped because the other
    /// end's queue was full.
    pub fn dropped(&self) -> u64 {
        self.tx.borrow().dropped
    }
}

impl Device for Loopback {
    fn caps(&self) -> DeviceCaps {
        self.caps
    }

    fn receive<F: FnMut(&[u8])>(&mut self, budget: usize, mut f: F) -> usize {
        let mut n = 0;
        while n < budget {
            let Some((frame, len)) = self.rx.borrow_mut().frames.pop_front() else {
                break;
            };
            f(&frame[..len]);
            n += 1;
            self.rx.borrow_mut().spare.push(frame);
        }
        n
    }

    fn transmit<F: FnOnce(&mut [u8]) -> usize>(&mut self, f: F) -> bool {
        if self.pending.len() >= self.tx_ring {
            return false;
        }
        let len = self.caps.max_frame_len();
        let mut buf = self.tx.borrow_mut().spare.pop().unwrap_or_default();
        if buf.len() != len {
            buf.resize(len, 0);
        }
        let n = f(&mut buf).min(len);
        if n == 0 {
            self.tx.borrow_mut().spare.push(buf);
        } else {
            self.pending.push((buf, n));
        }
        true
    }

    fn flush(&mut self) {
        let mut wire = self.tx.borrow_mut();
        for (frame, n) in self.pending.drain(..) {
            if wire.frames.len() < self.queue {
                wire.frames.push_back((frame, n));
            } else {
                wire.dropped += 1;
                wire.spare.push(frame);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_in_order_after_flush_and_overflow_is_counted() {
        let (mut a, mut b) = Loopback::pair(1500, 2);
        for i in 1..=3u8 {
            assert!(a.transmit(|buf| {
                buf[..usize::from(i)].fill(i);
                usize::from(i)
            }));
        }
        assert!(a.transmit(|_| 0));
        assert_eq!(b.rx_queued(), 0);
        a.flush();
        assert_eq!(b.rx_queued(), 2);
        assert_eq!(a.dropped(), 1);
        let mut got = Vec::new();
        assert_eq!(b.receive(8, |f| got.push(f.to_vec())), 2);
        assert_eq!(got, vec![vec![1], vec![2, 2]]);
        assert_eq!(b.receive(8, |_| unreachable!()), 0);
    }
}
