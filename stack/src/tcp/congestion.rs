//! Congestion control: NewReno (RFC 5681 with RFC 6582's fast recovery)
//! or CUBIC (RFC 9438), selected by [`Algorithm`]. Both share slow start
//! and the fast recovery machinery; they differ in how the window grows in
//! congestion avoidance and how far it falls on a loss.

use core::time::Duration;

use crate::time::Instant;

/// Which congestion control a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// RFC 5681 / RFC 6582.
    #[default]
    NewReno,
    /// RFC 9438.
    Cubic,
}

/// RFC 9438 §4.1: C = 0.4 (segments per second cubed).
const CUBIC_C: f64 = 0.4;
/// RFC 9438 §4.6: beta_cubic = 0.7.
const CUBIC_BETA: f64 = 0.7;

/// CUBIC's state, in segments and seconds (RFC 9438 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Cubic {
    /// W_max: the window before the last reduction.
    w_max: f64,
    /// K: the time the cubic takes to come back to W_max.
    k: f64,
    /// When the current congestion avoidance epoch began.
    epoch: Option<Instant>,
    /// W_est: the window standard TCP would have (§4.3).
    w_est: f64,
}

/// The congestion window and slow-start threshold of one connection, in
/// bytes, and the events that move them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Congestion {
    algorithm: Algorithm,
    cwnd: u32,
    ssthresh: u32,
    /// Bytes acknowledged in congestion avoidance since cwnd last grew.
    bytes_acked: u32,
    /// In fast recovery (RFC 6582 §3.2), as opposed to recovering from a
    /// timeout.
    fast_recovery: bool,
    cubic: Cubic,
}

impl Congestion {
    /// RFC 6928 §2 (what Linux uses): IW = min(10*MSS, max(2*MSS, 14600)).
    /// RFC 5681 §3.1: "The initial value of ssthresh SHOULD be set
    /// arbitrarily high".
    pub fn new(algorithm: Algorithm, mss: u32) -> Congestion {
        Congestion {
            algorithm,
            cwnd: (10 * mss).min((2 * mss).max(14600)),
            ssthresh: u32::MAX,
            bytes_acked: 0,
            fast_recovery: false,
            cubic: Cubic::default(),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
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

    /// New data acknowledged outside fast recovery, at `now`, with the
    /// smoothed RTT `rtt` (CUBIC looks one RTT ahead).
    pub fn on_ack(&mut self, acked: u32, mss: u32, now: Instant, rtt: Duration) {
        if self.cwnd >= self.ssthresh && self.algorithm == Algorithm::Cubic {
            self.cubic_ack(acked, mss, now, rtt);
            return;
        }
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

    /// RFC 9438 §4.2: W_cubic(t) = C*(t-K)^3 + W_max; the window moves
    /// towards its value one RTT ahead, at most 1.5 times per RTT, and never
    /// below the window standard TCP would have reached (§4.3).
    fn cubic_ack(&mut self, acked: u32, mss: u32, now: Instant, rtt: Duration) {
        let m = f64::from(mss);
        let cwnd = f64::from(self.cwnd) / m;
        let c = &mut self.cubic;
        let epoch = *c.epoch.get_or_insert_with(|| {
            // §4.2: a new epoch begins at the first ACK in congestion
            // avoidance; K from W_max and the window now (eq. 2).
            if cwnd < c.w_max {
                c.k = ((c.w_max - cwnd) / CUBIC_C).cbrt();
            } else {
                c.k = 0.0;
                c.w_max = cwnd;
            }
            c.w_est = cwnd;
            now
        });
        let t = now.saturating_since(epoch).as_secs_f64() + rtt.as_secs_f64();
        let target = (CUBIC_C * (t - c.k).powi(3) + c.w_max).clamp(cwnd, 1.5 * cwnd);
        let segments = f64::from(acked) / m;
        // §4.3: W_est grows by alpha_cubic per window acknowledged,
        // alpha_cubic = 3 (1 - beta) / (1 + beta).
        let alpha = 3.0 * (1.0 - CUBIC_BETA) / (1.0 + CUBIC_BETA);
        c.w_est += alpha * segments / cwnd;
        // §4.4: "cwnd SHOULD be incremented by (target - cwnd) / cwnd for
        // each received new ACK" (per segment acknowledged, here).
        let next = (cwnd + (target - cwnd) / cwnd * segments).max(c.w_est);
        let bytes = (next * m).min(f64::from(u32::MAX / 2)) as u32;
        self.cwnd = self.cwnd.max(bytes);
    }

    /// A loss: RFC 5681 eq. 4 for NewReno, ssthresh = max(FlightSize / 2,
    /// 2*SMSS); RFC 9438 §4.6 for CUBIC, ssthresh = cwnd * beta_cubic,
    /// with W_max remembered (and lowered by fast convergence, §4.7).
    fn halve(&mut self, flight: u32, mss: u32) {
        self.ssthresh = match self.algorithm {
            Algorithm::NewReno => (flight / 2).max(2 * mss),
            Algorithm::Cubic => {
                let m = f64::from(mss);
                let cwnd = f64::from(self.cwnd) / m;
                let c = &mut self.cubic;
                c.w_max = if cwnd < c.w_max {
                    cwnd * (1.0 + CUBIC_BETA) / 2.0
                } else {
                    cwnd
                };
                c.epoch = None;
                ((cwnd * CUBIC_BETA * m) as u32).max(2 * mss)
            }
        };
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

    /// Loss recovery with SACK begins: RFC 6675 §5 step 4.2, "ssthresh =
    /// cwnd = (FlightSize / 2)" (per the algorithm's own reduction; no
    /// window inflation: the pipe estimate counts what left the network).
    pub fn on_sack_recovery(&mut self, flight: u32, mss: u32) {
        self.halve(flight, mss);
        self.cwnd = self.ssthresh;
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

    const RTT: Duration = Duration::from_millis(10);

    #[test]
    fn rfc5681_and_6582_values() {
        let mss = 1000;
        let t = Instant::ZERO;
        let mut c = Congestion::new(Algorithm::NewReno, mss);
        assert_eq!(c.window(), 10_000);
        c.on_ack(5000, mss, t, RTT);
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
        let mut c = Congestion::new(Algorithm::NewReno, mss);
        c.on_timeout(30_000, mss, true);
        assert_eq!((c.ssthresh(), c.window()), (15_000, 1000));
        c.on_timeout(30_000, mss, false);
        assert_eq!(c.ssthresh(), 15_000, "held on a repeated timeout");
        c.on_ack(14_000, mss, t, RTT);
        assert_eq!(c.window(), 15_000);
        for _ in 0..15 {
            c.on_ack(1000, mss, t, RTT);
        }
        assert_eq!(c.window(), 16_000);
    }
}

#[cfg(test)]
mod cubic_tests {
    use super::*;

    #[test]
    fn rfc9438_reduction_and_regrowth() {
        let mss = 1000;
        let rtt = Duration::from_millis(100);
        let mut c = Congestion::new(Algorithm::Cubic, mss);
        assert_eq!(c.algorithm(), Algorithm::Cubic);
        // Slow start as NewReno, up to 100 segments.
        c.on_ack(90_000, mss, Instant::ZERO, rtt);
        assert_eq!(c.window(), 100_000);
        // A loss: ssthresh = 0.7 * cwnd (not half the flight).
        c.on_fast_retransmit(100_000, mss);
        assert_eq!(c.ssthresh(), 70_000);
        c.on_full_ack();
        assert_eq!(c.window(), 70_000);
        // K = cbrt(W_max (1 - beta) / C) = cbrt(100 * 0.3 / 0.4) = 4.217 s.
        // The window follows W_cubic one RTT ahead: concave below W_max,
        // flat around K, convex past it.
        let at = |c: &mut Congestion, from: u64, to: u64| {
            for ms in (from..to).step_by(10) {
                c.on_ack(7000, mss, Instant::from_millis(ms + 10), rtt);
            }
            c.window()
        };
        // W_cubic(2.1 s) = 100 - 0.4 * 2.117^3 = 96.2 segments.
        let w = at(&mut c, 0, 2000);
        assert!((95_000..=97_500).contains(&w), "{w}");
        // At K - RTT: W_max.
        let w = at(&mut c, 2000, 4117);
        assert!((99_500..=100_500).contains(&w), "{w}");
        // W_cubic(6.1 s) = 100 + 0.4 * 1.883^3 = 102.7 segments.
        let w = at(&mut c, 4117, 6000);
        assert!((102_000..=103_500).contains(&w), "{w}");
        // Fast convergence: a loss below the last W_max lowers it.
        let mut d = Congestion::new(Algorithm::Cubic, mss);
        d.on_ack(90_000, mss, Instant::ZERO, rtt);
        d.on_fast_retransmit(100_000, mss);
        d.on_full_ack();
        d.on_fast_retransmit(70_000, mss);
        assert_eq!(d.ssthresh(), 49_000);
        assert!((d.cubic.w_max - 70.0 * 0.85).abs() < 1e-9);
    }
}
