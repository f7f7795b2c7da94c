//! SYN cookies (RFC 4987 §3.6): when a listener's SYN queue is full, the
//! state of a half-open connection travels in the ISN of the SYN-ACK
//! instead of a queue, and comes back in the final ACK.
//!
//! The ISN's 32 bits (this stack's layout, not Linux's):
//!
//! | bits | what |
//! | --- | --- |
//! | 31-27 | time slot, 64 s each, modulo 32 |
//! | 26-24 | index of the peer's MSS in [`MSS_TABLE`] (largest entry not above it) |
//! | 23-20 | the peer's window scale shift, 15 for none |
//! | 19 | the peer offered SACK |
//! | 18-0 | 19 bits of a keyed hash of the 4-tuple, the peer's ISN, the slot and the fields above |
//!
//! A cookie is valid for the slot it was made in and the next (64 to
//! 128 s). A blind attacker must guess 19 bits per try. Timestamps are not
//! encoded: the final ACK carries them if the SYN-ACK offered them.

use crate::flow::{FlowHasher, FlowKey};
use crate::time::Instant;

use super::SeqNumber;

/// MSS values a cookie can carry (the peer's MSS is rounded down to one).
pub const MSS_TABLE: [u16; 8] = [536, 1200, 1360, 1400, 1440, 1460, 4312, 8960];
const SLOT_MICROS: u64 = 64_000_000;
const MAC_BITS: u32 = 19;
const NO_SCALE: u32 = 15;

/// What a cookie remembers of the peer's SYN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieOptions {
    /// The peer's MSS, rounded down to an entry of [`MSS_TABLE`].
    pub mss: u16,
    /// The peer's window scale shift, if it offered one.
    pub window_scale: Option<u8>,
    /// The peer offered SACK.
    pub sack_permitted: bool,
}

/// Makes and checks cookies under a secret of its own.
#[derive(Debug, Clone)]
pub struct SynCookies {
    hasher: FlowHasher,
}

impl SynCookies {
    /// Cookies keyed by `secret` (drawn once per process).
    pub fn new(secret: [u64; 4]) -> SynCookies {
        SynCookies {
            hasher: FlowHasher::new(secret),
        }
    }

    fn slot(now: Instant) -> u32 {
        (now.micros() / SLOT_MICROS) as u32
    }

    fn mac(&self, key: &FlowKey, irs: SeqNumber, slot: u32, fields: u32) -> u32 {
        let tuple = self.hasher.hash_flow(key);
        let word = (u64::from(irs.0) << 32) | u64::from(fields) | (u64::from(slot) << 13);
        let mixed = self
            .hasher
            .hash_words(key.local_addr, key.remote_addr, word ^ tuple);
        (mixed as u32) & ((1 << MAC_BITS) - 1)
    }

    /// The ISN that encodes `opts` for a SYN with sequence number `irs` on
    /// `key`, at `now`.
    pub fn encode(
        &self,
        key: &FlowKey,
        irs: SeqNumber,
        now: Instant,
        opts: CookieOptions,
    ) -> SeqNumber {
        let slot = Self::slot(now);
        let mss_index = MSS_TABLE.iter().rposition(|m| *m <= opts.mss).unwrap_or(0) as u32;
        let ws = opts.window_scale.map_or(NO_SCALE, |w| u32::from(w.min(14)));
        let fields = ((slot % 32) << 27)
            | (mss_index << 24)
            | (ws << 20)
            | (u32::from(opts.sack_permitted) << 19);
        SeqNumber(fields | self.mac(key, irs, slot, fields))
    }

    /// The options a cookie `iss` carries, if it is one this secret made
    /// for `key` and the peer's ISN `irs` in the last two slots.
    pub fn decode(
        &self,
        key: &FlowKey,
        irs: SeqNumber,
        iss: SeqNumber,
        now: Instant,
    ) -> Option<CookieOptions> {
        let now_slot = Self::slot(now);
        let age = (now_slot % 32).wrapping_sub(iss.0 >> 27) % 32;
        if age > 1 {
            return None;
        }
        let slot = now_slot.checked_sub(age)?;
        let fields = iss.0 & !((1 << MAC_BITS) - 1);
        if self.mac(key, irs, slot, fields) != iss.0 & ((1 << MAC_BITS) - 1) {
            return None;
        }
        let ws = (iss.0 >> 20) & 0xf;
        Some(CookieOptions {
            mss: MSS_TABLE[((iss.0 >> 24) & 7) as usize],
            window_scale: (ws != NO_SCALE).then_some(ws as u8),
            sack_permitted: iss.0 & (1 << 19) != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_expiry_and_forgery() {
        let c = SynCookies::new([9, 8, 7, 6]);
        let key = crate::flow::test_key(3);
        let opts = CookieOptions {
            mss: 1460,
            window_scale: Some(7),
            sack_permitted: true,
        };
        let t = Instant::from_secs(1000);
        let irs = SeqNumber(0xdead_beef);
        let iss = c.encode(&key, irs, t, opts);
        assert_eq!(c.decode(&key, irs, iss, t), Some(opts));
        assert_eq!(
            c.decode(&key, irs, iss, Instant::from_secs(1050)),
            Some(opts)
        );
        assert_eq!(
            c.decode(&key, irs, iss, Instant::from_secs(1300)),
            None,
            "expired"
        );
        assert_eq!(c.decode(&key, irs + 1u32, iss, t), None, "another SYN");
        assert_eq!(c.decode(&crate::flow::test_key(4), irs, iss, t), None);
        assert_eq!(c.decode(&key, irs, iss + 1u32, t), None);
        assert_eq!(
            SynCookies::new([1, 1, 1, 1]).decode(&key, irs, iss, t),
            None
        );
        let odd = CookieOptions {
            mss: 1000,
            window_scale: None,
            sack_permitted: false,
        };
        let iss = c.encode(&key, irs, t, odd);
        let back = c.decode(&key, irs, iss, t).unwrap();
        assert_eq!(
            (back.mss, back.window_scale, back.sack_permitted),
            (536, None, false)
        );
    }
}
