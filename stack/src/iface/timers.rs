//! The connections' timers in deadline order: a binary heap of (deadline,
//! socket), so that a poll finds the due connections without looking at the
//! others (a million idle connections cost a poll nothing).
//!
//! Entries are never searched for or removed when a deadline moves: a
//! socket is queued again only for a deadline earlier than the one it has
//! queued (its `queued` mark), and an entry popped is checked against the
//! connection's real deadline, which is queued again if it lies ahead.
//! Stale entries cost a pop each and are gone once their time has passed.

use core::cmp::Reverse;
use std::collections::BinaryHeap;

use super::SocketHandle;
use crate::time::Instant;

#[derive(Debug)]
pub(super) struct TimerQueue {
    heap: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    /// Deadlines re-queued during a run, pushed once it ends (a timer that
    /// stays due is handled at the next poll, not in a loop).
    later: Vec<(Instant, SocketHandle)>,
}

impl TimerQueue {
    /// Room for `n` entries, allocated now (more grow the heap).
    pub(super) fn with_capacity(n: usize) -> TimerQueue {
        TimerQueue {
            heap: BinaryHeap::with_capacity(n),
            later: Vec::new(),
        }
    }

    /// Queues `h`'s deadline `at` unless an earlier or equal one is queued
    /// already (`queued`, the socket's mark, is updated).
    pub(super) fn schedule(&mut self, h: SocketHandle, at: Instant, queued: &mut Option<Instant>) {
        if earlier(at, queued) {
            self.heap.push(Reverse((at, h.index() as u32, h.gen())));
        }
    }

    /// Like [`schedule`](Self::schedule), but pushed at [`finish`](Self::finish).
    pub(super) fn schedule_later(
        &mut self,
        h: SocketHandle,
        at: Instant,
        queued: &mut Option<Instant>,
    ) {
        if earlier(at, queued) {
            self.later.push((at, h));
        }
    }

    /// The earliest deadline queued (perhaps stale: then early, never late).
    pub(super) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The next entry due at `now`: the socket and the deadline it was
    /// queued for.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<(SocketHandle, Instant)> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => {
                let Reverse((at, index, gen)) = self.heap.pop()?;
                Some((SocketHandle::new(index, gen), at))
            }
            _ => None,
        }
    }

    /// Pushes what [`schedule_later`](Self::schedule_later) held back.
    pub(super) fn finish(&mut self) {
        for (at, h) in self.later.drain(..) {
            self.heap.push(Reverse((at, h.index() as u32, h.gen())));
        }
    }
}

/// Whether `at` comes before the deadline a socket has queued (none: it
/// does); if so, it becomes the socket's mark.
fn earlier(at: Instant, queued: &mut Option<Instant>) -> bool {
    let first = queued.is_none_or(|q| at < q);
    if first {
        *queued = Some(at);
    }
    first
}
