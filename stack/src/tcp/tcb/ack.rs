//! An acceptable ACK (RFC 9293 §3.10.7.4 fifth): SND.UNA moves, the send
//! window is updated, duplicate ACKs and SACK information start loss
//! recovery (RFC 5681, RFC 6582, RFC 6675).

use super::{Tcb, TcpStats, Timer, DUPACK_THRESHOLD};
use crate::tcp::SeqNumber;
use crate::time::Instant;
use crate::wire::{TcpFlags, TcpRepr};

/// Hole retransmissions owed at once, at most.
const MAX_REXMIT_BUDGET: u8 = 4;

impl Tcb {
    /// §3.10.7.4 fifth, ESTABLISHED: SND.UNA, duplicate ACKs, the window.
    pub(super) fn process_ack(
        &mut self,
        now: Instant,
        seg: &TcpRepr<'_>,
        seq: SeqNumber,
        ack: SeqNumber,
        stats: &mut TcpStats,
    ) {
        let wnd = u32::from(seg.window_len) << self.snd_wscale;
        let mss = self.mss as u32;
        // RFC 2018: remember what the peer holds beyond SND.UNA (offsets
        // from SND.UNA as it is before this ACK moves it).
        let newly_sacked = self.sack_permitted
            && !seg.options.sack_blocks.is_empty()
            && self.sack.update(
                seg.options.sack_blocks.as_slice(),
                self.snd_una,
                self.snd_max,
            );
        if ack.gt(self.snd_una) {
            // "If SND.UNA < SEG.ACK =< SND.NXT, then set SND.UNA <- SEG.ACK."
            let acked = ack.since(self.snd_una);
            self.acknowledge_to(now, ack);
            self.dupacks = 0;
            match self.sack.recover {
                Some(recover) if ack.ge(recover) => {
                    // RFC 6582 §3.2 step 3, full acknowledgment.
                    self.sack.recover = None;
                    if self.cc.in_fast_recovery() {
                        self.cc.on_full_ack();
                    } else {
                        self.cc.on_ack(acked, mss, now, self.srtt());
                    }
                }
                // RFC 6675: a partial ACK only updates the scoreboard and
                // the pipe; the send path picks what goes next.
                Some(_) if self.cc.in_fast_recovery() && self.sack_permitted => {}
                Some(_) if self.cc.in_fast_recovery() => {
                    // RFC 6582 §3.2 step 5, partial acknowledgment:
                    // "retransmit the first unacknowledged segment" (the
                    // next hole, with SACK).
                    self.sack.rexmit_budget = (self.sack.rexmit_budget + 1).min(MAX_REXMIT_BUDGET);
                    self.cc.on_partial_ack(acked, mss);
                }
                // Outside fast recovery (after a timeout, too: go-back-N
                // resends in order, the window opens again).
                _ => self.cc.on_ack(acked, mss, now, self.srtt()),
            }
        } else if ack == self.snd_una
            && self.snd_max != self.snd_una
            && (newly_sacked
                || (seg.payload.is_empty()
                    && !seg.flags.intersects(TcpFlags::SYN | TcpFlags::FIN)
                    && wnd == self.snd_wnd))
        {
            // RFC 5681 §2, "DUPLICATE ACKNOWLEDGMENT" (all five
            // conditions), or RFC 6675 §2's "DupAck": the ACK SACKs bytes
            // not SACKed before, whatever else it carries. (Data moving
            // both ways would otherwise never count a duplicate: every ACK
            // rides on data, and each loss would cost a timeout.)
            self.dupacks += 1;
            if self.dupacks == DUPACK_THRESHOLD && self.sack.recover.is_none() {
                stats.fast_retransmits += 1;
                self.enter_recovery(mss);
            } else if self.dupacks > DUPACK_THRESHOLD && !self.sack_permitted {
                self.cc.on_dupack(mss);
            }
        }
        // RFC 6675 §5 step 4: "(b) ... IsLost (HighACK + 1) returns true"
        // starts loss recovery too, before the third duplicate.
        if self.sack.recover.is_none()
            && self.sack_permitted
            && self.snd_max != self.snd_una
            && self.sack.is_lost(0, mss)
        {
            stats.fast_retransmits += 1;
            self.enter_recovery(mss);
        }
        // "If SND.UNA =< SEG.ACK =< SND.NXT, the send window should be
        // updated. If (SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2
        // =< SEG.ACK)), set SND.WND <- SEG.WND, set SND.WL1 <- SEG.SEQ, and
        // set SND.WL2 <- SEG.ACK."
        if ack.ge(self.snd_una)
            && (self.snd_wl1.lt(seq) || (self.snd_wl1 == seq && self.snd_wl2.le(ack)))
        {
            self.snd_wnd = wnd;
            self.snd_wl1 = seq;
            self.snd_wl2 = ack;
        }
        // The peer answers the zero-window probes: never give up on it
        // (RFC 9293 §3.8.6.1, MUST-8).
        if self.snd_wnd == 0 {
            self.retries = 0;
        }
    }

    /// SND.UNA moves to `ack` (SND.UNA < ack =< SND.MAX): free what it
    /// covers, take an RTT sample, restart or stop the timer.
    pub(super) fn acknowledge_to(&mut self, now: Instant, ack: SeqNumber) {
        if ack.gt(self.snd_una) {
            self.sack.sacked.advance(ack.since(self.snd_una));
        }
        if ack.gt(self.tx_base) {
            let covered = ack.since(self.tx_base) as usize;
            let n = covered.min(self.tx.len());
            self.tx.discard(n);
            self.tx_base += n;
            if self.fin_queued && self.tx.is_empty() && covered > n {
                self.fin_acked = true;
            }
        }
        // RFC 6298 §3 (Karn): only a segment never retransmitted is timed.
        if let Some((end, sent)) = self.rtt_probe {
            if ack.ge(end) {
                self.rtt.sample(now - sent);
                self.rtt_probe = None;
            }
        }
        self.rtt.reset_backoff();
        self.retries = 0;
        self.snd_una = ack;
        self.snd_nxt = self.snd_nxt.max(ack);
        // RFC 6298 §5.2: "When all outstanding data has been acknowledged,
        // turn off the retransmission timer." §5.3: "When an ACK is
        // received that acknowledges new data, restart the retransmission
        // timer".
        if self.snd_una == self.snd_max {
            self.timers.clear(Timer::Rto);
        } else {
            self.timers.set(Timer::Rto, now + self.rtt.rto());
        }
    }

    /// Fast retransmit: RFC 6582 §3.2 step 2, recover <- the highest
    /// sequence number sent; with SACK, RFC 6675 §5 step 4 (RecoveryPoint,
    /// cwnd = ssthresh, and the send path retransmits by the scoreboard);
    /// without, RFC 5681 §3.2 (the first unacknowledged segment again,
    /// window inflation).
    fn enter_recovery(&mut self, mss: u32) {
        let flight = self.snd_max.since(self.snd_una);
        self.sack.recover = Some(self.snd_max);
        self.sack.rexmit_next = self.snd_una;
        if self.sack_permitted {
            self.cc.on_sack_recovery(flight, mss);
            self.sack.rescued = false;
        } else {
            self.cc.on_fast_retransmit(flight, mss);
            self.sack.rexmit_budget = 1;
        }
    }
}
