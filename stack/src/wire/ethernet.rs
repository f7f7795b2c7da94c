//! Ethernet II frames, with one 802.1Q VLAN tag recognised (IEEE 802.1Q §9.6).

use core::fmt;

use super::{get_u16, put_u16, Result};
use crate::DropReason;

/// A 48-bit MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);

    /// The all-ones address.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// The I/G bit (least significant bit of the first octet) is set: a group
    /// address, which includes broadcast.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Neither multicast nor broadcast.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// An EtherType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4 (RFC 894).
    pub const IPV4: EtherType = EtherType(0x0800);
    /// ARP (RFC 826).
    pub const ARP: EtherType = EtherType(0x0806);
    /// IPv6 (RFC 2464).
    pub const IPV6: EtherType = EtherType(0x86dd);
    /// An 802.1Q tag follows (the tag protocol identifier, TPID).
    pub const VLAN: EtherType = EtherType(0x8100);
}

/// The tag control information of an 802.1Q tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VlanTag {
    /// Priority code point, 3 bits.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier, 12 bits.
    pub vid: u16,
}

impl VlanTag {
    fn from_tci(tci: u16) -> VlanTag {
        VlanTag {
            pcp: (tci >> 13) as u8,
            dei: tci & 0x1000 != 0,
            vid: tci & 0x0fff,
        }
    }

    fn tci(&self) -> u16 {
        (u16::from(self.pcp & 0x7) << 13) | (u16::from(self.dei) << 12) | (self.vid & 0x0fff)
    }
}

mod field {
    use crate::wire::Field;
    pub const DST: Field = 0..6;
    pub const SRC: Field = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const HEADER_LEN: usize = 14;
    /// With a tag: TCI at 14..16, the inner EtherType at 16..18.
    pub const TCI: usize = 14;
    pub const INNER_ETHERTYPE: usize = 16;
    pub const TAGGED_HEADER_LEN: usize = 18;
}

super::view! {
    /// A view of an Ethernet II frame.
    EthernetFrame
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// The buffer holds the header, including the VLAN tag when the outer
    /// EtherType announces one.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < field::HEADER_LEN {
            return Err(DropReason::Truncated);
        }
        if self.outer_ethertype() == EtherType::VLAN && b.len() < field::TAGGED_HEADER_LEN {
            return Err(DropReason::Truncated);
        }
        Ok(())
    }

    /// Destination address.
    pub fn dst_addr(&self) -> EthernetAddress {
        let mut a = [0u8; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        EthernetAddress(a)
    }

    /// Source address.
    pub fn src_addr(&self) -> EthernetAddress {
        let mut a = [0u8; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        EthernetAddress(a)
    }

    /// The EtherType at offset 12: the TPID when the frame is tagged.
    pub fn outer_ethertype(&self) -> EtherType {
        EtherType(get_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    /// The 802.1Q tag, if there is one.
    pub fn vlan(&self) -> Option<VlanTag> {
        if self.outer_ethertype() == EtherType::VLAN {
            Some(VlanTag::from_tci(get_u16(self.buffer.as_ref(), field::TCI)))
        } else {
            None
        }
    }

    /// The EtherType of the payload: the inner one when the frame is tagged.
    pub fn ethertype(&self) -> EtherType {
        if self.outer_ethertype() == EtherType::VLAN {
            EtherType(get_u16(self.buffer.as_ref(), field::INNER_ETHERTYPE))
        } else {
            self.outer_ethertype()
        }
    }

    /// 14, or 18 with a VLAN tag.
    pub fn header_len(&self) -> usize {
        if self.outer_ethertype() == EtherType::VLAN {
            field::TAGGED_HEADER_LEN
        } else {
            field::HEADER_LEN
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> EthernetFrame<&'a T> {
    /// The payload, with the lifetime of the buffer (may include padding up
    /// to the 60-byte minimum frame: the IP length fields say where it ends).
    pub fn payload(&self) -> &'a [u8] {
        let b = self.buffer.as_ref();
        super::clamp(b, self.header_len(), b.len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Set the destination address.
    pub fn set_dst_addr(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.0);
    }

    /// Set the source address.
    pub fn set_src_addr(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.0);
    }

    /// Mutable payload (after the tag, if the outer EtherType says there is one).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        let b = self.buffer.as_mut();
        let end = b.len();
        super::clamp_mut(b, start, end)
    }
}

/// The meaning of an Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    /// Source address (always unicast when parsed).
    pub src_addr: EthernetAddress,
    /// Destination address.
    pub dst_addr: EthernetAddress,
    /// The 802.1Q tag, if any.
    pub vlan: Option<VlanTag>,
    /// The payload's EtherType (inner, when tagged).
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Parse a checked frame. A group source address is
    /// [`DropReason::NonUnicastSource`]: no station sends from one (IEEE 802
    /// reserves the I/G bit of a source for nothing), so it is forged.
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<EthernetRepr> {
        frame.check_len()?;
        let src_addr = frame.src_addr();
        if src_addr.is_multicast() {
            return Err(DropReason::NonUnicastSource);
        }
        Ok(EthernetRepr {
            src_addr,
            dst_addr: frame.dst_addr(),
            vlan: frame.vlan(),
            ethertype: frame.ethertype(),
        })
    }

    /// Header length: 14, or 18 with a tag.
    pub fn buffer_len(&self) -> usize {
        if self.vlan.is_some() {
            field::TAGGED_HEADER_LEN
        } else {
            field::HEADER_LEN
        }
    }

    /// Write the header (not the payload).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        let b = frame.buffer.as_mut();
        match self.vlan {
            Some(tag) => {
                put_u16(b, field::ETHERTYPE, EtherType::VLAN.0);
                put_u16(b, field::TCI, tag.tci());
                put_u16(b, field::INNER_ETHERTYPE, self.ethertype.0);
            }
            None => put_u16(b, field::ETHERTYPE, self.ethertype.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: [u8; 18] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x81, 0x00, 0x20, 0x2a, // 802.1Q, pcp 1, vid 42
        0x08, 0x06, // ARP
    ];

    #[test]
    fn parse_tagged() {
        let f = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        let r = EthernetRepr::parse(&f).unwrap();
        assert_eq!(r.ethertype, EtherType::ARP);
        assert_eq!(
            r.vlan,
            Some(VlanTag {
                pcp: 1,
                dei: false,
                vid: 42
            })
        );
        assert!(r.dst_addr.is_broadcast());
        assert_eq!(f.payload(), &[] as &[u8]);
        let mut out = [0u8; 18];
        r.emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
        assert_eq!(out, FRAME);
    }

    #[test]
    fn tagged_but_short_is_truncated() {
        assert_eq!(
            EthernetFrame::new_checked(&FRAME[..16]).err(),
            Some(DropReason::Truncated)
        );
        assert_eq!(
            EthernetFrame::new_checked(&FRAME[..13]).err(),
            Some(DropReason::Truncated)
        );
    }

    #[test]
    fn multicast_source_is_dropped() {
        let mut f = FRAME;
        f[6] = 0x01;
        let v = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(EthernetRepr::parse(&v), Err(DropReason::NonUnicastSource));
    }
}
