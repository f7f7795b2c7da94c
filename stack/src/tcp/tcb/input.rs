//! SEGMENT ARRIVES (RFC 9293 §3.10.7): [`Tcb::process`] in the order of
//! the RFC's checks, and the helpers its arms call.

use core::time::Duration;

use super::{Reaction, Tcb, TcpStats, Timer};
use crate::error::Error;
use crate::tcp::{SeqNumber, State};
use crate::time::Instant;
use crate::wire::{TcpFlags, TcpRepr};

/// Timestamp ticks a segment may lag TS.Recent and still pass PAWS
/// (Linux's `TCP_PAWS_WINDOW`).
const PAWS_WINDOW: i32 = 1;
/// Duplicate ACKs sent at once for out-of-order data, at most (RFC 5681
/// §4.2: "A TCP receiver SHOULD send an immediate duplicate ACK when an
/// out-of-order segment arrives"); more in one batch add nothing.
const MAX_ACKS_OWED: u8 = 3;

impl Tcb {
    /// Process a segment for this connection. `accept_ok` says whether the
    /// listener's accept queue has room (for the final ACK of a passive
    /// handshake).
    pub fn process(
        &mut self,
        now: Instant,
        seg: &TcpRepr<'_>,
        accept_ok: bool,
        stats: &mut TcpStats,
    ) -> Reaction {
        match self.state {
            // §3.10.7.1 / §3.10.7.2: no TCB in these states; the interface
            // answers for them.
            State::Closed | State::Listen => return Reaction::None,
            State::SynSent => return self.process_syn_sent(now, seg),
            _ => {}
        }
        let f = seg.flags;
        let seq = SeqNumber(seg.seq_number);
        let ack = SeqNumber(seg.ack_number);
        // Anything from the peer shows it is there (Linux restarts the
        // keepalive clock on every segment, acceptable or not).
        self.heard(now);

        // RFC 7323 §5.3 R1 (PAWS), before the sequence number check: "If
        // there is a Timestamps option in the arriving segment, SEG.TSval <
        // TS.Recent, TS.Recent is valid, and the RST bit is not set, then
        // treat the arriving segment as not acceptable: Send an
        // acknowledgment in reply ... and drop the segment." (TS.Recent is
        // not aged out after 24 days idle yet.)
        // As Linux (TCP_PAWS_WINDOW), a timestamp one tick older than
        // TS.Recent still passes: a segment overtaken in the network by
        // one sent a tick later is reordered, not old.
        if let (true, Some(ts)) = (self.ts_enabled, seg.options.timestamps) {
            let behind = (self.ts_recent.wrapping_sub(ts.tsval) as i32) > PAWS_WINDOW;
            if !f.contains(TcpFlags::RST) && behind {
                stats.paws_drops += 1;
                self.ack_pending = true;
                return Reaction::None;
            }
        }
        // §3.10.7.4 first: "check sequence number". The four cases of the
        // acceptance test, with the "special allowance" for valid ACKs and
        // RSTs when RCV.WND is zero (their data is then trimmed to nothing).
        let seg_len = seg.segment_len() as u32;
        let wnd = self.rx.free() as u32;
        let acceptable = match (seg_len, wnd) {
            (0, 0) => seq == self.rcv_nxt,
            (0, _) => seq.in_window(self.rcv_nxt, wnd),
            (_, 0) => seq == self.rcv_nxt,
            (_, _) => {
                seq.in_window(self.rcv_nxt, wnd)
                    || (seq + (seg_len - 1)).in_window(self.rcv_nxt, wnd)
            }
        };
        if !acceptable {
            if self.state == State::SynReceived
                && f.contains(TcpFlags::SYN)
                && !f.contains(TcpFlags::ACK)
                && seq == self.irs
            {
                // The peer's SYN again: our SYN-ACK was lost. The ACK that
                // §3.10.7.4 asks for carries no SYN and would be dropped in
                // SYN-SENT; send the SYN-ACK again instead (as Linux does).
                self.snd_nxt = self.iss;
                return Reaction::None;
            }
            // "If an incoming segment is not acceptable, an acknowledgment
            // should be sent in reply (unless the RST bit is set, if so
            // drop the segment and return)": an out-of-window RST is
            // ignored (RFC 5961 §3.2).
            if !f.contains(TcpFlags::RST) {
                self.ack_pending = true;
            }
            // §3.10.7.4 eighth, TIME-WAIT: a retransmitted FIN restarts
            // the 2 MSL timeout.
            if self.state == State::TimeWait && f.contains(TcpFlags::FIN) {
                self.timers.set(Timer::Linger, now + self.time_wait);
            }
            return Reaction::None;
        }
        // RFC 7323 §4.3 (2): remember the peer's newest timestamp from a
        // segment that covers the left edge of the window.
        if let (true, Some(ts)) = (self.ts_enabled, seg.options.timestamps) {
            if seq.le(self.rcv_nxt) && SeqNumber(ts.tsval).ge(SeqNumber(self.ts_recent)) {
                self.ts_recent = ts.tsval;
            }
        }

        // §3.10.7.4 second: "check the RST bit". RFC 5961 §3.2: reset only
        // if SEG.SEQ exactly matches RCV.NXT; anywhere else in the window,
        // send a challenge ACK.
        if f.contains(TcpFlags::RST) {
            if seq != self.rcv_nxt {
                self.challenge_ack(now, stats);
                return Reaction::None;
            }
            self.reset_by_peer();
            return Reaction::None;
        }

        // §3.10.7.4 fourth: "check the SYN bit". RFC 5961 §4.2: in a
        // synchronized state (and SYN-RECEIVED), whatever its sequence
        // number, a SYN gets a challenge ACK and is dropped.
        if f.contains(TcpFlags::SYN) {
            self.challenge_ack(now, stats);
            return Reaction::None;
        }

        // §3.10.7.4 fifth: "if the ACK bit is off, drop the segment".
        if !f.contains(TcpFlags::ACK) {
            return Reaction::None;
        }
        let mut reaction = Reaction::None;
        if self.state == State::SynReceived {
            // SYN-RECEIVED: "If SND.UNA < SEG.ACK =< SND.NXT, then enter
            // ESTABLISHED state ... If the segment acknowledgment is not
            // acceptable, form a reset segment <SEQ=SEG.ACK><CTL=RST>".
            if !(self.snd_una.lt(ack) && ack.le(self.snd_max)) {
                return Reaction::Reset(ack);
            }
            // Linux: with the accept queue full, the final ACK is dropped
            // and counted; the SYN-ACK is sent again on its timer.
            if !accept_ok {
                stats.accept_queue_overflows += 1;
                return Reaction::AcceptQueueFull;
            }
            // A close before the handshake ended queued a FIN.
            self.state = if self.fin_queued {
                State::FinWait1
            } else {
                State::Established
            };
            self.snd_wnd = u32::from(seg.window_len) << self.snd_wscale;
            self.snd_wl1 = seq;
            self.snd_wl2 = ack;
            reaction = Reaction::Established;
        }
        // ESTABLISHED and on: "If the ACK acks something not yet sent
        // (SEG.ACK > SND.NXT), then send an ACK, drop the segment, and
        // return" (also RFC 5961 §5.2).
        if ack.gt(self.snd_max) {
            self.ack_pending = true;
            return reaction;
        }
        self.process_ack(now, seg, seq, ack, stats);
        match self.state {
            // FIN-WAIT-1: "if the FIN segment is now acknowledged, then
            // enter FIN-WAIT-2".
            State::FinWait1 if self.fin_acked => {
                self.state = State::FinWait2;
                if self.orphan {
                    self.timers.set(Timer::Linger, now + self.fin_wait2_timeout);
                }
            }
            // CLOSING: "if the ACK acknowledges our FIN, then enter the
            // TIME-WAIT state".
            State::Closing if self.fin_acked => self.enter_time_wait(now),
            // LAST-ACK: "If our FIN is now acknowledged, delete the TCB,
            // enter the CLOSED state, and return."
            State::LastAck if self.fin_acked => {
                self.enter_closed(None);
                return reaction;
            }
            _ => {}
        }

        // New data for a connection its user has closed: nobody will read
        // it, and taking it would hold the peer until the window closes.
        // Reset, as Linux does (`TCPAbortOnData`; RFC 2525 §2.17).
        if self.orphan
            && matches!(self.state, State::FinWait1 | State::FinWait2)
            && (seq + seg.payload.len()).gt(self.rcv_nxt)
            && !seg.payload.is_empty()
        {
            stats.aborts_on_data += 1;
            self.abort();
            return reaction;
        }

        // §3.10.7.4 seventh: "process the segment text" in ESTABLISHED,
        // FIN-WAIT-1 and FIN-WAIT-2; in the other states "this should not
        // occur ... ignore the segment text".
        let fin_fits = if matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        ) {
            self.receive_data(now, seq, seg, stats)
        } else {
            false
        };

        // §3.10.7.4 eighth: "check the FIN bit". A FIN ahead of missing
        // data is remembered and takes effect when the hole fills.
        if f.contains(TcpFlags::FIN) {
            if fin_fits {
                self.rx_fin = Some(seq + seg.payload.len());
            }
            self.ack_pending = true;
            if self.state == State::TimeWait {
                self.timers.set(Timer::Linger, now + self.time_wait);
            }
        }
        self.take_fin(now);
        reaction
    }

    /// §3.10.7.3, SYN-SENT.
    fn process_syn_sent(&mut self, now: Instant, seg: &TcpRepr<'_>) -> Reaction {
        let f = seg.flags;
        let seq = SeqNumber(seg.seq_number);
        let ack = SeqNumber(seg.ack_number);
        // First: "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset
        // (unless the RST bit is set, if so drop the segment and return)
        // <SEQ=SEG.ACK><CTL=RST>".
        let ack_ok = f.contains(TcpFlags::ACK) && self.iss.lt(ack) && ack.le(self.snd_max);
        if f.contains(TcpFlags::ACK) && !ack_ok {
            return if f.contains(TcpFlags::RST) {
                Reaction::None
            } else {
                Reaction::Reset(ack)
            };
        }
        // Second: "If the ACK was acceptable, then signal to the user
        // 'error: connection reset', drop the segment, enter CLOSED state
        // ... Otherwise (no ACK), drop the segment and return."
        if f.contains(TcpFlags::RST) {
            if ack_ok {
                self.enter_closed(Some(Error::ConnectionRefused));
            }
            return Reaction::None;
        }
        // Fourth: "check the SYN bit".
        if !f.contains(TcpFlags::SYN) {
            return Reaction::None;
        }
        self.irs = seq;
        self.rcv_nxt = seq + 1u32;
        self.negotiate(&seg.options);
        // RFC 7323 §2.2: the window of a SYN is not scaled.
        self.snd_wnd = u32::from(seg.window_len);
        self.snd_wl1 = seq;
        self.snd_wl2 = ack;
        self.ack_pending = true;
        if ack_ok {
            // "If SND.UNA > ISS (our SYN has been ACKed), change the
            // connection state to ESTABLISHED, form an ACK segment
            // <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> and send it."
            self.acknowledge_to(now, ack);
            self.state = State::Established;
            self.heard(now);
            Reaction::Established
        } else {
            // "Otherwise, enter SYN-RECEIVED, form a SYN,ACK segment
            // <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> and send it."
            // (simultaneous open, RFC 9293 §3.5 Figure 7)
            self.state = State::SynReceived;
            self.snd_nxt = self.iss;
            Reaction::None
        }
    }

    /// RFC 9293 §3.10.7.4 second, the RST arms.
    fn reset_by_peer(&mut self) {
        let error = match self.state {
            // SYN-RECEIVED: "If this connection was initiated with a
            // passive OPEN, then return this connection to the LISTEN
            // state" (here: the embryo is dropped, the listener stays);
            // "If ... active OPEN, then ... connection refused".
            State::SynReceived if self.passive => None,
            State::SynReceived => Some(Error::ConnectionRefused),
            // ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2, CLOSE-WAIT: "any
            // outstanding RECEIVEs and SEND should receive 'reset'
            // responses ... enter the CLOSED state".
            State::Established | State::FinWait1 | State::FinWait2 | State::CloseWait => {
                Some(Error::ConnectionReset)
            }
            // CLOSING, LAST-ACK, TIME-WAIT: "enter the CLOSED state,
            // delete the TCB, and return".
            _ => None,
        };
        self.enter_closed(error);
    }

    /// RFC 5961 §3.2 and §4.2: `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>`.
    ///
    /// RFC 5961 §7: challenge ACKs are rate limited, here per connection
    /// ([`ChallengeLimit`]); the rest are counted and not sent.
    fn challenge_ack(&mut self, now: Instant, stats: &mut TcpStats) {
        if !self.challenges.allow(now) {
            stats.challenge_acks_suppressed += 1;
            return;
        }
        stats.challenge_acks += 1;
        self.ack_pending = true;
    }

    /// §3.10.7.4 seventh: place the text in the receive ring, in order or
    /// ahead of a hole. Returns whether all of the text fitted (so that a
    /// FIN after it may count).
    fn receive_data(
        &mut self,
        now: Instant,
        seq: SeqNumber,
        seg: &TcpRepr<'_>,
        stats: &mut TcpStats,
    ) -> bool {
        let payload = seg.payload;
        if payload.is_empty() {
            return true;
        }
        // In-order data that fills no hole may wait for a delayed ACK;
        // everything else is acknowledged at once (RFC 5681 §4.2).
        let filling = !self.assembler.is_empty();
        let mut delay = seq == self.rcv_nxt && !filling;
        if !delay {
            self.ack_pending = true;
        }
        // Trim what was already received (§3.10.7.4: "segments with higher
        // beginning sequence numbers may be held for later processing").
        let ahead = seq - self.rcv_nxt;
        let (skip, offset) = if ahead < 0 {
            (ahead.unsigned_abs() as usize, 0usize)
        } else {
            (0, ahead as usize)
        };
        let Some(data) = payload.get(skip..) else {
            return true;
        };
        if self.rd_shut {
            // Read side shut: acknowledge and throw away.
            self.rcv_nxt += data.len();
            return true;
        }
        let written = self.rx.write_at(offset, data);
        if written < data.len() {
            // Beyond the window: say so now.
            delay = false;
            self.ack_pending = true;
        }
        if written == 0 {
            return data.is_empty();
        }
        if offset == 0 {
            self.rx.commit(written);
            self.rcv_nxt += written;
            self.assembler.advance(written as u32);
        } else {
            let start = offset as u32;
            if self.assembler.add(start, start + written as u32).is_err() {
                stats.out_of_order_dropped += 1;
                return false;
            }
            stats.out_of_order += 1;
            self.last_out_of_order = self.rcv_nxt + offset;
            self.acks_owed = (self.acks_owed + 1).min(MAX_ACKS_OWED);
        }
        let more = self.assembler.take_front() as usize;
        if more > 0 {
            self.rx.commit(more);
            self.rcv_nxt += more;
        }
        if delay {
            self.delay_ack(now);
        }
        written == data.len()
    }

    /// RFC 5681 §4.2 / RFC 1122 §4.2.3.2: an ACK may wait (at most the
    /// configured delay, 40 ms by default, below the 500 ms the RFCs allow)
    /// for data to ride on, but "an ACK SHOULD be generated for at least
    /// every second full-sized segment".
    fn delay_ack(&mut self, now: Instant) {
        match self.delayed_ack {
            Some(d) if (self.rcv_nxt.since(self.last_ack_sent) as usize) < 2 * self.mss => {
                if self.timers.get(Timer::DelayedAck).is_none() {
                    self.timers.set(Timer::DelayedAck, now + d);
                }
            }
            _ => self.ack_pending = true,
        }
    }

    /// A remembered FIN whose turn has come: §3.10.7.4 eighth.
    fn take_fin(&mut self, now: Instant) {
        if self.rx_fin != Some(self.rcv_nxt) {
            return;
        }
        self.rx_fin = None;
        // "advance RCV.NXT over the FIN, and send an acknowledgment for
        // the FIN"; "signal the user 'connection closing'".
        self.rcv_nxt += 1u32;
        self.rx_eof = true;
        self.ack_pending = true;
        match self.state {
            // SYN-RECEIVED, ESTABLISHED: "Enter the CLOSE-WAIT state."
            State::SynReceived | State::Established => self.state = State::CloseWait,
            // FIN-WAIT-1: "If our FIN has been ACKed ..., then enter
            // TIME-WAIT, start the time-wait timer ...; otherwise, enter the
            // CLOSING state."
            State::FinWait1 if self.fin_acked => self.enter_time_wait(now),
            State::FinWait1 => self.state = State::Closing,
            // FIN-WAIT-2: "Enter the TIME-WAIT state. Start the time-wait
            // timer".
            State::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
    }
}

/// RFC 5961 §7's rate limit of challenge ACKs, per connection: at most
/// `limit` in a second (`challenge_ack_limit`).
#[derive(Debug)]
pub(super) struct ChallengeLimit {
    /// Challenge ACKs sent in the second that began at `window`.
    sent: u32,
    window: Instant,
    limit: u32,
}

impl ChallengeLimit {
    /// None sent yet, at most `limit` a second.
    pub(super) fn new(limit: u32) -> ChallengeLimit {
        ChallengeLimit {
            sent: 0,
            window: Instant::ZERO,
            limit,
        }
    }

    /// Whether one more challenge ACK may go at `now`; if so, it counts.
    fn allow(&mut self, now: Instant) -> bool {
        if now.saturating_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.sent = 0;
        }
        if self.sent >= self.limit {
            return false;
        }
        self.sent += 1;
        true
    }
}
