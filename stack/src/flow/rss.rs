//! The Toeplitz hash of receive-side scaling, as NICs compute it to choose a
//! receive queue (Microsoft, "RSS hashing functions"; the verification
//! vectors are in the tests).
//!
//! The hash is linear over GF(2): the hash of `a XOR b` is the XOR of the
//! hashes. The ephemeral port allocator uses that to try thousands of ports
//! cheaply: the hash of a tuple is the hash with port 0, XOR the hash of the
//! port alone at its offset.

use core::net::IpAddr;

/// A Toeplitz hash with its secret key.
#[derive(Clone, PartialEq, Eq)]
pub struct Toeplitz {
    key: [u8; Toeplitz::KEY_LEN],
}

impl core::fmt::Debug for Toeplitz {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Toeplitz { .. }")
    }
}

impl Toeplitz {
    /// Key length: 40 bytes, enough for the 36 bytes of an IPv6 4-tuple
    /// (the key must be 4 bytes longer than the input).
    pub const KEY_LEN: usize = 40;

    /// The key of Microsoft's verification suite, which many drivers also
    /// use as their default.
    pub const MICROSOFT_KEY: [u8; 40] = [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f,
        0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
        0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ];

    /// A hash with the NIC's key (`ethtool -x` prints it).
    pub const fn new(key: [u8; 40]) -> Toeplitz {
        Toeplitz { key }
    }

    /// Bit `i` of the key, 0 past its end.
    #[inline]
    fn key_bit(&self, i: usize) -> u32 {
        match self.key.get(i / 8) {
            Some(byte) => u32::from(byte >> (7 - i % 8)) & 1,
            None => 0,
        }
    }

    /// The 32 key bits starting at bit `i`.
    #[inline]
    fn window(&self, i: usize) -> u32 {
        (0..32).fold(0, |w, j| (w << 1) | self.key_bit(i + j))
    }

    /// Hash of `input` placed at bit offset `offset` of the hash input (the
    /// rest taken as zeros). Input past the key's reach adds nothing.
    pub fn hash_at(&self, input: &[u8], offset_bits: usize) -> u32 {
        let mut result = 0u32;
        let mut window = self.window(offset_bits);
        for (n, byte) in input.iter().enumerate() {
            for b in 0..8 {
                if byte & (0x80 >> b) != 0 {
                    result ^= window;
                }
                window = (window << 1) | self.key_bit(offset_bits + n * 8 + b + 32);
            }
        }
        result
    }

    /// Hash of a whole input.
    pub fn hash(&self, input: &[u8]) -> u32 {
        self.hash_at(input, 0)
    }

    /// Hash of a received packet's addresses and, for TCP/UDP, ports, in the
    /// order NICs take them: source address, destination address, source
    /// port, destination port. Mixed families hash the IPv4 one mapped.
    pub fn hash_tuple(&self, src: IpAddr, dst: IpAddr, ports: Option<(u16, u16)>) -> u32 {
        let mut buf = [0u8; 36];
        let n = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                buf[..4].copy_from_slice(&s.octets());
                buf[4..8].copy_from_slice(&d.octets());
                8
            }
            (s, d) => {
                buf[..16].copy_from_slice(&to_v6(s));
                buf[16..32].copy_from_slice(&to_v6(d));
                32
            }
        };
        let n = match ports {
            Some((sp, dp)) => {
                buf[n..n + 2].copy_from_slice(&sp.to_be_bytes());
                buf[n + 2..n + 4].copy_from_slice(&dp.to_be_bytes());
                n + 4
            }
            None => n,
        };
        self.hash(&buf[..n])
    }

    /// Bit offset of the destination port in the tuple input of a family.
    pub(crate) fn dst_port_offset_bits(v4: bool) -> usize {
        if v4 {
            (8 + 2) * 8
        } else {
            (32 + 2) * 8
        }
    }
}

fn to_v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Microsoft's RSS verification vectors: (destination, destination port,
    /// source, source port, hash of addresses only, hash with ports).
    const V4: [(&str, u16, &str, u16, u32, u32); 5] = [
        (
            "161.142.100.80",
            1766,
            "66.9.149.187",
            2794,
            0x323e_8fc2,
            0x51cc_c178,
        ),
        (
            "65.69.140.83",
            4739,
            "199.92.111.2",
            14230,
            0xd718_262a,
            0xc626_b0ea,
        ),
        (
            "12.22.207.184",
            38024,
            "24.19.198.95",
            12898,
            0xd2d0_a5de,
            0x5c2b_394a,
        ),
        (
            "209.142.163.6",
            2217,
            "38.27.205.30",
            48228,
            0x8298_9176,
            0xafc7_327f,
        ),
        (
            "202.188.127.2",
            1303,
            "153.39.163.191",
            44251,
            0x5d18_09c5,
            0x10e8_28a2,
        ),
    ];

    const V6: [(&str, u16, &str, u16, u32, u32); 3] = [
        (
            "3ffe:2501:200:3::1",
            1766,
            "3ffe:2501:200:1fff::7",
            2794,
            0x2cc1_8cd5,
            0x4020_7d3d,
        ),
        (
            "ff02::1",
            4739,
            "3ffe:501:8::260:97ff:fe40:efab",
            14230,
            0x0f0c_461c,
            0xdde5_1bbf,
        ),
        (
            "fe80::200:f8ff:fe21:67cf",
            38024,
            "3ffe:1900:4545:3:200:f8ff:fe21:67cf",
            44251,
            0x4b61_e985,
            0x02d1_feef,
        ),
    ];

    #[test]
    fn microsoft_verification_vectors() {
        let t = Toeplitz::new(Toeplitz::MICROSOFT_KEY);
        for (dst, dport, src, sport, ip_only, with_ports) in V4.iter().chain(V6.iter()) {
            let (dst, src): (IpAddr, IpAddr) = (dst.parse().unwrap(), src.parse().unwrap());
            assert_eq!(t.hash_tuple(src, dst, None), *ip_only, "{src} -> {dst}");
            assert_eq!(
                t.hash_tuple(src, dst, Some((*sport, *dport))),
                *with_ports,
                "{src} -> {dst} ports"
            );
        }
    }

    #[test]
    fn linear_in_the_destination_port() {
        let t = Toeplitz::new(Toeplitz::MICROSOFT_KEY);
        let (s, d): (IpAddr, IpAddr) =
            ("198.18.0.2".parse().unwrap(), "198.18.0.1".parse().unwrap());
        let base = t.hash_tuple(s, d, Some((80, 0)));
        for port in [1u16, 49152, 65535] {
            let part = t.hash_at(&port.to_be_bytes(), Toeplitz::dst_port_offset_bits(true));
            assert_eq!(base ^ part, t.hash_tuple(s, d, Some((80, port))));
        }
    }
}
