//! ICMPv4 behaviour of a host (RFC 792, RFC 1122 §3.2.2): which received
//! datagrams may be answered with an error, and the rate limit on errors.
//!
//! The messages themselves are [`Icmpv4Repr`](crate::wire::Icmpv4Repr);
//! the stacks that answer echo requests and send errors use these rules.

use core::net::Ipv4Addr;
use core::time::Duration;

use crate::time::Instant;
use crate::wire::EthernetAddress;

/// The longest datagram an ICMP error may make (RFC 1122 §3.2.2: the error
/// "SHOULD include as much of the original datagram as possible without the
/// length of the ICMP datagram exceeding 576 bytes").
pub const MAX_ERROR_DATAGRAM: usize = 576;

/// Whether a received datagram may be answered with an ICMP error.
///
/// RFC 1122 §3.2.2: an ICMP error message MUST NOT be sent as the result of
/// receiving an ICMP error message, a datagram destined to an IP broadcast
/// or multicast address, a datagram sent as a link-layer broadcast (or
/// multicast), a non-initial fragment, or a datagram whose source address
/// does not define a single host (zero, loopback, broadcast, multicast).
/// Fragments never get this far (the parser drops them); ICMP errors are the
/// caller's to exclude.
pub fn may_answer_with_error(
    link_dst: EthernetAddress,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    prefix_len: u8,
) -> bool {
    let directed_broadcast = |a: Ipv4Addr| {
        let host_bits = 32u32.saturating_sub(u32::from(prefix_len.min(32)));
        host_bits >= 2 && {
            let mask = if host_bits >= 32 {
                u32::MAX
            } else {
                (1u32 << host_bits) - 1
            };
            u32::from(a) & mask == mask
        }
    };
    link_dst.is_unicast()
        && !dst.is_broadcast()
        && !dst.is_multicast()
        && !directed_broadcast(dst)
        && !src.is_unspecified()
        && !src.is_loopback()
        && !src.is_broadcast()
        && !src.is_multicast()
        && !directed_broadcast(src)
}

/// A token bucket: at most `burst` messages at once, refilled at `rate`
/// per second. RFC 1122 §3.2.2 lets a host limit the rate of its ICMP error
/// messages; RFC 1812 §4.3.2.8 describes the token bucket (Linux uses one
/// too, `icmp_ratelimit`).
#[derive(Debug, Clone)]
pub struct RateLimit {
    rate: u32,
    burst: u32,
    /// Tokens, in millionths of a message.
    tokens: u64,
    last: Instant,
}

const MICRO: u64 = 1_000_000;

impl RateLimit {
    /// A full bucket at the origin: `rate` messages per second, `burst`
    /// at once. A rate of 0 never allows a message after the burst.
    pub fn new(rate: u32, burst: u32) -> RateLimit {
        RateLimit {
            rate,
            burst,
            tokens: u64::from(burst) * MICRO,
            last: Instant::ZERO,
        }
    }

    /// Take a token at `now`, if there is one.
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed: Duration = now.saturating_since(self.last);
        self.last = self.last.max(now);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        // rate messages per second = rate millionths of a message per µs.
        let add = micros.saturating_mul(u64::from(self.rate));
        self.tokens = self
            .tokens
            .saturating_add(add)
            .min(u64::from(self.burst) * MICRO);
        if self.tokens >= MICRO {
            self.tokens -= MICRO;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let mut r = RateLimit::new(100, 5);
        let t0 = Instant::from_millis(1000);
        let n = (0..20).filter(|_| r.allow(t0)).count();
        assert_eq!(n, 5);
        // 100/s: one token per 10 ms.
        assert!(!r.allow(t0 + Duration::from_millis(9)));
        assert!(r.allow(t0 + Duration::from_millis(10)));
        assert!(!r.allow(t0 + Duration::from_millis(10)));
        // Refill stops at the burst.
        let later = t0 + Duration::from_secs(10);
        assert_eq!((0..20).filter(|_| r.allow(later)).count(), 5);
        // A clock that goes back does not mint tokens.
        assert!(!r.allow(t0));
    }

    #[test]
    fn errors_only_for_single_host_unicast() {
        let us = Ipv4Addr::new(198, 18, 0, 3);
        let peer = Ipv4Addr::new(198, 18, 0, 2);
        let uni = EthernetAddress([2, 0, 0, 0, 0, 1]);
        assert!(may_answer_with_error(uni, peer, us, 24));
        assert!(!may_answer_with_error(
            EthernetAddress::BROADCAST,
            peer,
            us,
            24
        ));
        for (src, dst) in [
            (peer, Ipv4Addr::BROADCAST),
            (peer, Ipv4Addr::new(198, 18, 0, 255)),
            (peer, Ipv4Addr::new(224, 0, 0, 1)),
            (Ipv4Addr::UNSPECIFIED, us),
            (Ipv4Addr::LOCALHOST, us),
            (Ipv4Addr::new(198, 18, 0, 255), us),
        ] {
            assert!(!may_answer_with_error(uni, src, dst, 24), "{src} -> {dst}");
        }
        // A /31 has no broadcast address (RFC 3021).
        assert!(may_answer_with_error(
            uni,
            Ipv4Addr::new(198, 18, 0, 1),
            Ipv4Addr::new(198, 18, 0, 0),
            31
        ));
    }
}
