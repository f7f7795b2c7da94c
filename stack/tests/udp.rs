//! UDP on the interface, over an in-memory link under a deterministic clock: ARP
//! resolution and retries, datagrams of every size with their boundaries,
//! bounded queues, ICMP echo and port unreachable, and garbage that is
//! counted and dropped.

use core::net::{Ipv4Addr, SocketAddrV4};

use proptest::prelude::*;
use stack::frame::{parse_frame, Frame, Network, Transport};
use stack::iface::{Interface, InterfaceConfig, InterfaceCounters};
use stack::phy::{Device, Loopback};
use stack::time::Instant;
use stack::wire::{
    icmp::unreachable, ArpOperation, ArpRepr, Checksums, EtherType, EthernetAddress, EthernetRepr,
    Icmpv4Repr, IpProtocol, Ipv4Repr, UdpRepr,
};
use stack::DropReason;
use stack::Error;

const IP_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
const IP_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 3]);
const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
const ECHO_PORT: u16 = 7;

fn config(mac: EthernetAddress, ip: Ipv4Addr) -> InterfaceConfig {
    InterfaceConfig::new(mac, ip, 24, [1, 2, 3, 4], [5, 6, 7, 8])
}

fn ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

/// Two stacks joined by an in-memory link (MTU 1500).
fn pair(a: InterfaceConfig, b: InterfaceConfig) -> (Interface<Loopback>, Interface<Loopback>) {
    let (da, db) = Loopback::pair(1500, 4096);
    (Interface::new(da, a), Interface::new(db, b))
}

/// Polls both until neither has anything to do (bounded).
fn settle(a: &mut Interface<Loopback>, b: &mut Interface<Loopback>, now: Instant) {
    for _ in 0..1000 {
        let did_a = a.poll(now);
        let did_b = b.poll(now);
        if !did_a && !did_b {
            return;
        }
    }
    panic!("the link did not settle");
}

fn payload(n: usize, i: usize) -> Vec<u8> {
    (0..n).map(|j| (i * 131 + j * 7) as u8).collect()
}

/// Every frame accepted by the parser ends in exactly one counter.
fn assert_accounted(c: &InterfaceCounters) {
    assert_eq!(
        c.parse.accepted() + c.parse.dropped(),
        c.rx_frames,
        "{c:#?}"
    );
    let outcomes = c.tcp_segments
        + c.rx_datagrams
        + c.socket_queue_full
        + c.too_big
        + c.closed_port
        + c.not_for_us
        + c.unhandled
        + c.icmp_echo_replied
        + c.icmp_unreachable_received
        + c.arp_requests_received
        + c.arp_replies_received
        + c.martians();
    assert_eq!(c.parse.accepted(), outcomes, "{c:#?}");
}

#[test]
fn datagrams_of_every_size_cross_after_arp_with_boundaries_kept() {
    let (mut a, mut b) = pair(config(MAC_A, IP_A), config(MAC_B, IP_B));
    let server = a.udp_bind(ECHO_PORT).unwrap();
    let client = b.udp_bind(0).unwrap();
    assert_eq!(b.local_addr(client).map(|a| a.port()), Ok(49152));
    assert_eq!(a.max_payload(), 1472);
    let to_a = SocketAddrV4::new(IP_A, ECHO_PORT);
    let mut sent = Vec::new();
    let mut back = Vec::new();
    let mut buf = vec![0u8; 2048];
    // Sizes 1..=1472, in chunks that fit the queue waiting for ARP; the
    // server echoes each datagram back.
    let sizes: Vec<usize> = (1..=1472).collect();
    for (t, chunk) in (0u64..).zip(sizes.chunks(50)) {
        for &n in chunk {
            let p = payload(n, sent.len());
            b.send_to(client, to_a, &p).unwrap();
            sent.push(p);
        }
        settle(&mut a, &mut b, ms(t));
        while let Ok((n, from)) = a.recv_from(server, &mut buf) {
            a.send_to(server, from, &buf[..n]).unwrap();
        }
        settle(&mut a, &mut b, ms(t));
        while let Ok((n, from)) = b.recv_from(client, &mut buf) {
            assert_eq!(from, to_a);
            back.push(buf[..n].to_vec());
        }
    }
    assert_eq!(back.len(), sent.len());
    for (i, (got, want)) in back.iter().zip(&sent).enumerate() {
        assert_eq!(got, want, "datagram {i} ({} bytes)", want.len());
    }
    let (ca, cb) = (a.counters(), b.counters());
    // B resolved A with one request; A learned B from it (RFC 826).
    assert_eq!((cb.arp_requests_sent, ca.arp_requests_sent), (1, 0));
    assert_eq!((ca.arp_replies_sent, cb.arp_replies_received), (1, 1));
    assert_eq!(a.neighbour(IP_B), Some(MAC_B));
    assert_eq!(b.neighbour(IP_A), Some(MAC_A));
    assert_eq!(ca.rx_datagrams, 1472);
    assert_eq!(cb.rx_datagrams, 1472);
    assert_eq!(ca.tx_datagrams, 1472);
    assert_eq!(ca.rx_bytes, (1..=1472u64).sum::<u64>());
    assert_eq!(ca.parse.dropped() + cb.parse.dropped(), 0);
    assert_accounted(ca);
    assert_accounted(cb);
    // Too large for the MTU: refused, nothing sent.
    assert_eq!(
        b.send_to(client, to_a, &[0; 1473]),
        Err(Error::MessageTooLong)
    );
}

#[test]
fn a_short_buffer_cuts_the_datagram_and_the_next_one_is_intact() {
    let (mut a, mut b) = pair(config(MAC_A, IP_A), config(MAC_B, IP_B));
    let server = a.udp_bind(ECHO_PORT).unwrap();
    let client = b.udp_bind(0).unwrap();
    let to_a = SocketAddrV4::new(IP_A, ECHO_PORT);
    b.send_to(client, to_a, b"0123456789").unwrap();
    b.send_to(client, to_a, b"abc").unwrap();
    b.send_to(client, to_a, b"").unwrap();
    settle(&mut a, &mut b, ms(0));
    let mut small = [0u8; 4];
    assert_eq!(
        a.recv_from(server, &mut small).map(|r| r.0),
        Ok(4),
        "cut to the buffer"
    );
    assert_eq!(&small, b"0123");
    let mut buf = [0u8; 64];
    assert_eq!(a.recv_from(server, &mut buf).map(|r| r.0), Ok(3));
    assert_eq!(&buf[..3], b"abc");
    // An empty datagram is a datagram.
    let from = SocketAddrV4::new(IP_B, 49152);
    assert_eq!(a.recv_from(server, &mut buf), Ok((0, from)));
    assert_eq!(a.recv_from(server, &mut buf), Err(Error::WouldBlock));
}

#[test]
fn full_socket_queue_drops_and_counts() {
    let mut cfg = config(MAC_A, IP_A);
    cfg.udp_rx_queue = 4;
    let (mut a, mut b) = pair(cfg, config(MAC_B, IP_B));
    let server = a.udp_bind(ECHO_PORT).unwrap();
    let client = b.udp_bind(0).unwrap();
    let to_a = SocketAddrV4::new(IP_A, ECHO_PORT);
    for i in 0..10u8 {
        b.send_to(client, to_a, &[i]).unwrap();
    }
    settle(&mut a, &mut b, ms(0));
    assert_eq!(a.rx_queued(server), 4);
    assert_eq!(a.socket_drops(server), 6);
    assert_eq!(a.counters().socket_queue_full, 6);
    // The four kept are the first four, in order.
    let mut buf = [0u8; 8];
    for i in 0..4u8 {
        assert_eq!(a.recv_from(server, &mut buf).map(|r| r.0), Ok(1));
        assert_eq!(buf[0], i);
    }
    assert_accounted(a.counters());
}

#[test]
fn closed_port_gets_port_unreachable_at_a_limited_rate() {
    let (mut a, mut b) = pair(config(MAC_A, IP_A), config(MAC_B, IP_B));
    let client = b.udp_bind(0).unwrap();
    let closed = SocketAddrV4::new(IP_A, 9);
    for i in 0..30u8 {
        b.send_to(client, closed, &[i; 20]).unwrap();
    }
    settle(&mut a, &mut b, ms(0));
    let ca = a.counters();
    assert_eq!(ca.closed_port, 30);
    // Burst of 10, then nothing until the bucket refills (100/s).
    assert_eq!(
        (ca.port_unreachable_sent, ca.port_unreachable_suppressed),
        (10, 20)
    );
    assert_eq!(b.counters().icmp_unreachable_received, 10);
    for i in 0..5u8 {
        b.send_to(client, closed, &[i]).unwrap();
    }
    settle(&mut a, &mut b, ms(50));
    let ca = a.counters();
    assert_eq!(
        (ca.port_unreachable_sent, ca.port_unreachable_suppressed),
        (15, 20)
    );
    assert_accounted(ca);
    assert_accounted(b.counters());
}

/// A stack on one end of the link; the test writes and reads raw frames on
/// the other.
fn raw_peer(cfg: InterfaceConfig) -> (Interface<Loopback>, Loopback) {
    let (da, raw) = Loopback::pair(1500, 4096);
    (Interface::new(da, cfg), raw)
}

fn inject(raw: &mut Loopback, frame: &[u8]) {
    assert!(raw.transmit(|buf| {
        let n = frame.len().min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        n
    }));
    raw.flush();
}

fn emit(frame: &Frame<'_>) -> Vec<u8> {
    let mut b = vec![0u8; frame.buffer_len()];
    frame.emit(&mut b);
    b
}

fn take(raw: &mut Loopback) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    raw.receive(usize::MAX, |f| out.push(f.to_vec()));
    out
}

fn eth(ethertype: EtherType, dst: EthernetAddress) -> EthernetRepr {
    EthernetRepr {
        src_addr: MAC_B,
        dst_addr: dst,
        vlan: None,
        ethertype,
    }
}

fn ipv4(protocol: IpProtocol, dst: Ipv4Addr) -> Ipv4Repr {
    Ipv4Repr {
        src_addr: IP_B,
        dst_addr: dst,
        protocol,
        payload_len: 0,
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_frag: true,
    }
}

fn arp_request(target: Ipv4Addr) -> Vec<u8> {
    emit(&Frame {
        ethernet: eth(EtherType::ARP, EthernetAddress::BROADCAST),
        network: Network::Arp(ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: MAC_B,
            source_protocol_addr: IP_B,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        }),
    })
}

fn echo_request(ident: u16, seq_no: u16, data: &[u8]) -> Vec<u8> {
    emit(&Frame {
        ethernet: eth(EtherType::IPV4, MAC_A),
        network: Network::Ipv4(
            ipv4(IpProtocol::ICMP, IP_A),
            Transport::Icmpv4(Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            }),
        ),
    })
}

fn udp_frame(dst_port: u16, payload: &[u8]) -> Vec<u8> {
    emit(&Frame {
        ethernet: eth(EtherType::IPV4, MAC_A),
        network: Network::Ipv4(
            ipv4(IpProtocol::UDP, IP_A),
            Transport::Udp(UdpRepr {
                src_port: 40000,
                dst_port,
                payload,
            }),
        ),
    })
}

/// The one frame sent: ICMP from A to B, back to B's MAC.
fn the_icmp_reply(frames: &[Vec<u8>]) -> Icmpv4Repr<'_> {
    assert_eq!(frames.len(), 1);
    let f = parse_frame(&frames[0], Checksums::Verify).unwrap();
    let Network::Ipv4(ip, Transport::Icmpv4(icmp)) = f.network else {
        panic!("not ICMP: {f:?}");
    };
    assert_eq!((ip.src_addr, ip.dst_addr), (IP_A, IP_B));
    assert_eq!(f.ethernet.dst_addr, MAC_B);
    icmp
}

#[test]
fn arp_requests_for_us_are_answered_and_ping_is_echoed() {
    let (mut a, mut raw) = raw_peer(config(MAC_A, IP_A));
    // A request for another address: not answered, nothing learned.
    inject(&mut raw, &arp_request(Ipv4Addr::new(198, 18, 0, 77)));
    a.poll(ms(0));
    assert!(take(&mut raw).is_empty());
    assert_eq!(a.neighbour(IP_B), None);
    inject(&mut raw, &arp_request(IP_A));
    a.poll(ms(0));
    let frames = take(&mut raw);
    assert_eq!(frames.len(), 1);
    let f = parse_frame(&frames[0], Checksums::Verify).unwrap();
    assert_eq!((f.ethernet.src_addr, f.ethernet.dst_addr), (MAC_A, MAC_B));
    assert_eq!(
        f.network,
        Network::Arp(ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: MAC_A,
            source_protocol_addr: IP_A,
            target_hardware_addr: MAC_B,
            target_protocol_addr: IP_B,
        })
    );
    assert_eq!(a.neighbour(IP_B), Some(MAC_B));

    // ping: three echo requests, three replies with the same ident, sequence
    // numbers and data.
    for seq in 1..=3u16 {
        let data = payload(56, usize::from(seq));
        inject(&mut raw, &echo_request(0x1234, seq, &data));
        a.poll(ms(u64::from(seq)));
        let frames = take(&mut raw);
        assert_eq!(
            the_icmp_reply(&frames),
            Icmpv4Repr::EchoReply {
                ident: 0x1234,
                seq_no: seq,
                data: &data
            }
        );
    }
    let c = a.counters();
    assert_eq!(c.icmp_echo_replied, 3);
    assert_eq!(a.poll_at(), None);
    assert_eq!((c.arp_requests_received, c.arp_replies_sent), (1, 1));
    assert_eq!(c.not_for_us, 1);
    assert_accounted(c);
}

#[test]
fn port_unreachable_quotes_the_datagram() {
    let (mut a, mut raw) = raw_peer(config(MAC_A, IP_A));
    let frame = udp_frame(9, b"hello, closed port");
    inject(&mut raw, &frame);
    a.poll(ms(0));
    let frames = take(&mut raw);
    assert_eq!(
        the_icmp_reply(&frames),
        Icmpv4Repr::DstUnreachable {
            code: unreachable::PORT,
            next_hop_mtu: 0,
            invoking: &frame[14..],
        }
    );
    // Never for a broadcast frame (RFC 1122 §3.2.2).
    let mut bcast = frame.clone();
    bcast[..6].fill(0xff);
    inject(&mut raw, &bcast);
    a.poll(ms(1000));
    assert!(take(&mut raw).is_empty());
    assert_eq!(a.counters().closed_port, 2);
    assert_eq!(a.counters().port_unreachable_sent, 1);
}

#[test]
fn arp_retries_then_gives_up_drops_the_waiting_datagrams_and_holds_down() {
    let (mut a, mut raw) = raw_peer(config(MAC_A, IP_A));
    let h = a.udp_bind(0).unwrap();
    let nobody = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 9), 5000);
    for i in 0..3u8 {
        a.send_to(h, nobody, &[i]).unwrap();
    }
    let mut requests = Vec::new();
    for t in [0, 50, 100, 150, 200, 250, 300] {
        a.poll(ms(t));
        for f in take(&mut raw) {
            let f = parse_frame(&f, Checksums::Verify).unwrap();
            let Network::Arp(arp) = f.network else {
                panic!("not ARP: {f:?}")
            };
            assert_eq!(f.ethernet.dst_addr, EthernetAddress::BROADCAST);
            assert_eq!(arp.operation, ArpOperation::Request);
            assert_eq!(arp.target_protocol_addr, *nobody.ip());
            requests.push(t);
        }
    }
    assert_eq!(requests, vec![0, 100, 200], "3 tries, 100 ms apart");
    let c = a.counters();
    assert_eq!((c.arp_requests_sent, c.arp_failed), (3, 3));
    assert_eq!(a.send_to(h, nobody, b"x"), Err(Error::HostUnreachable));
    // After the hold-down (1 s) a new resolution starts.
    a.poll(ms(1300));
    a.send_to(h, nobody, b"x").unwrap();
    a.poll(ms(1300));
    assert_eq!(take(&mut raw).len(), 1);
    // Off the subnet without a gateway: no route.
    assert_eq!(
        a.send_to(h, SocketAddrV4::new(Ipv4Addr::new(198, 19, 0, 1), 5), b""),
        Err(Error::NetworkUnreachable)
    );
    for bad in [
        SocketAddrV4::new(IP_B, 0),
        SocketAddrV4::new(Ipv4Addr::BROADCAST, 5),
        SocketAddrV4::new(IP_A, 5),
        SocketAddrV4::new(Ipv4Addr::new(224, 0, 0, 1), 5),
    ] {
        assert_eq!(a.send_to(h, bad, b""), Err(Error::InvalidInput));
    }
}

#[test]
fn the_queue_waiting_for_arp_is_bounded_and_released_in_order() {
    let mut cfg = config(MAC_A, IP_A);
    // a hop's share: half, 4
    cfg.arp_pending = 8;
    let (mut a, mut raw) = raw_peer(cfg);
    let h = a.udp_bind(0).unwrap();
    let peer = SocketAddrV4::new(IP_B, 5000);
    for i in 0..6u8 {
        let r = a.send_to(h, peer, &[i]);
        assert_eq!(r.is_ok(), i < 4, "{i}: {r:?}");
    }
    assert_eq!(a.counters().arp_pending_full, 2);
    a.poll(ms(0));
    assert_eq!(a.poll_at(), Some(ms(100)), "the first retry");
    assert_eq!(take(&mut raw).len(), 1, "one ARP request");
    // The reply releases the four, in order, then a fifth goes straight out.
    let reply = emit(&Frame {
        ethernet: eth(EtherType::ARP, MAC_A),
        network: Network::Arp(ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: MAC_B,
            source_protocol_addr: IP_B,
            target_hardware_addr: MAC_A,
            target_protocol_addr: IP_A,
        }),
    });
    inject(&mut raw, &reply);
    a.poll(ms(10));
    a.send_to(h, peer, &[4]).unwrap();
    a.poll(ms(10));
    let got: Vec<u8> = take(&mut raw)
        .iter()
        .map(|f| {
            let f = parse_frame(f, Checksums::Verify).unwrap();
            let Network::Ipv4(ip, Transport::Udp(u)) = f.network else {
                panic!("not UDP: {f:?}")
            };
            assert_eq!(f.ethernet.dst_addr, MAC_B);
            assert_eq!((ip.src_addr, ip.dst_addr, u.dst_port), (IP_A, IP_B, 5000));
            u.payload[0]
        })
        .collect();
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    assert_eq!(a.counters().arp_replies_received, 1);
}

#[test]
fn bind_close_and_stale_handles() {
    let mut cfg = config(MAC_A, IP_A);
    cfg.max_sockets = 3;
    let (mut a, _raw) = raw_peer(cfg);
    let h = a.udp_bind(ECHO_PORT).unwrap();
    assert_eq!(a.udp_bind(ECHO_PORT), Err(Error::AddrInUse));
    let e1 = a.udp_bind(0).unwrap();
    let e2 = a.udp_bind(0).unwrap();
    assert_eq!(
        (
            a.local_addr(e1).map(|a| a.port()),
            a.local_addr(e2).map(|a| a.port())
        ),
        (Ok(49152), Ok(49153))
    );
    assert_eq!(a.udp_bind(0), Err(Error::TooManySockets));
    assert_eq!(a.close(h), Ok(()));
    assert_eq!(a.close(h), Err(Error::BadHandle));
    let again = a.udp_bind(ECHO_PORT).unwrap();
    assert_ne!(again, h, "a closed handle stays stale");
    assert_eq!(
        a.send_to(h, SocketAddrV4::new(IP_B, 1), b""),
        Err(Error::BadHandle)
    );
    assert_eq!(a.recv_from(h, &mut [0; 4]), Err(Error::BadHandle));
    assert_eq!(a.local_addr(again).map(|a| a.port()), Ok(ECHO_PORT));
}

#[test]
fn a_configured_mtu_below_the_devices_limits_datagrams() {
    let mut cfg = config(MAC_A, IP_A);
    cfg.mtu = Some(576);
    let (mut a, _raw) = raw_peer(cfg);
    assert_eq!(a.max_payload(), 548);
    let h = a.udp_bind(0).unwrap();
    let peer = SocketAddrV4::new(IP_B, 5000);
    assert_eq!(a.send_to(h, peer, &[0; 549]), Err(Error::MessageTooLong));
    a.send_to(h, peer, &[0; 548]).unwrap();
    // Larger than the device's: the device's stands.
    let mut cfg = config(MAC_A, IP_A);
    cfg.mtu = Some(9000);
    assert_eq!(raw_peer(cfg).0.max_payload(), 1472);
}

/// Valid frames of each kind the stack handles, to mutate.
fn seeds() -> Vec<Vec<u8>> {
    vec![
        udp_frame(ECHO_PORT, b"to the open port"),
        udp_frame(9, b"to a closed port"),
        arp_request(IP_A),
        echo_request(1, 2, b"ping"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random bytes, and valid frames with random bytes changed or cut,
    /// never panic the stack; every frame ends in exactly one counter.
    #[test]
    fn garbage_is_counted_and_dropped(
        frames in proptest::collection::vec(
            (0usize..5, proptest::collection::vec(any::<u8>(), 1..120),
             proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4), any::<usize>()),
            1..40),
        trust in any::<bool>(),
    ) {
        let mut cfg = config(MAC_A, IP_A);
        cfg.udp_rx_queue = 8;
        if trust {
            cfg.checksums = Checksums::Trust;
        }
        let (mut a, mut raw) = raw_peer(cfg);
        let h = a.udp_bind(ECHO_PORT).unwrap();
        let seeds = seeds();
        let mut t = 0;
        for (kind, random, flips, cut) in &frames {
            let mut f = if *kind < seeds.len() { seeds[*kind].clone() } else { random.clone() };
            for (at, v) in flips {
                let i = at % f.len();
                f[i] ^= v | 1;
            }
            if *kind < seeds.len() && cut % 4 == 0 {
                f.truncate(1 + cut % f.len());
            }
            inject(&mut raw, &f);
            a.poll(ms(t));
            take(&mut raw);
            while a.recv_from(h, &mut [0; 64]).is_ok() {}
            t += 7;
        }
        let c = a.counters();
        prop_assert_eq!(c.rx_frames, frames.len() as u64);
        assert_accounted(c);
    }
}

#[test]
fn checksum_failures_are_counted_by_reason() {
    let (mut a, mut raw) = raw_peer(config(MAC_A, IP_A));
    let _h = a.udp_bind(ECHO_PORT).unwrap();
    let mut f = udp_frame(ECHO_PORT, b"payload");
    let last = f.len() - 1;
    f[last] ^= 0xff;
    inject(&mut raw, &f);
    inject(&mut raw, &[0u8; 9]);
    a.poll(ms(0));
    let c = a.counters();
    assert_eq!(c.parse.get(DropReason::BadChecksum), 1);
    assert_eq!(c.parse.get(DropReason::Truncated), 1);
    assert_eq!(c.rx_datagrams, 0);
}

#[test]
fn an_arp_reply_to_the_second_try_delivers_the_waiting_datagram() {
    let (mut a, mut raw) = raw_peer(config(MAC_A, IP_A));
    let h = a.udp_bind(0).unwrap();
    a.send_to(h, SocketAddrV4::new(IP_B, 5000), b"late")
        .unwrap();
    a.poll(ms(0));
    assert_eq!(take(&mut raw).len(), 1, "first request, unanswered");
    a.poll(ms(100));
    assert_eq!(take(&mut raw).len(), 1, "second request");
    // Side b answers with a request of its own for A: RFC 826 learns the
    // sender from it as from a reply.
    inject(&mut raw, &arp_request(IP_A));
    a.poll(ms(120));
    let frames = take(&mut raw);
    let kinds: Vec<_> = frames
        .iter()
        .map(
            |f| match parse_frame(f, Checksums::Verify).unwrap().network {
                Network::Arp(arp) => format!("arp {:?}", arp.operation),
                Network::Ipv4(_, Transport::Udp(u)) => {
                    format!("udp {}", String::from_utf8_lossy(u.payload))
                }
                other => format!("{other:?}"),
            },
        )
        .collect();
    assert_eq!(kinds, vec!["arp Reply", "udp late"]);
    assert!(!a.poll(ms(400)), "no more retries");
    let c = a.counters();
    assert_eq!((c.arp_requests_sent, c.arp_failed), (2, 0));
}

/// The lossy-link matrix: both directions lose, duplicate, reorder and
/// corrupt frames (seeded). Whatever arrives is intact, nothing panics,
/// every frame is accounted for, and ARP resolves through the losses.
#[test]
fn a_lossy_link_delivers_only_intact_datagrams() {
    use stack::phy::{FaultInjector, Faults};
    let faults = Faults {
        loss: 0.1,
        duplicate: 0.05,
        reorder: 0.05,
        corrupt: 0.05,
    };
    for seed in 1..=4u64 {
        let (da, db) = Loopback::pair(1500, 4096);
        let mut a = Interface::new(FaultInjector::new(da, faults, seed), config(MAC_A, IP_A));
        let mut b = Interface::new(
            FaultInjector::new(db, faults, seed + 100),
            config(MAC_B, IP_B),
        );
        let server = a.udp_bind(ECHO_PORT).unwrap();
        let client = b.udp_bind(0).unwrap();
        let to_a = SocketAddrV4::new(IP_A, ECHO_PORT);
        let mut buf = vec![0u8; 2048];
        let mut got = 0;
        for i in 0..500usize {
            let t = ms(i as u64 * 10);
            let p = payload(1 + i % 1472, i);
            match b.send_to(client, to_a, &p) {
                Ok(()) | Err(Error::NoBuffers) | Err(Error::HostUnreachable) => {}
                Err(e) => panic!("send {i}: {e}"),
            }
            for _ in 0..4 {
                a.poll(t);
                b.poll(t);
            }
            while let Ok((n, from)) = a.recv_from(server, &mut buf) {
                assert_eq!(from.ip(), &IP_B);
                let j = (0..=i)
                    .find(|&j| buf[..n] == payload(1 + j % 1472, j)[..])
                    .unwrap_or_else(|| panic!("seed {seed}: datagram of {n} bytes not sent"));
                assert!(j <= i);
                got += 1;
            }
        }
        let (ca, cb) = (a.counters(), b.counters());
        eprintln!(
            "seed {seed}: {got} of 500 arrived; bad checksums {}, ARP requests sent {}",
            ca.parse.get(DropReason::BadChecksum) + cb.parse.get(DropReason::BadChecksum),
            cb.arp_requests_sent
        );
        assert_accounted(ca);
        assert_accounted(cb);
        assert!(
            got > 300,
            "seed {seed}: only {got} of 500 arrived: {ca:?} {cb:?}"
        );
        assert!(
            ca.parse.get(DropReason::BadChecksum) + cb.parse.get(DropReason::BadChecksum) > 0,
            "corruption is caught by checksums"
        );
        assert_eq!(b.neighbour(IP_A), Some(MAC_A));
    }
}

#[test]
fn one_unresolved_hop_cannot_take_the_whole_arp_queue() {
    let mut cfg = config(MAC_A, IP_A);
    cfg.arp_pending = 16;
    let (mut a, _raw) = raw_peer(cfg);
    let h = a.udp_bind(0).unwrap();
    // a stranger's address (say, the source of segments we reset) fills
    // its share and no more
    let stranger = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 99), 5000);
    let took = (0..16u8)
        .filter(|i| a.send_to(h, stranger, &[*i]).is_ok())
        .count();
    assert_eq!(took, 8);
    // a peer being resolved at the same time still gets its share
    let peer = SocketAddrV4::new(IP_B, 5000);
    for i in 0..8u8 {
        assert!(a.send_to(h, peer, &[i]).is_ok(), "{i}");
    }
    assert_eq!(a.counters().arp_pending_full, 8);
}
