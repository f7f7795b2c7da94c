//! ARP for IPv4 over Ethernet (RFC 826).

use core::net::Ipv4Addr;

use super::{get_u16, put_u16, EtherType, EthernetAddress, Result};
use crate::DropReason;

/// An ARP operation (RFC 826 "ar$op").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// 1: who has `target_protocol_addr`?
    Request,
    /// 2: `source_protocol_addr` is at `source_hardware_addr`.
    Reply,
}

impl ArpOperation {
    fn code(self) -> u16 {
        match self {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
        }
    }
}

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const FIXED_LEN: usize = 8;
}

/// Hardware type of Ethernet (RFC 826, IANA "Hardware Types").
const HTYPE_ETHERNET: u16 = 1;
/// Length of an Ethernet/IPv4 ARP packet.
const ETH_IPV4_LEN: usize = 28;

super::view! {
    /// A view of an ARP packet of any hardware and protocol sizes.
    ///
    /// The address fields' offsets depend on the size fields, so `check_len`
    /// checks the whole variable part, and the address accessors return slices
    /// of the sizes the packet announces.
    ArpPacket
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// The fixed part and both address pairs of the announced sizes fit.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < field::FIXED_LEN || b.len() < self.tpa_end() {
            return Err(DropReason::Truncated);
        }
        Ok(())
    }

    /// Hardware type (1 = Ethernet).
    pub fn hardware_type(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::HTYPE)
    }

    /// Protocol type (an EtherType; 0x0800 = IPv4).
    pub fn protocol_type(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::PTYPE)
    }

    /// Hardware address length.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation code.
    pub fn operation(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::OPER)
    }

    fn sizes(&self) -> (usize, usize) {
        let b = self.buffer.as_ref();
        match (b.get(field::HLEN), b.get(field::PLEN)) {
            (Some(h), Some(p)) => (usize::from(*h), usize::from(*p)),
            _ => (0, 0),
        }
    }

    fn tpa_end(&self) -> usize {
        let (h, p) = self.sizes();
        field::FIXED_LEN + 2 * (h + p)
    }

    fn slice(&self, start: usize, len: usize) -> &[u8] {
        super::clamp(self.buffer.as_ref(), start, start + len)
    }

    /// Sender hardware address.
    pub fn source_hardware_addr(&self) -> &[u8] {
        let (h, _) = self.sizes();
        self.slice(field::FIXED_LEN, h)
    }

    /// Sender protocol address.
    pub fn source_protocol_addr(&self) -> &[u8] {
        let (h, p) = self.sizes();
        self.slice(field::FIXED_LEN + h, p)
    }

    /// Target hardware address.
    pub fn target_hardware_addr(&self) -> &[u8] {
        let (h, p) = self.sizes();
        self.slice(field::FIXED_LEN + h + p, h)
    }

    /// Target protocol address.
    pub fn target_protocol_addr(&self) -> &[u8] {
        let (h, p) = self.sizes();
        self.slice(field::FIXED_LEN + 2 * h + p, p)
    }
}

/// The meaning of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// Request or reply.
    pub operation: ArpOperation,
    /// Sender MAC.
    pub source_hardware_addr: EthernetAddress,
    /// Sender IPv4 address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target MAC (zero in a request).
    pub target_hardware_addr: EthernetAddress,
    /// Target IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

fn mac(b: &[u8]) -> EthernetAddress {
    let mut a = [0u8; 6];
    let n = b.len().min(6);
    a[..n].copy_from_slice(&b[..n]);
    EthernetAddress(a)
}

fn ipv4(b: &[u8]) -> Ipv4Addr {
    let mut a = [0u8; 4];
    let n = b.len().min(4);
    a[..n].copy_from_slice(&b[..n]);
    Ipv4Addr::from(a)
}

impl ArpRepr {
    /// Parse. Anything but Ethernet/IPv4 request or reply is
    /// [`DropReason::UnknownArpFormat`]; a group sender MAC is
    /// [`DropReason::NonUnicastSource`] (it would poison the neighbour cache).
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<ArpRepr> {
        packet.check_len()?;
        if packet.hardware_type() != HTYPE_ETHERNET
            || packet.protocol_type() != EtherType::IPV4.0
            || packet.hardware_len() != 6
            || packet.protocol_len() != 4
        {
            return Err(DropReason::UnknownArpFormat);
        }
        let operation = match packet.operation() {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            _ => return Err(DropReason::UnknownArpFormat),
        };
        let source_hardware_addr = mac(packet.source_hardware_addr());
        if source_hardware_addr.is_multicast() {
            return Err(DropReason::NonUnicastSource);
        }
        Ok(ArpRepr {
            operation,
            source_hardware_addr,
            source_protocol_addr: ipv4(packet.source_protocol_addr()),
            target_hardware_addr: mac(packet.target_hardware_addr()),
            target_protocol_addr: ipv4(packet.target_protocol_addr()),
        })
    }

    /// 28 bytes.
    pub const fn buffer_len(&self) -> usize {
        ETH_IPV4_LEN
    }

    /// Write the packet.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        let b = &mut packet.buffer.as_mut()[..ETH_IPV4_LEN];
        put_u16(b, field::HTYPE, HTYPE_ETHERNET);
        put_u16(b, field::PTYPE, EtherType::IPV4.0);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
        put_u16(b, field::OPER, self.operation.code());
        b[8..14].copy_from_slice(&self.source_hardware_addr.0);
        b[14..18].copy_from_slice(&self.source_protocol_addr.octets());
        b[18..24].copy_from_slice(&self.target_hardware_addr.0);
        b[24..28].copy_from_slice(&self.target_protocol_addr.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            source_protocol_addr: Ipv4Addr::new(198, 18, 9, 1),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Addr::new(198, 18, 9, 2),
        }
    }

    #[test]
    fn roundtrip() {
        let r = request();
        let mut buf = [0u8; 28];
        r.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        let p = ArpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(ArpRepr::parse(&p), Ok(r));
    }

    #[test]
    fn odd_sizes_are_checked_not_panicking() {
        let mut buf = [0u8; 28];
        request().emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        buf[field::HLEN] = 200;
        assert_eq!(
            ArpPacket::new_checked(&buf[..]).err(),
            Some(DropReason::Truncated)
        );
        buf[field::HLEN] = 2;
        buf[field::PLEN] = 2;
        let p = ArpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(p.target_protocol_addr().len(), 2);
        assert_eq!(ArpRepr::parse(&p), Err(DropReason::UnknownArpFormat));
    }
}
