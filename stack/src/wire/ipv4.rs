//! IPv4 (RFC 791). Options are skipped; fragments are recognised and dropped.

use core::net::Ipv4Addr;

use super::{checksum, get_u16, put_u16, IpProtocol, Result};
use crate::DropReason;

mod field {
    use crate::wire::Field;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

super::view! {
    /// A view of an IPv4 datagram.
    Ipv4Packet
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// The fixed header fits; the IHL is at least 5 and no larger than the
    /// total length; the total length fits in the buffer. The buffer may be
    /// longer than the total length (Ethernet pads to 60 bytes): the
    /// payload accessor stops at the total length.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(DropReason::Truncated);
        }
        let header_len = self.header_len();
        let total_len = usize::from(self.total_len());
        if header_len < HEADER_LEN || header_len > total_len {
            return Err(DropReason::BadHeaderLen);
        }
        if total_len > len {
            return Err(DropReason::Truncated);
        }
        Ok(())
    }

    /// Version field (4 for IPv4).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// Type of service / DSCP and ECN.
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    /// Total length of the datagram, header included.
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// Don't fragment.
    pub fn dont_frag(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    /// More fragments.
    pub fn more_frags(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (get_u16(self.buffer.as_ref(), field::FLG_OFF) & OFFSET_MASK) << 3
    }

    /// Part of a fragmented datagram: MF set or a non-zero offset.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::SRC_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::DST_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// The header checksum verifies (the sum over the header is 0xffff).
    pub fn verify_checksum(&self) -> bool {
        let b = self.buffer.as_ref();
        checksum::data(super::clamp(b, 0, self.header_len())) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv4Packet<&'a T> {
    /// The payload: from the end of the header (options skipped) to the
    /// total length.
    pub fn payload(&self) -> &'a [u8] {
        let b = self.buffer.as_ref();
        super::clamp(b, self.header_len(), usize::from(self.total_len()))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Set the total length.
    pub fn set_total_len(&mut self, v: u16) {
        put_u16(self.buffer.as_mut(), field::LENGTH, v)
    }

    /// Set the TTL.
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v
    }

    /// Set the source address.
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets())
    }

    /// Set the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets())
    }

    /// Compute and write the header checksum.
    pub fn fill_checksum(&mut self) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let hl = self.header_len();
        let sum = checksum::data(super::clamp(self.buffer.as_ref(), 0, hl));
        put_u16(self.buffer.as_mut(), field::CHECKSUM, checksum::finish(sum));
    }

    /// Mutable payload, up to the total length.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len(), usize::from(self.total_len()));
        super::clamp_mut(self.buffer.as_mut(), start, end)
    }
}

/// The meaning of an unfragmented IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address (never broadcast or multicast when parsed).
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub protocol: IpProtocol,
    /// Payload length (total length minus header and options).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// DSCP and ECN.
    pub tos: u8,
    /// Identification.
    pub ident: u16,
    /// Don't fragment.
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Parse a datagram header.
    ///
    /// - version not 4: [`DropReason::BadVersion`];
    /// - checksum wrong: [`DropReason::BadChecksum`] (RFC 1122 §3.2.1.2: MUST
    ///   verify and silently discard on failure);
    /// - a fragment: [`DropReason::Fragment`] (counted, not reassembled);
    /// - source broadcast or multicast: [`DropReason::NonUnicastSource`]
    ///   (RFC 1122 §3.2.1.3: MUST silently discard).
    ///
    /// Options are skipped, not interpreted (RFC 1122 §3.2.1.8 lets a host
    /// ignore those it does not implement; none matters to this stack).
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Ipv4Repr> {
        packet.check_len()?;
        if packet.version() != 4 {
            return Err(DropReason::BadVersion);
        }
        // always, whatever `Checksums` says of the transport's
        if !packet.verify_checksum() {
            return Err(DropReason::BadChecksum);
        }
        if packet.is_fragment() {
            return Err(DropReason::Fragment);
        }
        let src_addr = packet.src_addr();
        if src_addr.is_broadcast() || src_addr.is_multicast() {
            return Err(DropReason::NonUnicastSource);
        }
        Ok(Ipv4Repr {
            src_addr,
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            ttl: packet.ttl(),
            tos: packet.tos(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// 20: this stack never emits options.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the header, with its checksum. The payload (of `payload_len`
    /// bytes) is the caller's. A `payload_len` that cannot fit in the 16-bit
    /// total length is a caller bug and saturates.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        let total = u16::try_from(HEADER_LEN + self.payload_len).unwrap_or(u16::MAX);
        let b = packet.buffer.as_mut();
        b[field::VER_IHL] = 0x45;
        b[field::TOS] = self.tos;
        put_u16(b, field::LENGTH, total);
        put_u16(b, field::IDENT, self.ident);
        put_u16(b, field::FLG_OFF, if self.dont_frag { FLAG_DF } else { 0 });
        b[field::TTL] = self.ttl;
        b[field::PROTOCOL] = self.protocol.0;
        b[field::SRC_ADDR].copy_from_slice(&self.src_addr.octets());
        b[field::DST_ADDR].copy_from_slice(&self.dst_addr.octets());
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(198, 18, 9, 1),
            dst_addr: Ipv4Addr::new(198, 18, 9, 2),
            protocol: IpProtocol::UDP,
            payload_len: 4,
            ttl: 64,
            tos: 0,
            ident: 0x1234,
            dont_frag: true,
        }
    }

    fn emitted() -> [u8; 24] {
        let mut buf = [0u8; 24];
        repr().emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
        buf
    }

    #[test]
    fn roundtrip_and_padding_ignored() {
        let mut padded = [0u8; 60];
        padded[..24].copy_from_slice(&emitted());
        let p = Ipv4Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p), Ok(repr()));
        assert_eq!(p.payload().len(), 4);
    }

    #[test]
    fn rejects_each_reason() {
        let mut b = emitted();
        b[10] ^= 1;
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p), Err(DropReason::BadChecksum));
        // the header checksum is verified even where transport checksums
        // are trusted (no sender leaves it unfinished)
        assert_eq!(Ipv4Repr::parse(&p), Err(DropReason::BadChecksum));

        let mut b = emitted();
        b[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(DropReason::BadHeaderLen)
        );
        b[0] = 0x46; // IHL 6 = 24 bytes: fits exactly, payload empty
        assert!(Ipv4Packet::new_checked(&b[..]).is_ok());
        b[0] = 0x47;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).err(),
            Some(DropReason::BadHeaderLen)
        );

        let b = emitted();
        assert_eq!(
            Ipv4Packet::new_checked(&b[..23]).err(),
            Some(DropReason::Truncated)
        );

        let mut r = repr();
        r.src_addr = Ipv4Addr::BROADCAST;
        let mut b = [0u8; 24];
        r.emit(&mut Ipv4Packet::new_unchecked(&mut b[..]));
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p), Err(DropReason::NonUnicastSource));
    }

    #[test]
    fn fragments_are_recognised() {
        let mut b = emitted();
        b[6] |= 0x20; // MF
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.fill_checksum();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_fragment());
        assert_eq!(Ipv4Repr::parse(&p), Err(DropReason::Fragment));
    }

    #[test]
    fn options_are_skipped() {
        // IHL 6 with one 4-byte option (NOP NOP NOP EOL) before a 4-byte payload.
        let mut b = [0u8; 28];
        b[..20].copy_from_slice(&emitted()[..20]);
        b[0] = 0x46;
        b[2..4].copy_from_slice(&28u16.to_be_bytes());
        b[20..24].copy_from_slice(&[1, 1, 1, 0]);
        b[24..28].copy_from_slice(b"ping");
        Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        let r = Ipv4Repr::parse(&p).unwrap();
        assert_eq!(r.payload_len, 4);
        assert_eq!(p.payload(), b"ping");
    }
}
