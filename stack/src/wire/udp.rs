//! UDP (RFC 768).

use core::net::IpAddr;

use super::{checksum, get_u16, put_u16, Checksums, IpProtocol, Result, TxChecksums};
use crate::DropReason;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// Length of the header.
pub const HEADER_LEN: usize = 8;

super::view! {
    /// A view of a UDP datagram.
    UdpPacket
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// The header fits, its length field is at least 8 and fits in the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(DropReason::Truncated);
        }
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN {
            return Err(DropReason::BadLength);
        }
        if field_len > len {
            return Err(DropReason::Truncated);
        }
        Ok(())
    }

    /// Source port (0: no reply expected, RFC 768).
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Length field: header plus data.
    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Whether the length field says there is no data.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// Checksum field (0: not computed, allowed over IPv4 only).
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The checksum, with the pseudo-header of `src` and `dst`, verifies.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let b = super::clamp(self.buffer.as_ref(), 0, usize::from(self.len()));
        let pseudo = checksum::pseudo_header(src, dst, IpProtocol::UDP, b.len() as u32);
        checksum::combine(&[pseudo, checksum::data(b)]) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> UdpPacket<&'a T> {
    /// The data, up to the length field.
    pub fn payload(&self) -> &'a [u8] {
        let b = self.buffer.as_ref();
        super::clamp(b, HEADER_LEN, usize::from(self.len()))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Mutable data, up to the length field.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        super::clamp_mut(self.buffer.as_mut(), HEADER_LEN, end)
    }

    /// Compute and write the checksum over the datagram (as long as the
    /// length field says). A computed 0 is sent as 0xffff: 0 means "none"
    /// (RFC 768).
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let b = super::clamp(self.buffer.as_ref(), 0, usize::from(self.len()));
        let pseudo = checksum::pseudo_header(src, dst, IpProtocol::UDP, b.len() as u32);
        let c = checksum::finish(checksum::combine(&[pseudo, checksum::data(b)]));
        put_u16(
            self.buffer.as_mut(),
            field::CHECKSUM,
            if c == 0 { 0xffff } else { c },
        );
    }
}

/// The meaning of a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port (never 0 when parsed).
    pub dst_port: u16,
    /// Data.
    pub payload: &'a [u8],
}

impl<'a> UdpRepr<'a> {
    /// Parse a datagram received from `src` to `dst`.
    ///
    /// - destination port 0: [`DropReason::ZeroPort`] (no socket can be bound
    ///   to it). Source port 0 is legal: RFC 768 makes it "no reply port".
    /// - checksum 0 over IPv4: accepted unverified (RFC 768, RFC 1122
    ///   §4.1.3.4); over IPv6: [`DropReason::BadChecksum`] (RFC 8200 §8.1:
    ///   receivers must discard it);
    /// - otherwise a checksum that does not verify: [`DropReason::BadChecksum`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &UdpPacket<&'a T>,
        src: IpAddr,
        dst: IpAddr,
        checksums: Checksums,
    ) -> Result<UdpRepr<'a>> {
        packet.check_len()?;
        if packet.dst_port() == 0 {
            return Err(DropReason::ZeroPort);
        }
        if checksums == Checksums::Verify {
            match (packet.checksum(), src) {
                (0, IpAddr::V4(_)) => {}
                (0, IpAddr::V6(_)) => return Err(DropReason::BadChecksum),
                _ if !packet.verify_checksum(src, dst) => return Err(DropReason::BadChecksum),
                _ => {}
            }
        }
        Ok(UdpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload: packet.payload(),
        })
    }

    /// Header plus data.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Write header, data and checksum. A datagram longer than 65535 bytes
    /// is a caller bug; its length field saturates.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut UdpPacket<T>,
        src: IpAddr,
        dst: IpAddr,
    ) {
        self.emit_with(packet, src, dst, TxChecksums::Full);
    }

    /// [`emit`](Self::emit), the checksum computed in full or left for the
    /// device ([`TxChecksums::Partial`]).
    pub fn emit_with<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut UdpPacket<T>,
        src: IpAddr,
        dst: IpAddr,
        checksums: TxChecksums,
    ) {
        let len = self.buffer_len();
        let b = packet.buffer.as_mut();
        put_u16(b, field::SRC_PORT, self.src_port);
        put_u16(b, field::DST_PORT, self.dst_port);
        put_u16(b, field::LENGTH, u16::try_from(len).unwrap_or(u16::MAX));
        b[HEADER_LEN..len].copy_from_slice(self.payload);
        match checksums {
            TxChecksums::Full => packet.fill_checksum(src, dst),
            TxChecksums::Partial => {
                let pseudo = checksum::pseudo_header(src, dst, IpProtocol::UDP, len as u32);
                put_u16(packet.buffer.as_mut(), field::CHECKSUM, pseudo);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 9, 1));
    const DST: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 9, 2));

    #[test]
    fn roundtrip_and_checks() {
        let r = UdpRepr {
            src_port: 40000,
            dst_port: 7,
            payload: b"hello",
        };
        let mut b = vec![0u8; r.buffer_len() + 3]; // room to spare: the length field bounds it
        r.emit(&mut UdpPacket::new_unchecked(&mut b[..]), SRC, DST);
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(UdpRepr::parse(&p, SRC, DST, Checksums::Verify), Ok(r));
        // The pseudo-header matters.
        assert_eq!(
            UdpRepr::parse(&p, DST, DST, Checksums::Verify),
            Err(DropReason::BadChecksum)
        );
        // Zero checksum: fine over IPv4.
        b[6] = 0;
        b[7] = 0;
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(UdpRepr::parse(&p, SRC, DST, Checksums::Verify), Ok(r));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            UdpRepr::parse(&p, v6, v6, Checksums::Verify),
            Err(DropReason::BadChecksum)
        );
        b[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(
            UdpPacket::new_checked(&b[..]).err(),
            Some(DropReason::BadLength)
        );
        b[4..6].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(
            UdpPacket::new_checked(&b[..]).err(),
            Some(DropReason::Truncated)
        );
    }

    #[test]
    fn zero_dst_port() {
        let r = UdpRepr {
            src_port: 0,
            dst_port: 0,
            payload: b"",
        };
        let mut b = [0u8; 8];
        r.emit(&mut UdpPacket::new_unchecked(&mut b[..]), SRC, DST);
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(
            UdpRepr::parse(&p, SRC, DST, Checksums::Verify),
            Err(DropReason::ZeroPort)
        );
    }
}
