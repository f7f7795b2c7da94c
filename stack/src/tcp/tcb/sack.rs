//! The sender's SACK scoreboard (RFC 6675 §4): which bytes the peer
//! holds, which are presumed lost, what is in the network, which hole goes
//! next.

use super::{Tcb, DUPACK_THRESHOLD};
use crate::tcp::SeqNumber;

impl Tcb {
    /// RFC 6675 §4 IsLost: the unSACKed byte at offset `at` (from
    /// SND.UNA) is presumed lost when "DupThresh discontiguous SACKed
    /// sequences" lie above it, or more than "(DupThresh - 1) * SMSS bytes
    /// ... have been SACKed" above it.
    pub(super) fn is_lost(&self, at: u32) -> bool {
        let (mut blocks, mut bytes) = (0u32, 0u32);
        for &(start, end) in self.sacked.ranges() {
            if start > at {
                blocks += 1;
                bytes += end - start;
            }
        }
        blocks >= DUPACK_THRESHOLD || bytes > (DUPACK_THRESHOLD - 1) * self.mss as u32
    }

    /// RFC 6675 §4 SetPipe: the bytes presumed in the network. Each
    /// unSACKed byte counts once unless presumed lost, and once more if it
    /// was retransmitted in this recovery.
    pub(super) fn pipe(&self) -> u32 {
        let outstanding = self.snd_max.since(self.snd_una);
        let rx = self
            .rexmit_next
            .max(self.snd_una)
            .since(self.snd_una)
            .min(outstanding);
        let ranges = self.sacked.ranges();
        let (mut pipe, mut at) = (0u32, 0u32);
        for i in 0..=ranges.len() {
            let end = ranges.get(i).map_or(outstanding, |r| r.0.min(outstanding));
            if at < end {
                if !self.is_lost(at) {
                    pipe += end - at;
                }
                if rx > at {
                    pipe += rx.min(end) - at;
                }
            }
            if let Some(r) = ranges.get(i) {
                at = at.max(r.1);
            }
        }
        pipe
    }

    /// The first unSACKed bytes at or after offset `from` that lie below
    /// SACKed data (and, with `lost_only`, are presumed lost), as (offset,
    /// length) from SND.UNA.
    pub(super) fn hole_from(&self, from: u32, lost_only: bool) -> Option<(u32, u32)> {
        let mut at = 0u32;
        for &(start, end) in self.sacked.ranges() {
            let first = at.max(from);
            if first < start {
                // Holes further up have less SACKed above them: if this one
                // is not lost, none after it is.
                return (!lost_only || self.is_lost(first)).then_some((first, start - first));
            }
            at = at.max(end);
        }
        None
    }

    /// RFC 6675 §4 NextSeg rule 4: once per recovery, up to a segment that
    /// ends at the highest unSACKed byte outstanding, when nothing else
    /// may go.
    pub(super) fn rescue(&self) -> Option<(u32, u32)> {
        let recovering = self.recover.is_some_and(|r| self.snd_una.lt(r));
        if self.rescued || !recovering {
            return None;
        }
        let outstanding = self.snd_max.since(self.snd_una);
        let top = self.sacked.ranges().last().map_or(0, |r| r.1);
        (top < outstanding).then(|| {
            let start = top.max(outstanding.saturating_sub(self.mss as u32));
            (start, outstanding - start)
        })
    }

    /// The first hole at or after `rexmit_next`: bytes not acknowledged
    /// nor SACKed, below data the peer SACKed (so presumed lost); without
    /// SACK information, the first unacknowledged segment only (NewReno).
    pub(super) fn next_hole(&self) -> Option<(SeqNumber, usize)> {
        let outstanding = self.snd_max.since(self.snd_una);
        let mut at = self.rexmit_next.max(self.snd_una).since(self.snd_una);
        for &(start, end) in self.sacked.ranges() {
            if at < start {
                return Some((self.snd_una + at, (start - at) as usize));
            }
            at = at.max(end);
        }
        (at == 0 && outstanding > 0).then_some((self.snd_una, outstanding as usize))
    }

    /// `seq`, or the end of the SACKed range it falls in.
    pub(super) fn skip_sacked(&self, seq: SeqNumber) -> SeqNumber {
        if seq.lt(self.snd_una) {
            return seq;
        }
        let at = seq.since(self.snd_una);
        match self.sacked.ranges().iter().find(|r| r.0 <= at && at < r.1) {
            Some(&(_, end)) => self.snd_una + end,
            None => seq,
        }
    }
}
