//! The sender's SACK scoreboard (RFC 6675 §4): which bytes the peer
//! holds, which are presumed lost, what is in the network, which hole goes
//! next.

use super::DUPACK_THRESHOLD;
use crate::storage::Assembler;
use crate::tcp::SeqNumber;

/// What loss recovery knows: what the peer's SACK blocks say it holds, and
/// how far this recovery went (RFC 6582's `recover`, RFC 6675's HighRxt
/// and rescue, the holes NewReno still owes). Offsets are from SND.UNA;
/// the functions take SND.UNA, SND.MAX and the MSS from the connection.
#[derive(Debug)]
pub(super) struct SackScoreboard {
    /// RFC 6582 `recover`: in fast recovery until this is acknowledged.
    pub(super) recover: Option<SeqNumber>,
    /// Retransmissions of holes this recovery may still send (one per
    /// ACK that arrives during fast recovery).
    pub(super) rexmit_budget: u8,
    /// Everything before this was retransmitted in this recovery (RFC
    /// 6675's HighRxt, plus one).
    pub(super) rexmit_next: SeqNumber,
    /// RFC 6675 §4 rule 4: the rescue retransmission of this recovery was
    /// sent.
    pub(super) rescued: bool,
    /// What the peer's SACK blocks say it holds, as ranges from SND.UNA
    /// (RFC 2018; a fixed array, at most 32 ranges kept).
    pub(super) sacked: Assembler,
}

impl SackScoreboard {
    /// Nothing SACKed, no recovery; `iss` is where retransmissions would
    /// start.
    pub(super) fn new(iss: SeqNumber) -> SackScoreboard {
        SackScoreboard {
            recover: None,
            rexmit_budget: 0,
            rexmit_next: iss,
            rescued: false,
            sacked: Assembler::default(),
        }
    }

    /// RFC 6675 §4 Update: add the peer's SACK blocks that lie within
    /// SND.UNA..SND.MAX (`una`, `max`). Returns whether they SACKed bytes
    /// not SACKed before.
    pub(super) fn update(&mut self, blocks: &[(u32, u32)], una: SeqNumber, max: SeqNumber) -> bool {
        let before = self.sacked.bytes();
        for &(l, r) in blocks {
            let (l, r) = (SeqNumber(l), SeqNumber(r));
            if l.ge(una) && l.lt(r) && r.le(max) {
                let _ = self.sacked.add(l.since(una), r.since(una));
            }
        }
        self.sacked.bytes() > before
    }

    /// RFC 6675 §4 IsLost: the unSACKed byte at offset `at` (from
    /// SND.UNA) is presumed lost when "DupThresh discontiguous SACKed
    /// sequences" lie above it, or more than "(DupThresh - 1) * SMSS bytes
    /// ... have been SACKed" above it.
    pub(super) fn is_lost(&self, at: u32, mss: u32) -> bool {
        let (mut blocks, mut bytes) = (0u32, 0u32);
        for &(start, end) in self.sacked.ranges() {
            if start > at {
                blocks += 1;
                bytes += end - start;
            }
        }
        blocks >= DUPACK_THRESHOLD || bytes > (DUPACK_THRESHOLD - 1) * mss
    }

    /// RFC 6675 §4 SetPipe: the bytes presumed in the network. Each
    /// unSACKed byte counts once unless presumed lost, and once more if it
    /// was retransmitted in this recovery.
    pub(super) fn pipe(&self, una: SeqNumber, max: SeqNumber, mss: u32) -> u32 {
        let outstanding = max.since(una);
        let rx = self.rexmit_next.max(una).since(una).min(outstanding);
        let ranges = self.sacked.ranges();
        let (mut pipe, mut at) = (0u32, 0u32);
        for i in 0..=ranges.len() {
            let end = ranges.get(i).map_or(outstanding, |r| r.0.min(outstanding));
            if at < end {
                if !self.is_lost(at, mss) {
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
    pub(super) fn hole_from(&self, from: u32, lost_only: bool, mss: u32) -> Option<(u32, u32)> {
        let mut at = 0u32;
        for &(start, end) in self.sacked.ranges() {
            let first = at.max(from);
            if first < start {
                // Holes further up have less SACKed above them: if this one
                // is not lost, none after it is.
                return (!lost_only || self.is_lost(first, mss)).then_some((first, start - first));
            }
            at = at.max(end);
        }
        None
    }

    /// RFC 6675 §4 NextSeg rule 4: once per recovery, up to a segment that
    /// ends at the highest unSACKed byte outstanding, when nothing else
    /// may go.
    pub(super) fn rescue(&self, una: SeqNumber, max: SeqNumber, mss: u32) -> Option<(u32, u32)> {
        let recovering = self.recover.is_some_and(|r| una.lt(r));
        if self.rescued || !recovering {
            return None;
        }
        let outstanding = max.since(una);
        let top = self.sacked.ranges().last().map_or(0, |r| r.1);
        (top < outstanding).then(|| {
            let start = top.max(outstanding.saturating_sub(mss));
            (start, outstanding - start)
        })
    }

    /// The first hole at or after `rexmit_next`: bytes not acknowledged
    /// nor SACKed, below data the peer SACKed (so presumed lost); without
    /// SACK information, the first unacknowledged segment only (NewReno).
    pub(super) fn next_hole(&self, una: SeqNumber, max: SeqNumber) -> Option<(SeqNumber, usize)> {
        let outstanding = max.since(una);
        let mut at = self.rexmit_next.max(una).since(una);
        for &(start, end) in self.sacked.ranges() {
            if at < start {
                return Some((una + at, (start - at) as usize));
            }
            at = at.max(end);
        }
        (at == 0 && outstanding > 0).then_some((una, outstanding as usize))
    }

    /// `seq`, or the end of the SACKed range it falls in (`una` is
    /// SND.UNA).
    pub(super) fn skip_sacked(&self, seq: SeqNumber, una: SeqNumber) -> SeqNumber {
        if seq.lt(una) {
            return seq;
        }
        let at = seq.since(una);
        match self.sacked.ranges().iter().find(|r| r.0 <= at && at < r.1) {
            Some(&(_, end)) => una + end,
            None => seq,
        }
    }
}
