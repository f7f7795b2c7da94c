//! The timeouts (RFC 9293 §3.10.8): retransmission and persist, delayed
//! ACK, TIME-WAIT and FIN-WAIT-2, keepalive. Their deadlines live in one
//! [`TimerTable`], so that what fires next is one lookup
//! ([`Tcb::poll_at`]) and [`Tcb::on_timer`] runs those due by name.

use super::{Tcb, TcpStats};
use crate::error::Error;
use crate::tcp::State;
use crate::time::Instant;

/// A connection's timers, one deadline each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// A delayed ACK is owed by then.
    DelayedAck,
    /// TIME-WAIT's 2*MSL, or an orphan's FIN-WAIT-2 timeout.
    Linger,
    /// When the next keepalive probe is due (or the connection given up).
    Keepalive,
    /// Retransmission (RFC 6298); with nothing in flight and data waiting
    /// behind the window, the persist timer (RFC 9293 §3.8.6.1) or the
    /// override timeout of sender SWS avoidance (§3.8.6.2.1).
    Rto,
}

impl Timer {
    /// Every timer, in the order [`Tcb::on_timer`] runs those due: the
    /// delayed ACK first; the end of TIME-WAIT or FIN-WAIT-2 closes the
    /// connection and nothing else runs; keepalive may give up on the peer
    /// before a retransmission is tried.
    const VALUES: [Timer; 4] = [
        Timer::DelayedAck,
        Timer::Linger,
        Timer::Keepalive,
        Timer::Rto,
    ];
}

/// One deadline per [`Timer`], or none when it is stopped.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TimerTable {
    data: [Option<Instant>; Timer::VALUES.len()],
}

impl TimerTable {
    /// Arm `timer` for `at`, replacing its deadline if it had one.
    pub(super) fn set(&mut self, timer: Timer, at: Instant) {
        self.data[timer as usize] = Some(at);
    }

    /// Stop `timer`.
    pub(super) fn clear(&mut self, timer: Timer) {
        self.data[timer as usize] = None;
    }

    /// Stop every timer (a closed connection waits for nothing).
    pub(super) fn clear_all(&mut self) {
        self.data = [None; Timer::VALUES.len()];
    }

    /// The deadline of `timer`, if it runs.
    pub(super) fn get(&self, timer: Timer) -> Option<Instant> {
        self.data[timer as usize]
    }

    /// `timer` runs and its deadline is at or before `now`.
    pub(super) fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|t| t <= now)
    }

    /// The earliest deadline of all.
    pub(super) fn next(&self) -> Option<Instant> {
        self.data.iter().flatten().min().copied()
    }
}

impl Tcb {
    /// The earliest time [`on_timer`](Self::on_timer) has something to do.
    pub fn poll_at(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Run the timers that are due at `now`.
    pub fn on_timer(&mut self, now: Instant, stats: &mut TcpStats) {
        for timer in Timer::VALUES {
            if !self.timers.is_expired(timer, now) {
                continue;
            }
            match timer {
                Timer::DelayedAck => {
                    // The delayed ACK is due.
                    self.timers.clear(Timer::DelayedAck);
                    self.ack_pending = true;
                }
                Timer::Linger => {
                    // "TIME-WAIT TIMEOUT: If the time-wait timeout expires on a
                    // connection, delete the TCB, enter the CLOSED state"; an
                    // orphan's FIN-WAIT-2 timeout (Linux tcp_fin_timeout) too.
                    self.enter_closed(None);
                    return;
                }
                Timer::Keepalive => {
                    self.on_keepalive_timer(now, stats);
                    if self.state == State::Closed {
                        return;
                    }
                }
                Timer::Rto => self.on_rto_timer(now, stats),
            }
        }
    }

    /// The retransmission timer expired: a zero-window probe, the SWS
    /// override, or a retransmission (or giving up).
    fn on_rto_timer(&mut self, now: Instant, stats: &mut TcpStats) {
        let outstanding = self.snd_una != self.snd_max;
        let unsent = self.text_at(self.snd_max, 1).is_some();
        if self.snd_wnd == 0 && self.state.is_synchronized() && (unsent || outstanding) {
            // RFC 9293 §3.8.6.1: the window is zero: the timer is the
            // persist timer, and its expiry sends a probe (the first byte
            // not acknowledged). MUST-8: never give up while the peer
            // answers, so no retry is counted.
            stats.window_probes += 1;
            self.probe_zero_window = true;
            self.snd_nxt = self.snd_una;
            self.rtt_probe = None;
            self.rtt.back_off();
            self.timers.set(Timer::Rto, now + self.rtt.rto());
            return;
        }
        if !outstanding {
            // §3.8.6.2.1 (4): "the override timeout occurs": send what the
            // small window takes.
            if self.sws_held && unsent {
                self.sws_override = true;
            }
            self.timers.clear(Timer::Rto);
            return;
        }
        // "RETRANSMISSION TIMEOUT": give up after the configured retries
        // (RFC 9293 §3.8.3, R2; Linux's tcp_syn_retries / tcp_retries2).
        self.retries += 1;
        let limit = if self.state.is_synchronized() {
            self.max_retries
        } else {
            self.syn_retries
        };
        if self.retries > limit {
            stats.timeouts += 1;
            let error = (!self.passive || self.state.is_synchronized()).then_some(Error::TimedOut);
            self.enter_closed(error);
            return;
        }
        stats.rto_expiries += 1;
        // RFC 6298 §5.4: "Retransmit the earliest segment that has not been
        // acknowledged" (here everything from it: go-back-N); §5.5: back
        // off; §5.6: restart the timer.
        let flight = self.snd_max.since(self.snd_una);
        self.cc
            .on_timeout(flight, self.mss as u32, self.retries == 1);
        self.snd_nxt = self.snd_una;
        self.rtt.back_off();
        self.rtt_probe = None;
        self.dupacks = 0;
        // RFC 6582 §4: after a timeout, no fast retransmit until what was
        // sent before it is acknowledged.
        self.sack.recover = Some(self.snd_max);
        self.timers.set(Timer::Rto, now + self.rtt.rto());
    }

    /// RFC 1122 §4.2.3.6: an idle connection gets a probe, "a segment
    /// with SEG.SEQ = SND.NXT-1" and no data (Linux: SND.UNA - 1), which
    /// the peer answers with an ACK; after `probes` unanswered ones, Linux
    /// sends a reset and the connection fails with ETIMEDOUT. While data
    /// is in flight or queued, retransmission covers the peer instead.
    fn on_keepalive_timer(&mut self, now: Instant, stats: &mut TcpStats) {
        let Some(k) = self.keepalive else {
            self.timers.clear(Timer::Keepalive);
            return;
        };
        if !matches!(self.state, State::Established | State::CloseWait) {
            self.timers.clear(Timer::Keepalive);
            return;
        }
        let busy = self.snd_una != self.snd_max || self.text_at(self.snd_max, 1).is_some();
        if busy {
            self.keepalive_sent = 0;
            self.timers.set(Timer::Keepalive, now + k.idle);
            return;
        }
        if self.keepalive_sent >= k.probes {
            stats.keepalive_timeouts += 1;
            self.rst_pending = true;
            self.enter_closed(Some(Error::TimedOut));
            return;
        }
        self.keepalive_sent += 1;
        self.keepalive_pending = true;
        stats.keepalive_probes += 1;
        self.timers.set(Timer::Keepalive, now + k.interval);
    }

    /// The peer was heard from: keepalive starts counting the idle time
    /// again.
    pub(super) fn heard(&mut self, now: Instant) {
        self.keepalive_sent = 0;
        // SYN-RECEIVED too: the ACK that ends the handshake is heard
        // before the state changes.
        let open = self.state.is_synchronized() || self.state == State::SynReceived;
        match self.keepalive {
            Some(k) if open => self.timers.set(Timer::Keepalive, now + k.idle),
            _ => self.timers.clear(Timer::Keepalive),
        }
    }
}
