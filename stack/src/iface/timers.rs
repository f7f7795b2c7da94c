//! The connections' timers in deadline order: a timing wheel of
//! (deadline, socket) entries, so that a poll finds the due connections
//! without looking at the others (a million idle connections cost a poll
//! nothing).
//!
//! Entries are never searched for or removed when a deadline moves: a
//! socket is queued again only for a deadline earlier than the one it has
//! queued (its `queued` mark), and an entry taken is checked against the
//! connection's real deadline, which is queued again if it lies ahead.
//! Stale entries cost one take each and are gone once their time has
//! passed.
//!
//! Why a wheel and not a binary heap: a connection of a short-lived
//! workload (crr) leaves two or three stale entries behind, so at tens of
//! thousands of connections a second the queue holds ~10^5 entries, and a
//! heap's pop, a sift-down through an array that outgrows the cache, was
//! 5.5% of a bypass server's CPU in crr (`perf record`, 45 k connections
//! per second). The wheel files an entry in the bucket of its millisecond
//! (1024 µs) and takes a due bucket's entries from its end: O(1) each.
//! Deadlines beyond the wheel's span (~4.2 s: TIME-WAIT, idle timeouts)
//! wait in a small heap and move into the wheel as it turns.

use core::cmp::Reverse;
use std::collections::BinaryHeap;

use super::SocketHandle;
use crate::time::Instant;

/// A bucket's width in µs, as a shift: 1024 µs.
const TICK_SHIFT: u32 = 10;
/// Buckets in the wheel (a power of two): ~4.2 s of deadlines.
const SLOTS: usize = 4096;
const WORDS: usize = SLOTS / 64;

/// (deadline, socket index, socket generation).
type Entry = (Instant, u32, u32);

fn tick(at: Instant) -> u64 {
    at.micros() >> TICK_SHIFT
}

#[derive(Debug)]
pub(super) struct TimerQueue {
    /// Bucket `t % SLOTS` holds the entries of tick `t`, for the ticks
    /// `base..base + SLOTS` (an entry already due when filed goes to
    /// `base`'s).
    slots: Vec<Vec<Entry>>,
    /// Which buckets are not empty, a bit each.
    occupied: [u64; WORDS],
    /// The first tick whose bucket may hold entries: every earlier one
    /// was emptied.
    base: u64,
    /// Deadlines at or beyond `base + SLOTS`.
    far: BinaryHeap<Reverse<Entry>>,
    /// The least deadline in the bucket of a tick (the current one, which
    /// a poll looks at again and again before its entries are due), while
    /// it is known: a look then costs a comparison, not a scan.
    cur_min: Option<(u64, Instant)>,
    /// Deadlines re-queued during a run, filed once it ends (a timer that
    /// stays due is handled at the next poll, not in a loop).
    later: Vec<(Instant, SocketHandle)>,
}

impl TimerQueue {
    /// An empty wheel (its buckets allocate as entries come).
    pub(super) fn new() -> TimerQueue {
        TimerQueue {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            occupied: [0; WORDS],
            base: 0,
            far: BinaryHeap::new(),
            cur_min: None,
            later: Vec::new(),
        }
    }

    /// Queues `h`'s deadline `at` unless an earlier or equal one is queued
    /// already (`queued`, the socket's mark, is updated).
    pub(super) fn schedule(&mut self, h: SocketHandle, at: Instant, queued: &mut Option<Instant>) {
        if earlier(at, queued) {
            self.file((at, h.index() as u32, h.gen()));
        }
    }

    /// Like [`schedule`](Self::schedule), but filed at [`finish`](Self::finish).
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
        let wheel = self
            .first_occupied(self.base + SLOTS as u64 - 1)
            .and_then(|t| {
                self.slots[(t % SLOTS as u64) as usize]
                    .iter()
                    .map(|e| e.0)
                    .min()
            });
        let far = self.far.peek().map(|Reverse((at, _, _))| *at);
        match (wheel, far) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next entry due at `now`: the socket and the deadline it was
    /// queued for.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<(SocketHandle, Instant)> {
        let now_tick = tick(now);
        loop {
            self.pull_far();
            let last = now_tick.min(self.base + SLOTS as u64 - 1);
            let Some(t) = self.first_occupied(last) else {
                // every bucket up to `last` is empty: the wheel may turn
                if last > self.base {
                    self.base = last;
                    continue;
                }
                return None;
            };
            self.base = t;
            let i = (t % SLOTS as u64) as usize;
            let bucket = &mut self.slots[i];
            // a bucket before now's is due whole; now's, entry by entry
            let at = if t < now_tick {
                bucket.len() - 1
            } else {
                if self.cur_min.is_some_and(|(ct, m)| ct == t && now < m) {
                    return None;
                }
                let mut due = None;
                let mut rest = Instant::from_micros(u64::MAX);
                for (k, e) in bucket.iter().enumerate() {
                    if due.is_none() && e.0 <= now {
                        due = Some(k);
                    } else {
                        rest = rest.min(e.0);
                    }
                }
                self.cur_min = Some((t, rest));
                due?
            };
            let (deadline, index, gen) = bucket.swap_remove(at);
            if bucket.is_empty() {
                self.occupied[i / 64] &= !(1 << (i % 64));
            }
            return Some((SocketHandle::new(index, gen), deadline));
        }
    }

    /// Files what [`schedule_later`](Self::schedule_later) held back.
    pub(super) fn finish(&mut self) {
        for (at, h) in std::mem::take(&mut self.later) {
            self.file((at, h.index() as u32, h.gen()));
        }
    }

    /// An entry into its bucket, or the far heap.
    fn file(&mut self, e: Entry) {
        let t = tick(e.0).max(self.base);
        if t >= self.base + SLOTS as u64 {
            self.far.push(Reverse(e));
            return;
        }
        let i = (t % SLOTS as u64) as usize;
        self.slots[i].push(e);
        self.occupied[i / 64] |= 1 << (i % 64);
        if let Some((ct, m)) = &mut self.cur_min {
            if *ct == t {
                *m = (*m).min(e.0);
            }
        }
    }

    /// Far entries the wheel's span now reaches, into their buckets.
    fn pull_far(&mut self) {
        while let Some(Reverse(e)) = self.far.peek().copied() {
            if tick(e.0) >= self.base + SLOTS as u64 {
                break;
            }
            self.far.pop();
            self.file(e);
        }
    }

    /// The first tick from `base` to `last` (inclusive, within the span)
    /// whose bucket holds entries.
    fn first_occupied(&self, last: u64) -> Option<u64> {
        let mut t = self.base;
        while t <= last {
            let i = (t % SLOTS as u64) as usize;
            let bits = self.occupied[i / 64] >> (i % 64);
            if bits != 0 {
                let found = t + u64::from(bits.trailing_zeros());
                return (found <= last).then_some(found);
            }
            // to the next word's first bucket
            t += 64 - (i % 64) as u64;
        }
        None
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (the tests need no crate for it).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    /// Against a plain list: over random deadlines (due ones, ones within
    /// the wheel, ones beyond it) filed while time advances in random
    /// steps, each entry comes out once, never before its deadline, at the
    /// first poll at or after it; `next` is never later than the earliest
    /// entry left.
    #[test]
    fn every_entry_comes_out_once_when_due_and_next_is_never_late() {
        for seed in 1..=20u64 {
            let mut rng = Lcg(seed);
            let mut q = TimerQueue::new();
            let mut model: Vec<(Instant, u32)> = Vec::new();
            let mut now = Instant::from_micros(rng.next() % 5_000_000);
            let mut id = 0u32;
            for _ in 0..4000 {
                for _ in 0..rng.next() % 4 {
                    let ahead = match rng.next() % 4 {
                        0 => 0,
                        1 => rng.next() % 3_000,
                        2 => rng.next() % 4_000_000,
                        _ => rng.next() % 70_000_000,
                    };
                    let at = if rng.next() % 8 == 0 {
                        Instant::from_micros(now.micros().saturating_sub(ahead % 5000))
                    } else {
                        Instant::from_micros(now.micros() + ahead)
                    };
                    let mut mark = None;
                    q.schedule(SocketHandle::new(id, 0), at, &mut mark);
                    model.push((at, id));
                    id += 1;
                }
                if let Some(n) = q.next() {
                    let earliest = model.iter().map(|e| e.0).min().unwrap();
                    assert!(n <= earliest, "seed {seed}: next {n:?} after {earliest:?}");
                } else {
                    assert!(model.is_empty(), "seed {seed}: next None with entries");
                }
                // sometimes within a tick, so that one bucket is looked
                // at several times before and while its entries come due
                let step = if rng.next() % 3 == 0 { 500 } else { 200_000 };
                now = Instant::from_micros(now.micros() + rng.next() % step);
                let mut got = Vec::new();
                while let Some((h, at)) = q.pop_due(now) {
                    assert!(at <= now, "seed {seed}: {at:?} before {now:?}");
                    got.push((at, h.index() as u32));
                }
                let mut due: Vec<(Instant, u32)> =
                    model.iter().copied().filter(|e| e.0 <= now).collect();
                model.retain(|e| e.0 > now);
                got.sort();
                due.sort();
                assert_eq!(got, due, "seed {seed} at {now:?}");
            }
        }
    }

    #[test]
    fn a_deadline_later_in_the_current_tick_waits() {
        let mut q = TimerQueue::new();
        let h = SocketHandle::new(7, 1);
        q.schedule(h, Instant::from_micros(2_000_900), &mut None);
        assert_eq!(q.pop_due(Instant::from_micros(2_000_100)), None);
        assert_eq!(
            q.pop_due(Instant::from_micros(2_000_900)),
            Some((h, Instant::from_micros(2_000_900)))
        );
        assert_eq!(q.pop_due(Instant::from_secs(100)), None);
        assert_eq!(q.next(), None);
    }

    #[test]
    fn schedule_later_files_at_finish_and_marks_hold_back_later_deadlines() {
        let mut q = TimerQueue::new();
        let h = SocketHandle::new(1, 0);
        let mut mark = None;
        q.schedule_later(h, Instant::from_millis(10), &mut mark);
        assert_eq!(q.next(), None, "not filed before finish");
        q.finish();
        assert!(q.next().is_some_and(|n| n <= Instant::from_millis(10)));
        // a later deadline for the same socket is not filed again
        q.schedule(h, Instant::from_millis(20), &mut mark);
        assert_eq!(mark, Some(Instant::from_millis(10)));
        assert!(q.pop_due(Instant::from_millis(30)).is_some());
        assert_eq!(q.pop_due(Instant::from_millis(30)), None);
    }
}
