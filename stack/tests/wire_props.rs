//! Property tests of the parse/emit contract (see `src/wire/mod.rs`):
//! `parse(emit(repr)) == repr` for every format, and no parser or checked
//! accessor panics on random or mutated bytes.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use stack::frame::{parse_frame, Frame, Network, Transport};
use stack::wire::tcp::SackBlocks;
use stack::wire::*;

fn cases() -> ProptestConfig {
    ProptestConfig::with_cases(512)
}

fn mac() -> impl Strategy<Value = EthernetAddress> {
    any::<[u8; 6]>().prop_map(|mut a| {
        a[0] &= !1; // unicast: a group source is dropped by design
        EthernetAddress(a)
    })
}

fn unicast_v4() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>()
        .prop_map(Ipv4Addr::from)
        .prop_filter("unicast", |a| !a.is_multicast() && !a.is_broadcast())
}

fn unicast_v6() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>()
        .prop_map(Ipv6Addr::from)
        .prop_filter("unicast", |a| !a.is_multicast())
}

fn tcp_options() -> impl Strategy<Value = TcpOptions> {
    (
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<u8>()),
        any::<bool>(),
        proptest::option::of(any::<(u32, u32)>()),
        proptest::collection::vec(any::<(u32, u32)>(), 0..=4),
    )
        .prop_map(|(mss, window_scale, sack_permitted, ts, blocks)| {
            let mut o = TcpOptions {
                mss,
                window_scale,
                sack_permitted,
                timestamps: ts.map(|(tsval, tsecr)| Timestamps { tsval, tsecr }),
                sack_blocks: SackBlocks::default(),
            };
            // Keep only the blocks that fit in 40 bytes, so the repr is one
            // that emit can write whole.
            for b in blocks {
                let mut more = o;
                more.sack_blocks.push(b);
                if more.buffer_len()
                    == o.buffer_len() + if o.sack_blocks.is_empty() { 12 } else { 8 }
                {
                    o = more;
                }
            }
            o
        })
}

fn tcp_flags() -> impl Strategy<Value = TcpFlags> {
    any::<u8>()
        .prop_map(TcpFlags)
        .prop_filter("legal", |f| !f.is_illegal())
}

prop_compose! {
    fn tcp_repr()(src_port in 1u16.., dst_port in 1u16.., flags in tcp_flags(), seq_number in any::<u32>(),
                  ack_number in any::<u32>(), window_len in any::<u16>(), urgent_at in any::<u16>(),
                  options in tcp_options(), payload in proptest::collection::vec(any::<u8>(), 0..64))
                  -> (TcpRepr<'static>, Vec<u8>) {
        let repr = TcpRepr { src_port, dst_port, flags, seq_number, ack_number, window_len, urgent_at, options, payload: &[] };
        (repr, payload)
    }
}

fn ip_pair() -> impl Strategy<Value = (IpAddr, IpAddr)> {
    prop_oneof![
        (unicast_v4(), any::<u32>())
            .prop_map(|(s, d)| (IpAddr::V4(s), IpAddr::V4(Ipv4Addr::from(d)))),
        (unicast_v6(), any::<u128>())
            .prop_map(|(s, d)| (IpAddr::V6(s), IpAddr::V6(Ipv6Addr::from(d)))),
    ]
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn ethernet_roundtrip(src_addr in mac(), dst_addr in any::<[u8; 6]>(), tag in proptest::option::of((0u8..8, any::<bool>(), 0u16..4096)), ethertype in any::<u16>()) {
        let repr = EthernetRepr {
            src_addr,
            dst_addr: EthernetAddress(dst_addr),
            vlan: tag.map(|(pcp, dei, vid)| VlanTag { pcp, dei, vid }),
            ethertype: EtherType(ethertype),
        };
        // A payload EtherType of 0x8100 under no tag would read as a tag.
        prop_assume!(repr.vlan.is_some() || repr.ethertype != EtherType::VLAN);
        let mut b = vec![0u8; repr.buffer_len()];
        repr.emit(&mut EthernetFrame::new_unchecked(&mut b[..]));
        prop_assert_eq!(EthernetRepr::parse(&EthernetFrame::new_checked(&b[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn arp_roundtrip(request in any::<bool>(), sha in mac(), spa in any::<u32>(), tha in any::<[u8; 6]>(), tpa in any::<u32>()) {
        let repr = ArpRepr {
            operation: if request { ArpOperation::Request } else { ArpOperation::Reply },
            source_hardware_addr: sha,
            source_protocol_addr: Ipv4Addr::from(spa),
            target_hardware_addr: EthernetAddress(tha),
            target_protocol_addr: Ipv4Addr::from(tpa),
        };
        let mut b = vec![0u8; repr.buffer_len()];
        repr.emit(&mut ArpPacket::new_unchecked(&mut b[..]));
        prop_assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&b[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn ipv4_roundtrip(src_addr in unicast_v4(), dst_addr in any::<u32>(), protocol in any::<u8>(), payload_len in 0usize..1500,
                      ttl in any::<u8>(), tos in any::<u8>(), ident in any::<u16>(), dont_frag in any::<bool>()) {
        let repr = Ipv4Repr { src_addr, dst_addr: Ipv4Addr::from(dst_addr), protocol: IpProtocol(protocol), payload_len, ttl, tos, ident, dont_frag };
        let mut b = vec![0u8; repr.buffer_len() + payload_len];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut b[..]));
        prop_assert_eq!(Ipv4Repr::parse(&Ipv4Packet::new_checked(&b[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn ipv6_roundtrip(src_addr in unicast_v6(), dst_addr in any::<u128>(), next_header in any::<u8>(), payload_len in 0usize..1500,
                      hop_limit in any::<u8>(), traffic_class in any::<u8>(), flow_label in 0u32..(1 << 20)) {
        let repr = Ipv6Repr { src_addr, dst_addr: Ipv6Addr::from(dst_addr), next_header: IpProtocol(next_header), payload_len, hop_limit, traffic_class, flow_label };
        let mut b = vec![0u8; repr.buffer_len() + payload_len];
        repr.emit(&mut Ipv6Packet::new_unchecked(&mut b[..]));
        prop_assert_eq!(Ipv6Repr::parse(&Ipv6Packet::new_checked(&b[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn icmp_roundtrip(kind in 0u8..3, code in any::<u8>(), a in any::<u16>(), b16 in any::<u16>(), data in proptest::collection::vec(any::<u8>(), 28..100)) {
        let repr = match kind {
            0 => Icmpv4Repr::EchoRequest { ident: a, seq_no: b16, data: &data },
            1 => Icmpv4Repr::EchoReply { ident: a, seq_no: b16, data: &data },
            _ => Icmpv4Repr::DstUnreachable { code, next_hop_mtu: b16, invoking: &data },
        };
        let mut b = vec![0u8; repr.buffer_len()];
        repr.emit(&mut b);
        prop_assert_eq!(Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&b[..]).unwrap(), Checksums::Verify), Ok(repr));
    }

    #[test]
    fn udp_roundtrip((src, dst) in ip_pair(), src_port in any::<u16>(), dst_port in 1u16.., payload in proptest::collection::vec(any::<u8>(), 0..200)) {
        let repr = UdpRepr { src_port, dst_port, payload: &payload };
        let mut b = vec![0u8; repr.buffer_len()];
        repr.emit(&mut UdpPacket::new_unchecked(&mut b[..]), src, dst);
        prop_assert_eq!(UdpRepr::parse(&UdpPacket::new_checked(&b[..]).unwrap(), src, dst, Checksums::Verify), Ok(repr));
    }

    #[test]
    fn tcp_roundtrip((src, dst) in ip_pair(), (mut repr, payload) in tcp_repr()) {
        repr.payload = &payload;
        let mut b = vec![0u8; repr.buffer_len()];
        repr.emit(&mut TcpPacket::new_unchecked(&mut b[..]), src, dst);
        prop_assert_eq!(TcpRepr::parse(&TcpPacket::new_checked(&b[..]).unwrap(), src, dst, Checksums::Verify), Ok(repr));
    }

    #[test]
    fn checksum_equals_the_rfc_1071_word_by_word_sum(data in proptest::collection::vec(any::<u8>(), 0..3000), skip in 0usize..8) {
        // the reference: big-endian 16-bit words one at a time, an odd last
        // byte padded on the right, end-around carries folded at the end;
        // from an offset, so that the fast sum sees every alignment
        let d = &data[skip.min(data.len())..];
        let mut acc: u64 = d.chunks(2).map(|w| u64::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]))).sum();
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        prop_assert_eq!(checksum::data(d), acc as u16);
        prop_assert_eq!(checksum::fold(checksum::sum(d)), acc as u16);
    }

    #[test]
    fn incremental_checksum_matches_full(mut data in proptest::collection::vec(any::<u8>(), 4..200), at in any::<prop::sample::Index>(), new in any::<u16>()) {
        // The checksum field sits in the first word; change any other word.
        let words = data.len() / 2;
        prop_assume!(words >= 2);
        let i = 1 + at.index(words - 1);
        data[0] = 0;
        data[1] = 0;
        let hc = checksum::finish(checksum::data(&data));
        let old = u16::from_be_bytes([data[2 * i], data[2 * i + 1]]);
        data[2 * i..2 * i + 2].copy_from_slice(&new.to_be_bytes());
        let updated = checksum::update(hc, old, new);
        // Both are valid checksums of the new data: the sums agree in ones'
        // complement (0x0000 and 0xffff are the same number).
        data[0..2].copy_from_slice(&updated.to_be_bytes());
        prop_assert_eq!(checksum::data(&data), 0xffff);
    }
}

/// Every accessor of every view that checks, on the given bytes. Returns a
/// value so that nothing is optimised away.
fn touch_everything(b: &[u8]) -> usize {
    let mut n = 0;
    if let Ok(p) = EthernetFrame::new_checked(b) {
        n += p.dst_addr().0[0] as usize + p.src_addr().0[0] as usize + p.ethertype().0 as usize;
        n += p.vlan().map_or(0, |v| v.vid as usize) + p.payload().len();
    }
    if let Ok(p) = ArpPacket::new_checked(b) {
        n += p.source_hardware_addr().len() + p.source_protocol_addr().len();
        n += p.target_hardware_addr().len()
            + p.target_protocol_addr().len()
            + p.operation() as usize;
    }
    if let Ok(p) = Ipv4Packet::new_checked(b) {
        n += p.payload().len()
            + p.ttl() as usize
            + p.frag_offset() as usize
            + p.verify_checksum() as usize;
        n += u32::from(p.src_addr()) as usize + p.ident() as usize;
    }
    if let Ok(p) = Ipv6Packet::new_checked(b) {
        n += p.payload().len() + p.flow_label() as usize + p.src_addr().octets()[0] as usize;
    }
    if let Ok(p) = Icmpv4Packet::new_checked(b) {
        n += p.data().len() + p.echo_ident() as usize + p.verify_checksum() as usize;
    }
    let any_addr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
    if let Ok(p) = UdpPacket::new_checked(b) {
        n += p.payload().len() + p.verify_checksum(any_addr, any_addr) as usize;
    }
    if let Ok(p) = TcpPacket::new_checked(b) {
        n += p.payload().len() + p.options().len() + p.seq_number() as usize + p.flags().0 as usize;
        n += p.verify_checksum(any_addr, any_addr) as usize;
        n += tcp::TcpOptionsIter::new(p.options()).count();
        let _ = TcpRepr::parse(&p, any_addr, any_addr, Checksums::Trust);
    }
    let _ = ArpPacket::new_checked(b).and_then(|p| ArpRepr::parse(&p));
    let _ = Ipv4Packet::new_checked(b).and_then(|p| Ipv4Repr::parse(&p));
    let _ = Ipv6Packet::new_checked(b).and_then(|p| Ipv6Repr::parse(&p));
    let _ = Icmpv4Packet::new_checked(b).and_then(|p| Icmpv4Repr::parse(&p, Checksums::Trust));
    let _ = UdpPacket::new_checked(b)
        .and_then(|p| UdpRepr::parse(&p, any_addr, any_addr, Checksums::Trust));
    let _ = parse_frame(b, Checksums::Verify);
    let _ = parse_frame(b, Checksums::Trust);
    n
}

/// A valid frame carrying a timestamped TCP segment, to mutate.
fn sample_frame() -> Vec<u8> {
    let tcp = TcpRepr {
        src_port: 50000,
        dst_port: 80,
        flags: TcpFlags::ACK | TcpFlags::PSH,
        seq_number: 1,
        ack_number: 2,
        window_len: 500,
        urgent_at: 0,
        options: TcpOptions {
            timestamps: Some(Timestamps { tsval: 3, tsecr: 4 }),
            sack_blocks: SackBlocks::new(&[(5, 6)]),
            ..TcpOptions::default()
        },
        payload: b"GET / HTTP/1.1\r\n\r\n",
    };
    let ip = ipv4(
        Ipv4Addr::new(198, 18, 9, 1),
        Ipv4Addr::new(198, 18, 9, 2),
        IpProtocol::TCP,
    );
    let ethernet = EthernetRepr {
        src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
        dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
        vlan: Some(VlanTag {
            pcp: 0,
            dei: false,
            vid: 9,
        }),
        ethertype: EtherType::IPV4,
    };
    let frame = Frame {
        ethernet,
        network: Network::Ipv4(ip, Transport::Tcp(tcp)),
    };
    let mut b = vec![0u8; frame.buffer_len()];
    frame.emit(&mut b);
    assert!(parse_frame(&b, Checksums::Verify).is_ok());
    b
}

fn ipv4(src_addr: Ipv4Addr, dst_addr: Ipv4Addr, protocol: IpProtocol) -> Ipv4Repr {
    Ipv4Repr {
        src_addr,
        dst_addr,
        protocol,
        payload_len: 0,
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_frag: true,
    }
}

fn ipv6(src_addr: Ipv6Addr, dst_addr: Ipv6Addr, next_header: IpProtocol) -> Ipv6Repr {
    Ipv6Repr {
        src_addr,
        dst_addr,
        next_header,
        payload_len: 0,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 7,
    }
}

proptest! {
    #![proptest_config(cases())]

    /// Whole frames: Ethernet (tagged or not), IPv4 or IPv6, TCP or UDP.
    #[test]
    fn frame_roundtrip(src_mac in mac(), vlan in proptest::option::of(0u16..4096), (src, dst) in ip_pair(),
                       udp in any::<bool>(), (mut tcp, payload) in tcp_repr()) {
        tcp.payload = &payload;
        let (network_src, network_dst) = (src, dst);
        let transport = if udp {
            Transport::Udp(UdpRepr { src_port: tcp.src_port, dst_port: tcp.dst_port, payload: &payload })
        } else {
            Transport::Tcp(tcp)
        };
        let protocol = if udp { IpProtocol::UDP } else { IpProtocol::TCP };
        // TCP never goes to a group address: keep the destination unicast.
        let dst_unicast = match network_dst {
            IpAddr::V4(a) => !a.is_multicast() && !a.is_broadcast(),
            IpAddr::V6(a) => !a.is_multicast(),
        };
        prop_assume!(udp || dst_unicast);
        let (ethertype, network) = match (network_src, network_dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => (EtherType::IPV4, Network::Ipv4(ipv4(s, d, protocol), transport)),
            (IpAddr::V6(s), IpAddr::V6(d)) => (EtherType::IPV6, Network::Ipv6(ipv6(s, d, protocol), transport)),
            _ => unreachable!("ip_pair gives one family"),
        };
        let mut frame = Frame {
            ethernet: EthernetRepr {
                src_addr: src_mac,
                dst_addr: EthernetAddress::BROADCAST,
                vlan: vlan.map(|vid| VlanTag { pcp: 0, dei: false, vid }),
                ethertype,
            },
            network,
        };
        // emit fixes the IP payload length from the transport; so does the model.
        let len = transport.buffer_len();
        match &mut frame.network {
            Network::Ipv4(ip, _) => ip.payload_len = len,
            Network::Ipv6(ip, _) => ip.payload_len = len,
            Network::Arp(_) => {}
        }
        let mut b = vec![0u8; frame.buffer_len()];
        frame.emit(&mut b);
        prop_assert_eq!(parse_frame(&b, Checksums::Verify), Ok(frame));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..128)) {
        touch_everything(&b);
    }

    #[test]
    fn mutated_frames_never_panic(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>()) {
        let mut b = sample_frame();
        for (at, v) in edits {
            let i = at.index(b.len());
            b[i] = v;
        }
        let len = b.len();
        b.truncate(len - cut.index(len / 4 + 1));
        touch_everything(&b);
        // Every sub-slice of a view's buffer is another test.
        for start in [14, 18, 38] {
            if let Some(rest) = b.get(start..) {
                touch_everything(rest);
            }
        }
    }
}
