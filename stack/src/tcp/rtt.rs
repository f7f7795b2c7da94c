//! The retransmission timer's value, RFC 6298.

use core::time::Duration;

/// RFC 6298 §2: "K = 4".
const K: u32 = 4;

/// SRTT, RTTVAR and the current RTO of a connection (RFC 6298 §2), with
/// the exponential backoff of §5.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RttEstimator {
    /// Smoothed round-trip time; `None` before the first measurement.
    srtt: Option<Duration>,
    rttvar: Duration,
    /// RTO before backoff.
    base: Duration,
    /// Times the timer expired since the last new acknowledgment.
    backoffs: u32,
    min: Duration,
    max: Duration,
}

impl RttEstimator {
    /// RFC 6298 §2.1: "Until a round-trip time (RTT) measurement has been
    /// made ..., the sender SHOULD set RTO <- 1 second" (`initial`);
    /// RFC 6298 §2.4 "MAY" lower bound `min` (Linux uses 200 ms), and §2.5
    /// "A maximum value MAY be placed on RTO provided it is at least 60
    /// seconds" (`max`).
    pub fn new(initial: Duration, min: Duration, max: Duration) -> RttEstimator {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            base: initial,
            backoffs: 0,
            min,
            max,
        }
    }

    /// Take a measurement `r` of a segment that was not retransmitted
    /// (Karn's rule, RFC 6298 §3, is the caller's to keep).
    pub fn sample(&mut self, r: Duration) {
        match self.srtt {
            // RFC 6298 §2.2: SRTT <- R, RTTVAR <- R/2.
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            // RFC 6298 §2.3: RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|,
            // SRTT <- (1 - alpha) * SRTT + alpha * R', alpha = 1/8, beta = 1/4.
            Some(srtt) => {
                let diff = srtt.abs_diff(r);
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((srtt * 7 + r) / 8);
            }
        }
        // RFC 6298 §2.2/2.3: RTO <- SRTT + max(G, K*RTTVAR); the clock
        // granularity G is a microsecond here.
        let srtt = self.srtt.unwrap_or_default();
        self.base = srtt + (self.rttvar * K).max(Duration::from_micros(1));
        self.backoffs = 0;
    }

    /// RFC 6298 §5.5: "The host MUST set RTO <- RTO * 2 ("back off the
    /// timer")", bounded by the maximum (§2.5).
    pub fn back_off(&mut self) {
        self.backoffs = self.backoffs.saturating_add(1);
    }

    /// A new acknowledgment arrived: the backed-off value is forgotten
    /// (RFC 6298 §5.7 lets the next measurement restore it; Linux does it
    /// at once).
    pub fn reset_backoff(&mut self) {
        self.backoffs = 0;
    }

    /// The current RTO: the computed value clamped to [min, max] (RFC 6298
    /// §2.4, §2.5), doubled per backoff.
    pub fn rto(&self) -> Duration {
        let base = self.base.clamp(self.min, self.max);
        let factor = 1u32.checked_shl(self.backoffs.min(31)).unwrap_or(u32::MAX);
        base.checked_mul(factor).unwrap_or(self.max).min(self.max)
    }

    /// The smoothed RTT, once measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn rfc6298_values_and_backoff() {
        let mut r = RttEstimator::new(ms(1000), ms(200), ms(60_000));
        assert_eq!(r.rto(), ms(1000));
        r.back_off();
        assert_eq!(r.rto(), ms(2000));
        r.sample(ms(100));
        // SRTT 100, RTTVAR 50: RTO = 100 + 4*50 = 300.
        assert_eq!(r.rto(), ms(300));
        r.sample(ms(300));
        // RTTVAR = 3/4*50 + 1/4*200 = 87.5; SRTT = 7/8*100 + 1/8*300 = 125.
        assert_eq!(r.srtt(), Some(ms(125)));
        assert_eq!(r.rto(), ms(125) + Duration::from_micros(87_500) * 4);
        for _ in 0..20 {
            r.back_off();
        }
        assert_eq!(r.rto(), ms(60_000));
        r.reset_backoff();
        r.sample(ms(1));
        // Clamped to the minimum.
        assert!(r.rto() >= ms(200));
    }
}
