//! What a connection sends: [`Tcb::dispatch`], the send loop within the
//! windows (with loss recovery's retransmissions), and the segments
//! themselves.

use super::{Tcb, TcpStats, Timer, DUPACK_THRESHOLD, TS_OPTION_LEN};
use crate::tcp::{SeqNumber, State};
use crate::time::Instant;
use crate::wire::tcp::SackBlocks;
use crate::wire::{TcpFlags, TcpOptions, TcpRepr, Timestamps};

impl Tcb {
    /// Send what the connection has to send: a RST, a SYN or SYN-ACK, a
    /// retransmission, new data and FIN within the peer's window, ACKs.
    /// `emit` transmits one segment and returns `false` when the device is
    /// full; then `dispatch` returns `false` and is called again later.
    pub fn dispatch<F: FnMut(&TcpRepr<'_>) -> bool>(
        &mut self,
        now: Instant,
        stats: &mut TcpStats,
        mut emit: F,
    ) -> bool {
        if self.rst_pending {
            // RFC 9293 §3.10.5: <SEQ=SND.NXT><CTL=RST> (with ACK, as Linux).
            let rst = self.segment(now, TcpFlags::RST | TcpFlags::ACK, self.snd_nxt, &[]);
            let rst = TcpRepr {
                window_len: 0,
                options: TcpOptions::default(),
                ..rst
            };
            if !emit(&rst) {
                return false;
            }
            stats.resets_sent += 1;
            self.rst_pending = false;
            return true;
        }
        match self.state {
            State::SynSent | State::SynReceived if self.snd_nxt == self.iss => {
                let flags = if self.state == State::SynSent {
                    TcpFlags::SYN
                } else {
                    TcpFlags::SYN | TcpFlags::ACK
                };
                let syn = self.segment(now, flags, self.iss, &[]);
                if !emit(&syn) {
                    return false;
                }
                self.on_sent(now, self.iss, 1, stats);
            }
            State::Established
            | State::CloseWait
            | State::FinWait1
            | State::Closing
            | State::LastAck => {
                let sent_all = self.send_text(now, stats, &mut emit);
                if !sent_all {
                    return false;
                }
            }
            _ => {}
        }
        if self.keepalive_pending {
            // SND.UNA - 1, modulo 2^32.
            let probe = self.segment(now, TcpFlags::ACK, self.snd_una + u32::MAX, &[]);
            if !emit(&probe) {
                return false;
            }
            self.keepalive_pending = false;
        }
        while self.ack_pending || self.acks_owed > 0 {
            let seg = self.segment(now, TcpFlags::ACK, self.snd_nxt, &[]);
            if !emit(&seg) {
                return false;
            }
            self.acked_now();
        }
        true
    }

    fn send_text<F: FnMut(&TcpRepr<'_>) -> bool>(
        &mut self,
        now: Instant,
        stats: &mut TcpStats,
        emit: &mut F,
    ) -> bool {
        if self.sack_permitted && self.cc.in_fast_recovery() {
            return self.send_in_sack_recovery(now, stats, emit);
        }
        while self.sack.rexmit_budget > 0 {
            // Fast retransmit, partial ACKs: the next hole, whatever
            // the window (it was in it when first sent).
            let Some((seq, hole)) = self.sack.next_hole(self.snd_una, self.snd_max) else {
                self.sack.rexmit_budget = 0;
                break;
            };
            if let Some((data, fin)) = self.text_at(seq, hole.min(self.payload_room())) {
                let seg = self.text_segment(now, seq, data, fin);
                if !emit(&seg) {
                    return false;
                }
                let len = data.len() + usize::from(fin);
                self.on_sent(now, seq, len, stats);
                self.sack.rexmit_next = seq + len.max(1);
            } else {
                self.sack.rexmit_next = seq + hole.max(1);
            }
            self.sack.rexmit_budget -= 1;
        }
        self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
        self.sws_held = false;
        loop {
            // What the peer holds (SACKed) is not sent again after a
            // timeout.
            self.snd_nxt = self.sack.skip_sacked(self.snd_nxt, self.snd_una);
            // RFC 5681 §3.1: send no more than min(cwnd, rwnd) past SND.UNA;
            // RFC 3042 (limited transmit): one more segment for each of the
            // first two duplicate ACKs.
            let limited = if self.sack.recover.is_none() && self.dupacks < DUPACK_THRESHOLD {
                self.dupacks * self.mss as u32
            } else {
                0
            };
            let cwnd = self.cc.window().saturating_add(limited);
            let window_end = self.snd_una + self.snd_wnd.min(cwnd);
            let mut room = if window_end.gt(self.snd_nxt) {
                window_end.since(self.snd_nxt) as usize
            } else {
                0
            };
            if room == 0 && self.probe_zero_window {
                room = 1;
            }
            let full = self.payload_room();
            // RFC 9293 §3.8.6.2.1 (sender SWS avoidance), with all data
            // pushed: send when a full segment fits the offered window,
            // when all the queued data does, or when half the largest
            // window ever offered does; else wait for the window to open,
            // or for the override timeout (the persist timer).
            let rwnd_end = self.snd_una + self.snd_wnd;
            let usable = if rwnd_end.gt(self.snd_nxt) {
                rwnd_end.since(self.snd_nxt) as usize
            } else {
                0
            };
            let queued = self.unsent_from(self.snd_nxt);
            if usable > 0
                && queued > usable
                && usable < full
                && usable < (self.max_snd_wnd / 2) as usize
                && !self.sws_override
            {
                self.sws_held = true;
                break;
            }
            let Some((data, fin)) = self.text_at(self.snd_nxt, room.min(full)) else {
                break;
            };
            // A FIN with no room left waits (it takes sequence space).
            if data.is_empty() && room == 0 && self.snd_wnd > 0 {
                break;
            }
            // RFC 9293 §3.7.4 (Nagle), when on: "If there is unacknowledged
            // data, then the sending TCP buffers all user data ... until
            // the TCP can send a full-sized segment."
            if self.nagle
                && data.len() < full
                && !fin
                && self.snd_una != self.snd_max
                && !self.probe_zero_window
            {
                break;
            }
            let seq = self.snd_nxt;
            let seg = self.text_segment(now, seq, data, fin);
            if !emit(&seg) {
                return false;
            }
            let len = data.len() + usize::from(fin);
            self.probe_zero_window = false;
            self.sws_override = false;
            self.on_sent(now, seq, len, stats);
            if fin {
                break;
            }
        }
        // RFC 9293 §3.8.6.1: data waits behind a zero window (or a window
        // too small to use, §3.8.6.2.1) and nothing is in flight: the timer
        // becomes the persist timer.
        if (self.snd_wnd == 0 || self.sws_held)
            && self.snd_una == self.snd_max
            && self.text_at(self.snd_nxt, 1).is_some()
            && self.timers.get(Timer::Rto).is_none()
        {
            self.timers.set(Timer::Rto, now + self.rtt.rto());
        }
        true
    }

    /// Payload bytes that fit in one segment now: the MSS less what the
    /// SACK blocks add to the options (the MSS already leaves room for
    /// timestamps). As Linux's `tcp_current_mss`: a full segment with
    /// SACK blocks beside it would exceed the path's MTU, and a device
    /// drops such a frame without a trace.
    fn payload_room(&self) -> usize {
        if !self.sack_permitted || self.assembler.is_empty() {
            return self.mss;
        }
        let with = TcpOptions {
            timestamps: self.ts_enabled.then_some(Timestamps { tsval: 0, tsecr: 0 }),
            sack_blocks: self.sack_blocks(),
            ..TcpOptions::default()
        };
        let without = if self.ts_enabled { TS_OPTION_LEN } else { 0 };
        self.mss.saturating_sub(with.buffer_len() - without).max(1)
    }

    /// RFC 6675 §5 step 4.3 and (C): while "(cwnd - pipe) >= 1 SMSS",
    /// send the segment NextSeg () picks: (1) the first lost hole not yet
    /// retransmitted, (2) new data the receive window takes, (3) the first
    /// hole not yet retransmitted below SACKed data, (4) once per recovery,
    /// a rescue retransmission of the highest unSACKed segment.
    fn send_in_sack_recovery<F: FnMut(&TcpRepr<'_>) -> bool>(
        &mut self,
        now: Instant,
        stats: &mut TcpStats,
        emit: &mut F,
    ) -> bool {
        let mss = self.mss as u32;
        loop {
            let pipe = self.sack.pipe(self.snd_una, self.snd_max, mss);
            if pipe.saturating_add(mss) > self.cc.window() {
                return true;
            }
            let room = self.payload_room();
            let rx = self.sack.rexmit_next.max(self.snd_una).since(self.snd_una);
            let rwnd_end = self.snd_una + self.snd_wnd;
            let new_room = if rwnd_end.gt(self.snd_max) {
                (rwnd_end.since(self.snd_max) as usize).min(room)
            } else {
                0
            };
            let has_new = new_room > 0 && self.text_at(self.snd_max, new_room).is_some();
            let (seq, max, rexmit) = if let Some((at, len)) = self.sack.hole_from(rx, true, mss) {
                (self.snd_una + at, len as usize, true)
            } else if has_new {
                (self.snd_max, new_room, false)
            } else if let Some((at, len)) = self.sack.hole_from(rx, false, mss) {
                (self.snd_una + at, len as usize, true)
            } else if let Some((at, len)) = self.sack.rescue(self.snd_una, self.snd_max, mss) {
                self.sack.rescued = true;
                (self.snd_una + at, len as usize, false)
            } else {
                return true;
            };
            let Some((data, fin)) = self.text_at(seq, max.min(room)) else {
                return true;
            };
            let seg = self.text_segment(now, seq, data, fin);
            if !emit(&seg) {
                return false;
            }
            let len = data.len() + usize::from(fin);
            self.on_sent(now, seq, len, stats);
            if rexmit {
                self.sack.rexmit_next = self.sack.rexmit_next.max(seq + len.max(1));
            }
        }
    }

    fn text_segment<'a>(
        &self,
        now: Instant,
        seq: SeqNumber,
        data: &'a [u8],
        fin: bool,
    ) -> TcpRepr<'a> {
        let mut flags = TcpFlags::ACK;
        if !data.is_empty() {
            flags = flags | TcpFlags::PSH;
        }
        if fin {
            flags = flags | TcpFlags::FIN;
        }
        self.segment(now, flags, seq, data)
    }

    fn segment<'a>(
        &self,
        now: Instant,
        flags: TcpFlags,
        seq: SeqNumber,
        payload: &'a [u8],
    ) -> TcpRepr<'a> {
        let syn = flags.contains(TcpFlags::SYN);
        let mut options = TcpOptions::default();
        let window_len = if syn {
            // RFC 7323 §2.2: "The window field in a segment where the SYN
            // bit is set ... MUST NOT be scaled."
            options.mss = Some(self.local_mss);
            if self.offer_ws {
                options.window_scale = Some(self.rcv_wscale);
            }
            options.sack_permitted = self.sack_permitted;
            self.rx.free().min(usize::from(u16::MAX)) as u16
        } else {
            (self.advertised_window_bytes() >> self.rcv_wscale) as u16
        };
        if !syn && self.sack_permitted {
            options.sack_blocks = self.sack_blocks();
        }
        if self.ts_enabled {
            // RFC 7323 §3.2: TSecr echoes TS.Recent when ACK is set; 0 on
            // the initial SYN.
            let tsecr = if self.state == State::SynSent {
                0
            } else {
                self.ts_recent
            };
            options.timestamps = Some(Timestamps {
                tsval: self.tsval(now),
                tsecr,
            });
        }
        let ack_number = if flags.contains(TcpFlags::ACK) {
            self.rcv_nxt.0
        } else {
            0
        };
        TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            flags,
            seq_number: seq.0,
            ack_number,
            window_len,
            urgent_at: 0,
            options,
            payload,
        }
    }

    fn tsval(&self, now: Instant) -> u32 {
        (now.millis() as u32).wrapping_add(self.ts_offset)
    }

    /// The window to advertise, in bytes (before scaling).
    pub(super) fn advertised_window_bytes(&self) -> u32 {
        let free = self.rx.free().min(usize::from(u16::MAX) << self.rcv_wscale);
        // Scaling drops low bits: never advertise past the free room.
        ((free >> self.rcv_wscale) << self.rcv_wscale) as u32
    }

    /// RFC 2018 §4: the data held beyond a hole, as SACK blocks, "the
    /// first SACK block ... MUST specify the contiguous block of data
    /// containing the segment which triggered this ACK" (here: the latest
    /// out-of-order segment), then the others, lowest first. The option
    /// carries 3 of them beside timestamps, 4 without.
    fn sack_blocks(&self) -> SackBlocks {
        let mut blocks = SackBlocks::default();
        let ranges = self.assembler.ranges();
        let to_seq = |(s, e): (u32, u32)| ((self.rcv_nxt + s).0, (self.rcv_nxt + e).0);
        let latest = self.last_out_of_order.since(self.rcv_nxt);
        let first = ranges.iter().position(|r| r.0 <= latest && latest < r.1);
        if let Some(i) = first {
            blocks.push(to_seq(ranges[i]));
        }
        for (i, r) in ranges.iter().enumerate() {
            if Some(i) != first && !blocks.push(to_seq(*r)) {
                break;
            }
        }
        blocks
    }

    /// Bookkeeping after a segment occupying `seq..seq+len` went out.
    fn on_sent(&mut self, now: Instant, seq: SeqNumber, len: usize, stats: &mut TcpStats) {
        if len > 0 {
            let end = seq + len;
            if seq.lt(self.snd_max) {
                stats.retransmits += 1;
                // Karn: a retransmission is never timed, nor what it overlaps.
                self.rtt_probe = None;
            } else if self.rtt_probe.is_none() {
                self.rtt_probe = Some((end, now));
            }
            self.snd_nxt = self.snd_nxt.max(end);
            self.snd_max = self.snd_max.max(end);
            // RFC 6298 §5.1: start the timer if it is not running.
            if self.timers.get(Timer::Rto).is_none() {
                self.timers.set(Timer::Rto, now + self.rtt.rto());
            }
        }
        self.acked_now();
    }

    fn acked_now(&mut self) {
        self.ack_pending = false;
        self.timers.clear(Timer::DelayedAck);
        self.last_ack_sent = self.rcv_nxt;
        self.acks_owed = self.acks_owed.saturating_sub(1);
        self.rcv_adv = self.rcv_nxt + self.advertised_window_bytes();
    }

    /// Bytes queued from `seq` to the end of the send buffer.
    fn unsent_from(&self, seq: SeqNumber) -> usize {
        if seq.lt(self.tx_base) {
            return self.tx.len();
        }
        self.tx
            .len()
            .saturating_sub(seq.since(self.tx_base) as usize)
    }

    /// The data (and FIN) at `seq`, at most `max` bytes.
    pub(super) fn text_at(&self, seq: SeqNumber, max: usize) -> Option<(&[u8], bool)> {
        if seq.lt(self.tx_base) {
            return None;
        }
        let offset = seq.since(self.tx_base) as usize;
        if offset > self.tx.len() || (offset == self.tx.len() && !self.fin_queued) {
            return None;
        }
        let chunk = self.tx.peek_at(offset);
        let n = chunk.len().min(max);
        let fin = self.fin_queued && offset + n == self.tx.len();
        if n == 0 && !fin {
            return None;
        }
        Some((&chunk[..n], fin))
    }
}
