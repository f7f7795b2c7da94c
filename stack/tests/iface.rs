//! One interface for every protocol: a shard's interface serves TCP and
//! UDP at once on one device, resolves its peers by ARP like any host, and
//! takes neighbours that a sibling shard learned.

mod common;

use core::time::Duration;

use common::*;
use stack::frame::{parse_frame, Frame, Network, Transport};
use stack::phy::{Device, Faults, Loopback};
use stack::tcp::{State, TcpConfig};
use stack::wire::{ArpOperation, Checksums};
use stack::{Interface, Readiness};

#[test]
fn one_interface_serves_a_tcp_connection_and_a_udp_socket_at_once_resolving_its_peer_by_arp() {
    let mut net = Net::resolving(TcpConfig::default(), Faults::default(), 1, |_| {});
    // A serves TCP port 80 and UDP port 7 on one interface, one device.
    let l = listener(&mut net.a, A_IP, 80, 8);
    let echo = net.a.udp_bind(7).unwrap();
    // B opens a connection and sends a datagram in the same breath; it
    // knows nothing of A yet.
    let c = net.b.socket().unwrap();
    net.b.connect(c, sa(A_IP, 80)).unwrap();
    let u = net.b.udp_bind(0).unwrap();
    net.b.send_to(u, sa(A_IP, 7), b"ping over udp").unwrap();
    let mut served = None;
    assert!(net.run_until(Duration::from_secs(1), |n| {
        if served.is_none() {
            served = n.a.accept(l).ok().map(|(h, _)| h);
        }
        served.is_some() && n.a.rx_queued(echo) == 1
    }));
    let s = served.unwrap();
    // Both at once: a request on the connection and the datagram echoed.
    net.b.send(c, b"ping over tcp").unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = net.a.recv_from(echo, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping over udp");
    net.a.send_to(echo, from, &buf[..n]).unwrap();
    let mut got_tcp = Vec::new();
    assert!(net.run_until(Duration::from_secs(1), |n| {
        let mut b = [0u8; 64];
        if let Ok(k) = n.a.recv(s, &mut b) {
            got_tcp.extend_from_slice(&b[..k]);
        }
        got_tcp.len() == 13 && n.b.rx_queued(u) == 1
    }));
    assert_eq!(got_tcp, b"ping over tcp");
    let (n, from) = net.b.recv_from(u, &mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"ping over udp"[..], sa(A_IP, 7)));
    assert_eq!(net.b.state(c), Ok(State::Established));
    assert!(net.a.readiness(echo).unwrap().contains(Readiness::WRITABLE));

    // B asked for A once; A learned B from that request (RFC 826) and
    // never had to ask. Nobody was told a MAC by hand.
    let (ca, cb) = (net.a.counters(), net.b.counters());
    assert_eq!((cb.arp_requests_sent, ca.arp_requests_sent), (1, 0));
    assert_eq!((ca.arp_requests_received, cb.arp_replies_received), (1, 1));
    assert_eq!(net.a.neighbour(B_IP), Some(B_MAC));
    assert_eq!(net.b.neighbour(A_IP), Some(A_MAC));
    // B's SYN and datagram waited for the answer and then went.
    assert_eq!(cb.arp_pending_sent, 2);
    // One set of counters for both protocols: every frame accounted for.
    assert!(ca.tcp_segments >= 3, "{ca:?}");
    assert_eq!((ca.rx_datagrams, ca.tx_datagrams), (1, 1));
    for c in [ca, cb] {
        assert_eq!(c.parse.dropped(), 0);
        assert_eq!(
            c.parse.accepted(),
            c.tcp_segments
                + c.rx_datagrams
                + c.arp_requests_received
                + c.arp_replies_received
                + c.not_for_us
                + c.unhandled
                + c.martians(),
            "{c:?}"
        );
    }
}

#[test]
fn a_neighbour_a_sibling_shard_learned_releases_what_waited_for_it() {
    // Two shards of one NIC: A asked for B, but B's answer landed on the
    // other shard's queue, which passes it on.
    let (da, mut raw) = Loopback::pair(MTU, 64);
    let mut a = Interface::new(da, config(A_MAC, A_IP, TcpConfig::default()));
    let u = a.udp_bind(0).unwrap();
    a.send_to(u, sa(B_IP, 9), b"waits for B").unwrap();
    a.poll(stack::time::Instant::ZERO);
    let mut frames = Vec::new();
    raw.receive(8, |f| frames.push(f.to_vec()));
    let f = parse_frame(&frames[0], Checksums::Verify).unwrap();
    assert!(matches!(f.network, Network::Arp(arp) if arp.operation == ArpOperation::Request));
    assert_eq!(frames.len(), 1, "the datagram waits");
    assert_eq!(a.take_learned(), None, "nothing learned here");

    a.learn_neighbour(B_IP, B_MAC);
    a.poll(stack::time::Instant::from_millis(1));
    let mut frames = Vec::new();
    raw.receive(8, |f| frames.push(f.to_vec()));
    assert_eq!(frames.len(), 1);
    let f: Frame<'_> = parse_frame(&frames[0], Checksums::Verify).unwrap();
    let Network::Ipv4(_, Transport::Udp(d)) = f.network else {
        panic!("{f:?}")
    };
    assert_eq!(
        (f.ethernet.dst_addr, d.payload),
        (B_MAC, &b"waits for B"[..])
    );
    let c = a.counters();
    assert_eq!((c.neighbours_relayed, c.arp_pending_sent), (1, 1));
    // A relayed neighbour is not passed on again (no echo between shards).
    assert_eq!(a.take_learned(), None);
    assert_eq!(a.neighbour(B_IP), Some(B_MAC));
}

#[test]
fn what_arp_teaches_is_kept_for_the_sibling_shards() {
    let mut net = Net::resolving(TcpConfig::default(), Faults::default(), 1, |_| {});
    let u = net.b.udp_bind(0).unwrap();
    net.b.send_to(u, sa(A_IP, 9), b"x").unwrap();
    net.run_for(Duration::from_millis(5));
    // A learned B from B's request, B learned A from A's reply.
    assert_eq!(net.a.take_learned(), Some((B_IP, B_MAC)));
    assert_eq!(net.a.take_learned(), None);
    assert_eq!(net.b.take_learned(), Some((A_IP, A_MAC)));
}

#[test]
fn a_udp_socket_reports_readable_when_its_queue_fills_from_empty() {
    let mut net = Net::resolving(TcpConfig::default(), Faults::default(), 1, |_| {});
    let server = net.a.udp_bind(7).unwrap();
    let client = net.b.udp_bind(0).unwrap();
    let events = |n: &mut Net| {
        let mut v = Vec::new();
        while let Some(e) = n.a.next_event() {
            v.push(e);
        }
        v
    };
    for i in 0..2u8 {
        net.b.send_to(client, sa(A_IP, 7), &[i]).unwrap();
    }
    net.run_for(Duration::from_millis(5));
    let ev = events(&mut net);
    assert_eq!(
        ev.len(),
        1,
        "one event for the queue going non-empty: {ev:?}"
    );
    assert_eq!(ev[0].handle, server);
    assert!(ev[0].readiness.contains(Readiness::READABLE));
    // a datagram more while it is not drained: no news
    net.b.send_to(client, sa(A_IP, 7), &[2]).unwrap();
    net.run_for(Duration::from_millis(5));
    assert!(events(&mut net).is_empty());
    let mut buf = [0u8; 8];
    let mut got = Vec::new();
    while let Ok((n, _)) = net.a.recv_from(server, &mut buf) {
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, [0, 1, 2]);
    // drained: the next datagram is news again
    net.b.send_to(client, sa(A_IP, 7), &[3]).unwrap();
    net.run_for(Duration::from_millis(5));
    let ev = events(&mut net);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert!(ev[0].readiness.contains(Readiness::READABLE));
}

/// A UDP datagram from `src` to A's port 7, as raw bytes.
fn datagram_from(src: std::net::Ipv4Addr) -> Vec<u8> {
    use stack::wire::{EtherType, EthernetRepr, IpProtocol, Ipv4Repr, UdpRepr};
    let udp = UdpRepr {
        src_port: 5000,
        dst_port: 7,
        payload: b"hello",
    };
    let f = Frame {
        ethernet: EthernetRepr {
            src_addr: B_MAC,
            dst_addr: A_MAC,
            vlan: None,
            ethertype: EtherType::IPV4,
        },
        network: Network::Ipv4(
            Ipv4Repr {
                src_addr: src,
                dst_addr: A_IP,
                protocol: IpProtocol::UDP,
                payload_len: udp.buffer_len(),
                ttl: 64,
                tos: 0,
                ident: 1,
                dont_frag: true,
            },
            Transport::Udp(udp),
        ),
    };
    let mut b = vec![0u8; f.buffer_len()];
    f.emit(&mut b);
    b
}

#[test]
fn martian_sources_and_source_routes_are_dropped_by_reason_and_a_peer_goes_on() {
    use std::net::Ipv4Addr;
    let (da, mut raw) = Loopback::pair(MTU, 64);
    let mut cfg = config(A_MAC, A_IP, TcpConfig::default());
    // an alias of ours is our own address too
    let alias = Ipv4Addr::new(198, 18, 0, 201);
    cfg.aliases = Some(Ipv4Addr::new(198, 18, 0, 200)..=alias);
    let mut a = Interface::new(da, cfg);
    assert!(a.set_permanent_neighbour(B_IP, B_MAC));
    let u = a.udp_bind(7).unwrap();
    let put = |raw: &mut Loopback, f: &[u8]| {
        raw.transmit(|b| {
            b[..f.len()].copy_from_slice(f);
            f.len()
        });
        raw.flush();
    };
    let martians = [
        Ipv4Addr::new(0, 1, 2, 3),
        Ipv4Addr::new(127, 0, 0, 1),
        Ipv4Addr::new(224, 0, 0, 9),
        Ipv4Addr::new(240, 0, 0, 1),
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(198, 18, 0, 255),
        A_IP,
        alias,
    ];
    for src in martians {
        put(&mut raw, &datagram_from(src));
    }
    // a source-routed datagram (LSRR, then a NOP) from the legitimate peer
    let mut routed = datagram_from(B_IP);
    let ip = 14;
    routed.splice(ip + 20..ip + 20, [0x83, 7, 4, 198, 18, 0, 9, 1]);
    routed[ip] = 0x47;
    let total = u16::from_be_bytes([routed[ip + 2], routed[ip + 3]]) + 8;
    routed[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
    routed[ip + 10..ip + 12].fill(0);
    let sum = !stack::wire::checksum::data(&routed[ip..ip + 28]);
    routed[ip + 10..ip + 12].copy_from_slice(&sum.to_be_bytes());
    put(&mut raw, &routed);
    a.poll(stack::time::Instant::ZERO);
    let mut sent = 0;
    raw.receive(64, |_| sent += 1);
    assert_eq!(sent, 0, "no answer (no port unreachable) to a martian");
    assert_eq!(a.rx_queued(u), 0);
    let c = a.counters();
    assert_eq!(
        (
            c.martian_zero_net,
            c.martian_loopback,
            c.martian_reserved,
            c.martian_broadcast,
            c.martian_own_address,
            c.source_routed
        ),
        (1, 1, 1, 1, 2, 1),
        "{c:?}"
    );
    // multicast and limited-broadcast sources the parser already refuses
    assert_eq!(c.parse.get(stack::DropReason::NonUnicastSource), 2);
    assert_eq!(c.parse.dropped(), 2);
    // the legitimate peer goes on
    put(&mut raw, &datagram_from(B_IP));
    a.poll(stack::time::Instant::from_millis(1));
    assert_eq!(a.rx_queued(u), 1);
}
