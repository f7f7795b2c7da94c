//! Congestion control: NewReno (RFC 5681 with RFC 6582's fast recovery).
//! CUBIC (RFC 9438) comes in a later slice behind the same calls.

/// The congestion window and slow-start threshold of one connection, in
/// bytes, and the events that move them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewReno {
    cwnd: u32,
    ssthresh: u32,
    /// Bytes acknowledged in congestion avoidance since cwnd last grew.
    bytes_acked: u32,
    /// In fast recovery (RFC 6582 §3.2), as opposed to recovering from a
    /// timeout.
    fast_recovery: bool,
}

impl NewReno {
    /// RFC 6928 §2 (what Linux uses): IW = min(10*MSS, max(2*MSS, 14600)).
    /// RFC 5681 §3.1: "The initial value of ssthresh SHOULD be set
    /// arbitrarily high".
    pub fn new(mss: u32) -> NewReno {
        NewReno {
            cwnd: (10 * mss).min((2 * mss).max(14600)),
            ssthresh: u32::MAX,
            bytes_acked: 0,
            fast_recovery: false,
        }
    }

    /// The congestion window, bytes.
    pub fn window(&self) -> u32 {
        self.cwnd
    }

    /// The slow-start threshold, bytes.
    pub fn ssthresh(&self) -> u32 {
        self.ssthresh
    }

    /// In fast recovery.
    pub fn in_fast_recovery(&self) -> bool {
        self.fast_recovery
    }

    /// New data acknowledged outside fast recovery.
    pub fn on_ack(&mut self, acked: u32, mss: u32) {
        if self.cwnd < self.ssthresh {
            // RFC 5681 §3.1, slow start, counting the bytes acknowledged
            // (RFC 3465) without its per-ACK limit L, as Linux does: a
            // stack that acknowledges one batch of segments at a time sends
            // stretch ACKs, and "cwnd += min (N, SMSS)" (eq. 2) would then
            // grow the window by one segment per round trip instead of
            // doubling it. Never past ssthresh by more than one ACK's worth.
            self.cwnd = self.cwnd.saturating_add(acked);
        } else {
            // RFC 5681 §3.1, congestion avoidance, by byte counting: one
            // SMSS per cwnd of data acknowledged (RFC 3465 §2.1).
            self.bytes_acked = self.bytes_acked.saturating_add(acked);
            if self.bytes_acked >= self.cwnd {
                self.bytes_acked -= self.cwnd;
                self.cwnd = self.cwnd.saturating_add(mss);
            }
        }
    }

    /// RFC 5681 eq. 4: ssthresh = max(FlightSize / 2, 2*SMSS).
    fn halve(&mut self, flight: u32, mss: u32) {
        self.ssthresh = (flight / 2).max(2 * mss);
        self.bytes_acked = 0;
    }

    /// The third duplicate ACK: RFC 5681 §3.2 steps 2-3 (RFC 6582 §3.2
    /// step 2 keeps `recover`; that is the caller's).
    pub fn on_fast_retransmit(&mut self, flight: u32, mss: u32) {
        self.halve(flight, mss);
        // "set cwnd to ssthresh plus 3*SMSS" (step 3).
        self.cwnd = self.ssthresh.saturating_add(3 * mss);
        self.fast_recovery = true;
    }

    /// A further duplicate ACK in fast recovery: RFC 5681 §3.2 step 4,
    /// "increment cwnd by SMSS".
    pub fn on_dupack(&mut self, mss: u32) {
        if self.fast_recovery {
            self.cwnd = self.cwnd.saturating_add(mss);
        }
    }

    /// RFC 6582 §3.2 step 5, partial acknowledgment: "deflate the
    /// congestion window by the amount of new data acknowledged ... If the
    /// partial ACK acknowledges at least one SMSS of new data, then add
    /// back SMSS bytes".
    pub fn on_partial_ack(&mut self, acked: u32, mss: u32) {
        self.cwnd = self.cwnd.saturating_sub(acked).max(mss);
        if acked >= mss {
            self.cwnd = self.cwnd.saturating_add(mss);
        }
    }

    /// RFC 6582 §3.2 step 3, full acknowledgment: cwnd = ssthresh (its
    /// option 2, what Linux ends recovery with; option 1, min(ssthresh,
    /// FlightSize + SMSS), leaves a window of a segment or two when the
    /// receive window held the flight back, and a loss then finds too few
    /// duplicate ACKs), and recovery ends.
    pub fn on_full_ack(&mut self) {
        self.cwnd = self.ssthresh;
        self.fast_recovery = false;
    }

    /// The retransmission timer expired. RFC 5681 §3.1: ssthresh per eq. 4
    /// on the first timeout of a segment ("held constant" on later ones),
    /// and "cwnd MUST be set to no more than the loss window, LW, which
    /// equals 1 full-sized segment".
    pub fn on_timeout(&mut self, flight: u32, mss: u32, first: bool) {
        if first {
            self.halve(flight, mss);
        }
        self.cwnd = mss;
        self.fast_recovery = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5681_and_6582_values() {
        let mss = 1000;
        let mut c = NewReno::new(mss);
        assert_eq!(c.window(), 10_000);
        c.on_ack(5000, mss);
        assert_eq!(c.window(), 15_000, "slow start: what the ACK covers");
        c.on_fast_retransmit(20_000, mss);
        assert_eq!((c.ssthresh(), c.window()), (10_000, 13_000));
        c.on_dupack(mss);
        assert_eq!(c.window(), 14_000);
        c.on_partial_ack(3000, mss);
        assert_eq!(c.window(), 12_000);
        c.on_full_ack();
        assert_eq!(c.window(), 10_000);
        assert!(!c.in_fast_recovery());
        // Congestion avoidance: one MSS per window acknowledged.
        let mut c = NewReno::new(mss);
        c.on_timeout(30_000, mss, true);
        assert_eq!((c.ssthresh(), c.window()), (15_000, 1000));
        c.on_timeout(30_000, mss, false);
        assert_eq!(c.ssthresh(), 15_000, "held on a repeated timeout");
        c.on_ack(14_000, mss);
        assert_eq!(c.window(), 15_000);
        for _ in 0..15 {
            c.on_ack(1000, mss);
        }
        assert_eq!(c.window(), 16_000);
    }
}
