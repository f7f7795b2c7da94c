//! Every view over arbitrary bytes: after `new_checked` succeeds no accessor
//! may panic, and no `Repr::parse` may panic at all.
#![no_main]

use core::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use stack::wire::*;

fuzz_target!(|data: &[u8]| {
    let a = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
    if let Ok(p) = EthernetFrame::new_checked(data) {
        let _ = (
            p.dst_addr(),
            p.src_addr(),
            p.vlan(),
            p.ethertype(),
            p.payload().len(),
        );
        let _ = EthernetRepr::parse(&p);
    }
    if let Ok(p) = ArpPacket::new_checked(data) {
        let _ = (
            p.source_hardware_addr(),
            p.source_protocol_addr(),
            p.target_hardware_addr(),
        );
        let _ = (p.target_protocol_addr(), p.operation());
        let _ = ArpRepr::parse(&p);
    }
    if let Ok(p) = Ipv4Packet::new_checked(data) {
        let _ = (
            p.payload().len(),
            p.frag_offset(),
            p.verify_checksum(),
            p.src_addr(),
            p.dst_addr(),
        );
        let _ = Ipv4Repr::parse(&p, Checksums::Trust);
    }
    if let Ok(p) = Ipv6Packet::new_checked(data) {
        let _ = (
            p.payload().len(),
            p.flow_label(),
            p.src_addr(),
            p.dst_addr(),
        );
        let _ = Ipv6Repr::parse(&p);
    }
    if let Ok(p) = Icmpv4Packet::new_checked(data) {
        let _ = (
            p.data().len(),
            p.echo_ident(),
            p.next_hop_mtu(),
            p.verify_checksum(),
        );
        let _ = Icmpv4Repr::parse(&p, Checksums::Trust);
    }
    if let Ok(p) = UdpPacket::new_checked(data) {
        let _ = (p.payload().len(), p.verify_checksum(a, a));
        let _ = UdpRepr::parse(&p, a, a, Checksums::Trust);
    }
    if let Ok(p) = TcpPacket::new_checked(data) {
        let _ = (
            p.payload().len(),
            p.options().len(),
            p.flags(),
            p.verify_checksum(a, a),
        );
        let _ = TcpRepr::parse(&p, a, a, Checksums::Trust);
    }
});
