//! Initial sequence numbers, RFC 6528.

use crate::flow::{FlowHasher, FlowKey};
use crate::time::Instant;

use super::SeqNumber;

/// RFC 6528 §3: `ISN = M + F(localip, localport, remoteip, remoteport,
/// secretkey)`, where M is a timer that ticks every 4 microseconds and F a
/// keyed function of the 4-tuple. F here is the stack's keyed flow hash
/// under its own secret (not MD5, which the RFC offers as one choice of
/// PRF): an off-path attacker who does not know the secret cannot predict
/// the ISN of a connection.
#[derive(Debug, Clone)]
pub struct IsnGenerator {
    hasher: FlowHasher,
}

impl IsnGenerator {
    /// A generator keyed by `secret` (drawn once per process by the caller).
    pub fn new(secret: [u64; 4]) -> IsnGenerator {
        IsnGenerator {
            hasher: FlowHasher::new(secret),
        }
    }

    /// The ISN of a connection with key `flow`, opened at `now`.
    pub fn isn(&self, flow: &FlowKey, now: Instant) -> SeqNumber {
        let f = self.hasher.hash_flow(flow) as u32;
        let m = (now.micros() / 4) as u32;
        SeqNumber(m.wrapping_add(f))
    }

    /// A per-connection offset for the timestamp clock (RFC 7323 §5.4
    /// recommends a random one per connection), from the other half of the
    /// same keyed hash.
    pub fn ts_offset(&self, flow: &FlowKey) -> u32 {
        (self.hasher.hash_flow(flow) >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_by_secret_and_tuple_and_ticks_every_4us() {
        let key = crate::flow::test_key(1);
        let other = crate::flow::test_key(2);
        let g = IsnGenerator::new([1, 2, 3, 4]);
        let t = Instant::from_micros(1000);
        assert_eq!(g.isn(&key, t), g.isn(&key, t));
        assert_ne!(g.isn(&key, t), g.isn(&other, t));
        assert_ne!(g.isn(&key, t), IsnGenerator::new([5, 6, 7, 8]).isn(&key, t));
        assert_eq!(g.isn(&key, Instant::from_micros(1040)) - g.isn(&key, t), 10);
    }
}
