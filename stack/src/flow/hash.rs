//! The keyed hash of flow keys.
//!
//! A flow table indexed by an unkeyed hash lets a remote peer choose source
//! ports and addresses that all land in one bucket and turn every lookup
//! into a long scan (hash flooding). The hash here is keyed with a secret
//! the caller draws once per process (the stack has no randomness of its
//! own): without the key, colliding tuples cannot be computed offline.
//!
//! The mixing step is a folded multiply — the full 128-bit product of two
//! 64-bit words, its halves XORed — the construction of foldhash and
//! aHash's fallback, applied twice so that each input word passes through
//! two keyed multiplies. It is not a cryptographic PRF; what bounds the
//! damage if collisions were found anyway is the table's probe limit
//! ([`MAX_PROBE`](super::MAX_PROBE)), which turns a flood into refused
//! inserts, never into slow lookups. The hash is specialised to the
//! 5-tuple (two words for IPv4) instead of going through `core::hash::Hasher`,
//! which is what makes it cheaper than a general-purpose hasher.

use core::net::IpAddr;

use super::{FlowKey, ListenKey};

/// A secret-keyed hash of flow and listen keys.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FlowHasher {
    k: [u64; 4],
}

impl core::fmt::Debug for FlowHasher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print the secret.
        f.write_str("FlowHasher { .. }")
    }
}

/// Odd constants (digits of pi) folded into the secret, so that an all-zero
/// secret, a test's favourite, still mixes.
const PI: [u64; 4] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
];

#[inline(always)]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

#[inline(always)]
fn split(a: IpAddr) -> (u64, u64, u64) {
    match a {
        IpAddr::V4(v4) => (u64::from(v4.to_bits()), 0, 0),
        IpAddr::V6(v6) => {
            let bits = v6.to_bits();
            ((bits >> 64) as u64, bits as u64, 1)
        }
    }
}

impl FlowHasher {
    /// A hasher keyed with `secret`, which the caller draws from a good
    /// random source once per process (e.g. `getrandom`), and may share
    /// between the shards of one process.
    pub const fn new(secret: [u64; 4]) -> FlowHasher {
        FlowHasher {
            k: [
                secret[0] ^ PI[0],
                secret[1] ^ PI[1],
                secret[2] ^ PI[2],
                secret[3] ^ PI[3],
            ],
        }
    }

    /// Hash of a protocol, two addresses and a word of ports.
    #[inline(always)]
    fn hash_parts(&self, a: IpAddr, b: IpAddr, ports: u64) -> u64 {
        let k = &self.k;
        let (a_hi, a_lo, a6) = split(a);
        let (b_hi, b_lo, b6) = split(b);
        // The families go into the ports word, so that an IPv4 key and an
        // IPv6 key with the same bits differ.
        let tail = ports ^ (a6 << 56) ^ (b6 << 57);
        let h = if (a6 | b6) == 0 {
            // IPv4: one word of addresses, one of protocol and ports.
            folded_multiply((a_hi << 32 | b_hi) ^ k[0], tail ^ k[1])
        } else {
            let x = folded_multiply(a_hi ^ k[0], a_lo ^ k[1]);
            let y = folded_multiply(b_hi ^ k[2], b_lo ^ k[3]);
            folded_multiply(x ^ tail ^ k[1], y ^ k[0])
        };
        // Second keyed round; k[3] is zero only for one secret in 2^64.
        folded_multiply(h ^ k[2], k[3])
    }

    /// Hash of a flow key.
    #[inline]
    pub fn hash_flow(&self, key: &FlowKey) -> u64 {
        let ports = (u64::from(key.protocol.0) << 32)
            | (u64::from(key.local_port) << 16)
            | u64::from(key.remote_port);
        self.hash_parts(key.local_addr, key.remote_addr, ports)
    }

    /// Hash of a listen key.
    #[inline]
    pub fn hash_listen(&self, key: &ListenKey) -> u64 {
        let ports = (u64::from(key.protocol.0) << 32) | (u64::from(key.port) << 16) | (1 << 40);
        self.hash_parts(
            key.addr,
            IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
            ports,
        )
    }

    /// A value derived from a key (with a domain tag) for other uses of the
    /// same secret, e.g. the ephemeral port offset of RFC 6056.
    pub(crate) fn hash_words(&self, a: IpAddr, b: IpAddr, word: u64) -> u64 {
        self.hash_parts(a, b, word ^ (0x5a << 48))
    }
}

/// A key that a [`Table`](super::Table) can hold.
pub trait TableKey: Eq {
    /// The keyed hash of the key.
    fn table_hash(&self, hasher: &FlowHasher) -> u64;
}

impl TableKey for FlowKey {
    #[inline]
    fn table_hash(&self, hasher: &FlowHasher) -> u64 {
        hasher.hash_flow(self)
    }
}

impl TableKey for ListenKey {
    #[inline]
    fn table_hash(&self, hasher: &FlowHasher) -> u64 {
        hasher.hash_listen(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::test_key as key;
    use crate::wire::IpProtocol;
    use core::net::Ipv4Addr;

    #[test]
    fn depends_on_the_secret_and_every_field() {
        let a = FlowHasher::new([1, 2, 3, 4]);
        let b = FlowHasher::new([1, 2, 3, 5]);
        assert_ne!(a.hash_flow(&key(1)), b.hash_flow(&key(1)));
        assert_ne!(a.hash_flow(&key(1)), a.hash_flow(&key(2)));
        let mut k = key(1);
        k.protocol = IpProtocol::UDP;
        assert_ne!(a.hash_flow(&k), a.hash_flow(&key(1)));
        let mut k6 = key(1);
        k6.local_addr = IpAddr::V6(Ipv4Addr::new(198, 18, 0, 1).to_ipv6_compatible());
        assert_ne!(a.hash_flow(&k6), a.hash_flow(&key(1)));
    }

    #[test]
    fn low_bits_spread() {
        // Sequential ports (what a client allocates) fill 256 buckets evenly.
        let h = FlowHasher::new([0; 4]);
        let mut buckets = [0u32; 256];
        for p in 0..25_600u32 {
            buckets[(h.hash_flow(&key(p)) & 255) as usize] += 1;
        }
        let max = *buckets.iter().max().unwrap();
        let min = *buckets.iter().min().unwrap();
        assert!(max < 160 && min > 50, "min {min} max {max}");
    }
}
