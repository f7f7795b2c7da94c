//! ICMPv4 (RFC 792): echo request and reply, destination unreachable.

use super::{checksum, get_u16, put_u16, Checksums, Result};
use crate::DropReason;

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    /// Echo: identifier; unreachable: unused.
    pub const WORD1: usize = 4;
    /// Echo: sequence number; unreachable "fragmentation needed": next-hop MTU (RFC 1191 §4).
    pub const WORD2: usize = 6;
    pub const HEADER_LEN: usize = 8;
}

const TYPE_ECHO_REPLY: u8 = 0;
const TYPE_DST_UNREACHABLE: u8 = 3;
const TYPE_ECHO_REQUEST: u8 = 8;

/// Destination unreachable codes (RFC 792, RFC 1191).
pub mod unreachable {
    /// Net unreachable.
    pub const NET: u8 = 0;
    /// Host unreachable.
    pub const HOST: u8 = 1;
    /// Protocol unreachable.
    pub const PROTOCOL: u8 = 2;
    /// Port unreachable.
    pub const PORT: u8 = 3;
    /// Fragmentation needed and DF set: carries the next-hop MTU (RFC 1191 §4).
    pub const FRAG_NEEDED: u8 = 4;
}

/// The shortest quote a destination unreachable carries: the offending
/// datagram's IP header and its first 64 bits of data (RFC 792).
pub const MIN_INVOKING_LEN: usize = 28;

super::view! {
    /// A view of an ICMPv4 message.
    Icmpv4Packet
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// The 8-byte header fits. (The message is the whole IP payload.)
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < field::HEADER_LEN {
            return Err(DropReason::Truncated);
        }
        Ok(())
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Echo identifier.
    pub fn echo_ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::WORD1)
    }

    /// Echo sequence number.
    pub fn echo_seq_no(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::WORD2)
    }

    /// Next-hop MTU of a "fragmentation needed" message.
    pub fn next_hop_mtu(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::WORD2)
    }

    /// The checksum over the whole message verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Icmpv4Packet<&'a T> {
    /// Everything after the 8-byte header: echo data, or the quoted datagram.
    pub fn data(&self) -> &'a [u8] {
        let b = self.buffer.as_ref();
        super::clamp(b, field::HEADER_LEN, b.len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Compute and write the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        let b = self.buffer.as_mut();
        put_u16(b, field::CHECKSUM, 0);
        let c = checksum::finish(checksum::data(b));
        put_u16(b, field::CHECKSUM, c);
    }
}

/// The meaning of the ICMPv4 messages the stack handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv4Repr<'a> {
    /// Echo request (type 8).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data to be echoed.
        data: &'a [u8],
    },
    /// Echo reply (type 0).
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Echoed data.
        data: &'a [u8],
    },
    /// Destination unreachable (type 3).
    DstUnreachable {
        /// One of [`unreachable`](mod@unreachable)'s codes (others are kept as they are).
        code: u8,
        /// Next-hop MTU for [`unreachable::FRAG_NEEDED`] (RFC 1191), else 0.
        next_hop_mtu: u16,
        /// The quoted datagram: its IP header and at least 8 bytes of its
        /// payload, which a TCP or UDP socket uses to find its flow. Parse it
        /// with [`Ipv4Packet`](super::Ipv4Packet); it is not checked here.
        invoking: &'a [u8],
    },
}

impl<'a> Icmpv4Repr<'a> {
    /// Parse a message (the whole IP payload).
    ///
    /// Checksum wrong: [`DropReason::BadChecksum`]; a type other than the
    /// three above: [`DropReason::UnknownIcmpType`]; an unreachable that
    /// quotes less than an IP header and 8 bytes: [`DropReason::Truncated`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Icmpv4Packet<&'a T>,
        checksums: Checksums,
    ) -> Result<Icmpv4Repr<'a>> {
        packet.check_len()?;
        if checksums == Checksums::Verify && !packet.verify_checksum() {
            return Err(DropReason::BadChecksum);
        }
        let data = packet.data();
        match packet.msg_type() {
            TYPE_ECHO_REQUEST => Ok(Icmpv4Repr::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            TYPE_ECHO_REPLY => Ok(Icmpv4Repr::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            TYPE_DST_UNREACHABLE => {
                if data.len() < MIN_INVOKING_LEN {
                    return Err(DropReason::Truncated);
                }
                Ok(Icmpv4Repr::DstUnreachable {
                    code: packet.msg_code(),
                    next_hop_mtu: packet.next_hop_mtu(),
                    invoking: data,
                })
            }
            _ => Err(DropReason::UnknownIcmpType),
        }
    }

    /// Header plus data.
    pub fn buffer_len(&self) -> usize {
        field::HEADER_LEN
            + match self {
                Icmpv4Repr::EchoRequest { data, .. } | Icmpv4Repr::EchoReply { data, .. } => {
                    data.len()
                }
                Icmpv4Repr::DstUnreachable { invoking, .. } => invoking.len(),
            }
    }

    /// Write the message, data included, and its checksum. The buffer is
    /// cut to [`buffer_len`](Self::buffer_len): the checksum covers exactly
    /// the message.
    pub fn emit(&self, buffer: &mut [u8]) {
        let len = self.buffer_len();
        let b = &mut buffer[..len];
        let (ty, code, w1, w2, data) = match *self {
            Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => (TYPE_ECHO_REQUEST, 0, ident, seq_no, data),
            Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => (TYPE_ECHO_REPLY, 0, ident, seq_no, data),
            Icmpv4Repr::DstUnreachable {
                code,
                next_hop_mtu,
                invoking,
            } => (TYPE_DST_UNREACHABLE, code, 0, next_hop_mtu, invoking),
        };
        b[field::TYPE] = ty;
        b[field::CODE] = code;
        put_u16(b, field::WORD1, w1);
        put_u16(b, field::WORD2, w2);
        b[field::HEADER_LEN..].copy_from_slice(data);
        Icmpv4Packet::new_unchecked(b).fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_roundtrip() {
        let r = Icmpv4Repr::EchoRequest {
            ident: 7,
            seq_no: 1,
            data: b"abcdefgh",
        };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut b);
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&p, Checksums::Verify), Ok(r));
        b[9] ^= 0xff;
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            Icmpv4Repr::parse(&p, Checksums::Verify),
            Err(DropReason::BadChecksum)
        );
    }

    #[test]
    fn unreachable_needs_a_quote() {
        let quote = [0x45u8; 28];
        let r = Icmpv4Repr::DstUnreachable {
            code: unreachable::FRAG_NEEDED,
            next_hop_mtu: 1400,
            invoking: &quote,
        };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut b);
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&p, Checksums::Verify), Ok(r));
        let short = Icmpv4Repr::DstUnreachable {
            code: 3,
            next_hop_mtu: 0,
            invoking: &quote[..20],
        };
        let mut b = vec![0u8; short.buffer_len()];
        short.emit(&mut b);
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            Icmpv4Repr::parse(&p, Checksums::Verify),
            Err(DropReason::Truncated)
        );
    }

    #[test]
    fn unknown_type() {
        let mut b = [13u8, 0, 0, 0, 0, 0, 0, 0];
        Icmpv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            Icmpv4Repr::parse(&p, Checksums::Verify),
            Err(DropReason::UnknownIcmpType)
        );
    }
}
