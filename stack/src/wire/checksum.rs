//! The Internet checksum: full (RFC 1071) and incremental (RFC 1624).
//!
//! The checksum is the ones' complement of the ones' complement sum of the
//! data taken as big-endian 16-bit words. Sums here are kept unfolded in a
//! `u64` while data is added (no carry can be lost below 2^48 bytes) and
//! folded once at the end, which is both simpler and faster than folding at
//! each step.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::IpProtocol;

/// Ones' complement sum of `data` (big-endian 16-bit words, RFC 1071), as
/// a `u64` to add other partial sums to before [`fold`]. An odd trailing
/// byte is padded with a zero byte on the right (RFC 1071 §1).
///
/// The words are added in the machine's own byte order and the folded
/// sum's two bytes swapped once at the end: the sum is byte-order
/// independent (RFC 1071 §2(B)), and a loop of plain little-endian loads
/// is one the compiler vectorises (four 32-bit words per SSE2 addition
/// into 64-bit lanes) where byte-swapped loads cost a shuffle each.
/// Adding 32-bit words gives the same folded result as adding 16-bit
/// words, because 2^16 ≡ 1 (mod 2^16 - 1). No carry is lost below 2^32
/// words.
pub fn sum(data: &[u8]) -> u64 {
    // 32 bytes a step into four lanes (two SSE2 registers of two u64s),
    // then what is left four bytes at a time
    let mut blocks = data.chunks_exact(32);
    let mut lanes = [0u64; 8];
    for b in &mut blocks {
        for (lane, w) in lanes.iter_mut().zip(b.chunks_exact(4)) {
            *lane += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
        }
    }
    let mut acc: u64 = lanes.iter().sum();
    let mut words = blocks.remainder().chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
    }
    let tail = match *words.remainder() {
        [a] => [a, 0, 0, 0],
        [a, b] => [a, b, 0, 0],
        [a, b, c] => [a, b, c, 0],
        _ => [0; 4],
    };
    acc += u64::from(u32::from_ne_bytes(tail));
    let folded = fold(acc);
    u64::from(if cfg!(target_endian = "little") {
        folded.swap_bytes()
    } else {
        folded
    })
}

/// Fold an unfolded sum into 16 bits, with end-around carries.
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The folded ones' complement sum of `data` (not yet complemented).
pub fn data(data: &[u8]) -> u16 {
    fold(sum(data))
}

/// The folded sum of several partial sums.
pub fn combine(parts: &[u16]) -> u16 {
    fold(parts.iter().map(|p| u64::from(*p)).sum())
}

/// Sum of the IPv4 pseudo-header of TCP and UDP (RFC 9293 §3.1, RFC 768).
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, length: u32) -> u16 {
    let acc = u64::from(src.to_bits())
        + u64::from(dst.to_bits())
        + u64::from(protocol.0)
        + u64::from(length);
    fold(acc)
}

/// Sum of the IPv6 pseudo-header of upper-layer checksums (RFC 8200 §8.1).
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, protocol: IpProtocol, length: u32) -> u16 {
    let acc = sum(&src.octets()) + sum(&dst.octets()) + u64::from(protocol.0) + u64::from(length);
    fold(acc)
}

/// The pseudo-header sum for either family. Both addresses are expected to
/// be of one family (the receive path takes them from one IP header); a mixed
/// pair is summed as IPv6, with the IPv4 one mapped (RFC 4291 §2.5.5.2).
pub fn pseudo_header(src: IpAddr, dst: IpAddr, protocol: IpProtocol, length: u32) -> u16 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => pseudo_header_v4(s, d, protocol, length),
        (s, d) => pseudo_header_v6(to_v6(s), to_v6(d), protocol, length),
    }
}

fn to_v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// The checksum field value for data whose folded sum is `folded`.
pub fn finish(folded: u16) -> u16 {
    !folded
}

/// Incremental update of checksum field `hc` when a 16-bit word of the
/// covered data changes from `old` to `new`: RFC 1624 eqn. 3,
/// `HC' = ~(~HC + ~m + m')`. Unlike eqn. 2 of RFC 1141 it never turns a
/// correct checksum into 0x0000 when it should be 0xffff (RFC 1624 §3).
pub fn update(hc: u16, old: u16, new: u16) -> u16 {
    let acc = u64::from(!hc) + u64::from(!old) + u64::from(new);
    !fold(acc)
}

/// [`update`] for a 32-bit field (an IPv4 address, a sequence number).
pub fn update_u32(hc: u16, old: u32, new: u32) -> u16 {
    let hc = update(hc, (old >> 16) as u16, (new >> 16) as u16);
    update(hc, old as u16, new as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(data(&bytes), 0xddf2);
    }

    #[test]
    fn odd_length_pads_right() {
        assert_eq!(data(&[0x12]), 0x1200);
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(data(&[]), 0);
    }

    #[test]
    fn known_ipv4_header() {
        // A header whose checksum field (b861) is right: the sum is 0xffff.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(data(&h), 0xffff);
    }

    #[test]
    fn incremental_matches_full() {
        let mut buf: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37)).collect();
        buf[10] = 0;
        buf[11] = 0;
        let hc = finish(data(&buf));
        buf[10..12].copy_from_slice(&hc.to_be_bytes());
        // Change a 32-bit field and update incrementally.
        let old = u32::from_be_bytes([buf[20], buf[21], buf[22], buf[23]]);
        let new: u32 = 0xdead_beef;
        buf[20..24].copy_from_slice(&new.to_be_bytes());
        let inc = update_u32(hc, old, new);
        buf[10] = 0;
        buf[11] = 0;
        assert_eq!(inc, finish(data(&buf)));
    }

    #[test]
    fn rfc1624_section4_example() {
        // RFC 1624 §4: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285: HC' = 0x0000.
        assert_eq!(update(0xdd2f, 0x5555, 0x3285), 0x0000);
    }
}
