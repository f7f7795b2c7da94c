//! The receive path's one entry: a whole Ethernet frame in, a parsed packet
//! or a [`DropReason`] out.
//!
//! [`parse_frame`] peels Ethernet (and one 802.1Q tag), then ARP or IPv4 or
//! IPv6, then TCP, UDP or ICMPv4, each through its `Repr::parse`, so every
//! malformation has already been named when it returns. With
//! [`Counters::record`](crate::Counters::record) the caller turns the result
//! into a counted drop or a packet to deliver:
//!
//! ```
//! use stack::{frame::parse_frame, wire::Checksums, Counters};
//! let mut counters = Counters::new();
//! let garbage = [0u8; 9];
//! assert!(counters.record(parse_frame(&garbage, Checksums::Verify)).is_none());
//! assert_eq!(counters.get(stack::DropReason::Truncated), 1);
//! ```

use core::net::IpAddr;

use crate::flow::FlowKey;
use crate::wire::{
    ArpPacket, ArpRepr, Checksums, EtherType, EthernetFrame, EthernetRepr, Icmpv4Packet,
    Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, Result, TcpPacket, TcpRepr,
    TxChecksums, UdpPacket, UdpRepr,
};
use crate::DropReason;

/// A parsed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The Ethernet header.
    pub ethernet: EthernetRepr,
    /// What it carries.
    pub network: Network<'a>,
}

/// The network layer of a parsed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network<'a> {
    /// ARP.
    Arp(ArpRepr),
    /// IPv4 and its payload.
    Ipv4(Ipv4Repr, Transport<'a>),
    /// IPv6 and its payload.
    Ipv6(Ipv6Repr, Transport<'a>),
}

/// The transport layer of a parsed IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    /// A TCP segment.
    Tcp(TcpRepr<'a>),
    /// A UDP datagram.
    Udp(UdpRepr<'a>),
    /// An ICMPv4 message (IPv4 only).
    Icmpv4(Icmpv4Repr<'a>),
}

impl Frame<'_> {
    /// Source and destination addresses of an IP packet.
    pub fn ip_addrs(&self) -> Option<(IpAddr, IpAddr)> {
        match &self.network {
            Network::Arp(_) => None,
            Network::Ipv4(ip, _) => Some((IpAddr::V4(ip.src_addr), IpAddr::V4(ip.dst_addr))),
            Network::Ipv6(ip, _) => Some((IpAddr::V6(ip.src_addr), IpAddr::V6(ip.dst_addr))),
        }
    }

    /// The flow key of a TCP segment or UDP datagram, seen from the receiver
    /// (local = destination): what the flow table is searched with.
    pub fn flow_key(&self) -> Option<FlowKey> {
        let (src, dst) = self.ip_addrs()?;
        let (protocol, sport, dport) = match self.transport()? {
            Transport::Tcp(t) => (IpProtocol::TCP, t.src_port, t.dst_port),
            Transport::Udp(u) => (IpProtocol::UDP, u.src_port, u.dst_port),
            Transport::Icmpv4(_) => return None,
        };
        Some(FlowKey::from_received(protocol, src, sport, dst, dport))
    }

    /// The transport layer, if any.
    pub fn transport(&self) -> Option<&Transport<'_>> {
        match &self.network {
            Network::Arp(_) => None,
            Network::Ipv4(_, t) | Network::Ipv6(_, t) => Some(t),
        }
    }
}

impl Transport<'_> {
    /// The IP protocol number that carries it.
    pub fn protocol(&self) -> IpProtocol {
        match self {
            Transport::Tcp(_) => IpProtocol::TCP,
            Transport::Udp(_) => IpProtocol::UDP,
            Transport::Icmpv4(_) => IpProtocol::ICMP,
        }
    }

    /// Bytes the transport header and payload take.
    pub fn buffer_len(&self) -> usize {
        match self {
            Transport::Tcp(t) => t.buffer_len(),
            Transport::Udp(u) => u.buffer_len(),
            Transport::Icmpv4(i) => i.buffer_len(),
        }
    }

    fn emit(&self, b: &mut [u8], src: IpAddr, dst: IpAddr, checksums: TxChecksums) {
        match self {
            Transport::Tcp(t) => t.emit_with(&mut TcpPacket::new_unchecked(b), src, dst, checksums),
            Transport::Udp(u) => u.emit_with(&mut UdpPacket::new_unchecked(b), src, dst, checksums),
            Transport::Icmpv4(i) => i.emit(b),
        }
    }
}

impl Frame<'_> {
    /// Bytes [`emit`](Self::emit) writes (no padding to the 60-byte minimum:
    /// the device adds it where the medium needs it).
    pub fn buffer_len(&self) -> usize {
        self.ethernet.buffer_len()
            + match &self.network {
                Network::Arp(a) => a.buffer_len(),
                Network::Ipv4(ip, t) => ip.buffer_len() + t.buffer_len(),
                Network::Ipv6(ip, t) => ip.buffer_len() + t.buffer_len(),
            }
    }

    /// Write the whole frame, every checksum computed, into the first
    /// [`buffer_len`](Self::buffer_len) bytes of `buffer`. The IP payload
    /// length is taken from the transport, whatever the IP repr says, so
    /// that the frame is always consistent.
    pub fn emit(&self, buffer: &mut [u8]) {
        self.emit_with(buffer, TxChecksums::Full);
    }

    /// [`emit`](Self::emit), with the TCP and UDP checksums computed in
    /// full or left for the device (ICMP's and IPv4's are always full).
    pub fn emit_with(&self, buffer: &mut [u8], checksums: TxChecksums) {
        let mut eth = EthernetFrame::new_unchecked(&mut buffer[..self.buffer_len()]);
        self.ethernet.emit(&mut eth);
        let b = eth.payload_mut();
        match &self.network {
            Network::Arp(a) => a.emit(&mut ArpPacket::new_unchecked(b)),
            Network::Ipv4(ip, t) => {
                let ip = Ipv4Repr {
                    payload_len: t.buffer_len(),
                    ..*ip
                };
                ip.emit(&mut Ipv4Packet::new_unchecked(&mut *b));
                let (src, dst) = (IpAddr::V4(ip.src_addr), IpAddr::V4(ip.dst_addr));
                t.emit(&mut b[ip.buffer_len()..], src, dst, checksums);
            }
            Network::Ipv6(ip, t) => {
                let ip = Ipv6Repr {
                    payload_len: t.buffer_len(),
                    ..*ip
                };
                ip.emit(&mut Ipv6Packet::new_unchecked(&mut *b));
                let (src, dst) = (IpAddr::V6(ip.src_addr), IpAddr::V6(ip.dst_addr));
                t.emit(&mut b[ip.buffer_len()..], src, dst, checksums);
            }
        }
    }
}

fn is_non_unicast(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => v4.is_broadcast() || v4.is_multicast(),
        IpAddr::V6(v6) => v6.is_multicast(),
    }
}

fn transport<'a>(
    protocol: IpProtocol,
    payload: &'a [u8],
    src: IpAddr,
    dst: IpAddr,
    checksums: Checksums,
) -> Result<Transport<'a>> {
    match protocol {
        IpProtocol::TCP => {
            let seg = TcpRepr::parse(&TcpPacket::new_checked(payload)?, src, dst, checksums)?;
            // RFC 9293 §3.10.7.2 (MUST-57): a SYN to a broadcast or multicast
            // address is discarded; TCP has no use for any other segment to
            // one either.
            if is_non_unicast(dst) {
                return Err(DropReason::NonUnicastDestination);
            }
            Ok(Transport::Tcp(seg))
        }
        IpProtocol::UDP => Ok(Transport::Udp(UdpRepr::parse(
            &UdpPacket::new_checked(payload)?,
            src,
            dst,
            checksums,
        )?)),
        IpProtocol::ICMP if src.is_ipv4() => Ok(Transport::Icmpv4(Icmpv4Repr::parse(
            &Icmpv4Packet::new_checked(payload)?,
            checksums,
        )?)),
        _ => Err(DropReason::UnknownIpProtocol),
    }
}

/// Parse a whole received Ethernet frame. Never panics, on any bytes.
pub fn parse_frame(frame: &[u8], checksums: Checksums) -> Result<Frame<'_>> {
    let eth = EthernetFrame::new_checked(frame)?;
    let ethernet = EthernetRepr::parse(&eth)?;
    let payload = eth.payload();
    let network = match ethernet.ethertype {
        EtherType::ARP => Network::Arp(ArpRepr::parse(&ArpPacket::new_checked(payload)?)?),
        EtherType::IPV4 => {
            let packet = Ipv4Packet::new_checked(payload)?;
            let ip = Ipv4Repr::parse(&packet)?;
            let (src, dst) = (IpAddr::V4(ip.src_addr), IpAddr::V4(ip.dst_addr));
            Network::Ipv4(
                ip,
                transport(ip.protocol, packet.payload(), src, dst, checksums)?,
            )
        }
        EtherType::IPV6 => {
            let packet = Ipv6Packet::new_checked(payload)?;
            let ip = Ipv6Repr::parse(&packet)?;
            let (src, dst) = (IpAddr::V6(ip.src_addr), IpAddr::V6(ip.dst_addr));
            Network::Ipv6(
                ip,
                transport(ip.next_header, packet.payload(), src, dst, checksums)?,
            )
        }
        _ => return Err(DropReason::UnknownEtherType),
    };
    Ok(Frame { ethernet, network })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{EthernetAddress, TcpFlags, TcpOptions};
    use core::net::Ipv4Addr;

    fn tcp_frame(dst: Ipv4Addr, flags: TcpFlags) -> Vec<u8> {
        let tcp = TcpRepr {
            src_port: 50000,
            dst_port: 80,
            flags,
            seq_number: 1,
            ack_number: 0,
            window_len: 1000,
            urgent_at: 0,
            options: TcpOptions {
                mss: Some(1460),
                ..TcpOptions::default()
            },
            payload: b"",
        };
        let ip = Ipv4Repr {
            src_addr: Ipv4Addr::new(198, 18, 9, 1),
            dst_addr: dst,
            protocol: IpProtocol::TCP,
            payload_len: tcp.buffer_len(),
            ttl: 64,
            tos: 0,
            ident: 0,
            dont_frag: true,
        };
        let ethernet = EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            vlan: None,
            ethertype: EtherType::IPV4,
        };
        let frame = Frame {
            ethernet,
            network: Network::Ipv4(ip, Transport::Tcp(tcp)),
        };
        let mut b = vec![0u8; frame.buffer_len()];
        frame.emit(&mut b);
        b
    }

    #[test]
    fn syn_gives_the_receivers_flow_key() {
        let b = tcp_frame(Ipv4Addr::new(198, 18, 9, 2), TcpFlags::SYN);
        let f = parse_frame(&b, Checksums::Verify).unwrap();
        assert_eq!(f.buffer_len(), b.len());
        let mut again = vec![0u8; b.len()];
        f.emit(&mut again);
        assert_eq!(again, b);
        let k = f.flow_key().unwrap();
        assert_eq!(k.local_port, 80);
        assert_eq!(k.remote_port, 50000);
        assert_eq!(k.local_addr, IpAddr::V4(Ipv4Addr::new(198, 18, 9, 2)));
    }

    #[test]
    fn syn_to_broadcast_or_multicast_is_dropped() {
        for dst in [Ipv4Addr::BROADCAST, Ipv4Addr::new(224, 0, 0, 1)] {
            let b = tcp_frame(dst, TcpFlags::SYN);
            assert_eq!(
                parse_frame(&b, Checksums::Verify),
                Err(DropReason::NonUnicastDestination)
            );
        }
    }

    #[test]
    fn each_layer_names_its_fault() {
        let good = tcp_frame(Ipv4Addr::new(198, 18, 9, 2), TcpFlags::SYN);
        let mut b = good.clone();
        b[12] = 0x88;
        b[13] = 0xb5;
        assert_eq!(
            parse_frame(&b, Checksums::Verify),
            Err(DropReason::UnknownEtherType)
        );
        let mut b = good.clone();
        b[14 + 9] = 47; // GRE
        Ipv4Packet::new_unchecked(&mut b[14..]).fill_checksum();
        assert_eq!(
            parse_frame(&b, Checksums::Verify),
            Err(DropReason::UnknownIpProtocol)
        );
        assert_eq!(
            parse_frame(&good[..40], Checksums::Verify),
            Err(DropReason::Truncated)
        );
        let mut b = good.clone();
        b[14 + 20 + 13] = (TcpFlags::SYN | TcpFlags::FIN).0;
        assert_eq!(
            parse_frame(&b, Checksums::Verify),
            Err(DropReason::BadChecksum)
        );
        assert_eq!(
            parse_frame(&b, Checksums::Trust),
            Err(DropReason::IllegalTcpFlags)
        );
    }
}
