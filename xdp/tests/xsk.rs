//! AF_XDP in a throwaway lab: UDP datagrams that the kernel of namespace b
//! sends to the stack's port arrive on the XSK rx ring of namespace a intact,
//! and parse with the stack's parser, checksums verified; echoed through
//! the tx ring, they reach the kernel's socket intact.
mod common;

use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{in_ns, Lab, ADDR_A, ADDR_B};
use stack::frame::{parse_frame, Frame, Network, Transport};
use stack::phy::Device;
use stack::wire::{Checksums, TxChecksums};
use xdp::{
    BindMode, BusyPoll, Steer, SteerConfig, Steering, TxChecksum, UmemConfig, XdpMode, Xsk,
    XskConfig,
};

const STACK_PORT: u16 = 9999;

#[test]
fn udp_from_the_kernel_arrives_on_the_rx_ring_and_echoes_back() {
    let Some(lab) = Lab::new("udp_from_the_kernel_arrives_on_the_rx_ring_and_echoes_back") else {
        return;
    };
    common::tx_csum_off(&lab);
    let (steering, mut xsk, sender) = steered_socket(&lab, &XskConfig::default());
    assert!(
        !xsk.zero_copy(),
        "veth has no zero-copy AF_XDP: auto must fall back to copy"
    );
    let src_port = sender.local_addr().unwrap().port();
    let sizes = [1usize, 18, 100, 512, 1000, 1472];
    let payload = |n: usize, i: usize| -> Vec<u8> { (0..n).map(|j| (i * 31 + j) as u8).collect() };
    for (i, &n) in sizes.iter().enumerate() {
        sender
            .send_to(&payload(n, i), (ADDR_A, STACK_PORT))
            .expect("send");
    }

    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut replies: Vec<Vec<u8>> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < sizes.len() && Instant::now() < deadline {
        xsk.poll(100).expect("poll");
        xsk.receive(64, |frame| {
            let f = parse_frame(frame, Checksums::Verify).expect("a frame the stack parses");
            match f.network {
                Network::Ipv4(ip, Transport::Udp(udp)) => {
                    assert_eq!((ip.src_addr, ip.dst_addr), (ADDR_B, ADDR_A));
                    assert_eq!((udp.src_port, udp.dst_port), (src_port, STACK_PORT));
                    got.push(udp.payload.to_vec());
                    replies.push(echo(&f));
                }
                other => panic!("unexpected frame on the XSK: {other:?}"),
            }
        });
    }
    assert_eq!(got.len(), sizes.len(), "datagrams received on the XSK");
    for (i, (p, &n)) in got.iter().zip(&sizes).enumerate() {
        assert_eq!(p, &payload(n, i), "datagram {i} ({n} bytes) changed");
    }

    // Echo them back through the tx ring; the kernel of side b receives them.
    send_all(&mut xsk, &replies);
    sender
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 2048];
    for (i, &n) in sizes.iter().enumerate() {
        let (len, from) = sender.recv_from(&mut buf).expect("the echo reaches side b");
        assert_eq!(from, (ADDR_A, STACK_PORT).into());
        assert_eq!(
            &buf[..len],
            &payload(n, i)[..],
            "echo {i} ({n} bytes) changed"
        );
    }
    // While the socket takes the stack's port, the kernels of both sides
    // still talk TCP on their own addresses: only the stack's traffic is taken.
    let before = steering.counters().unwrap();
    common::tcp_echo(&lab, common::listen_a(&lab), 20);
    let after = steering.counters().unwrap();
    assert_eq!(
        after.steered, before.steered,
        "kernel TCP was steered: {after:?}"
    );
    assert!(after.passed >= before.passed + 20, "{after:?}");

    settle(&mut xsk, FREE_AT_REST);
    let c = steering.counters().unwrap();
    assert_eq!(c.steered, sizes.len() as u64, "{c:?}");
    assert_eq!(c.no_socket, 0, "{c:?}");
    let st = xsk.statistics().unwrap();
    assert_eq!(st.rx_dropped, 0, "{st:?}");
    assert_eq!(st.rx_invalid_descs, 0, "{st:?}");
    assert_eq!(st.tx_invalid_descs, 0, "{st:?}");
    // every frame is back: in the fill ring or idle (tx completed)
    assert_eq!(xsk.free_frames(), FREE_AT_REST);
}

/// In copy mode one kick sends at most 32 frames: a burst of 200 written
/// at once must still all leave with the one flush that follows (a flush
/// kicks again while frames wait in the tx ring).
#[test]
fn a_burst_larger_than_one_kick_leaves_with_one_flush() {
    let Some(lab) = Lab::new("a_burst_larger_than_one_kick_leaves_with_one_flush") else {
        return;
    };
    common::tx_csum_off(&lab);
    let (_steering, mut xsk, sender) = steered_socket(&lab, &XskConfig::default());
    sender
        .send_to(b"burst", (ADDR_A, STACK_PORT))
        .expect("send");
    let mut reply = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    while reply.is_none() && Instant::now() < deadline {
        xsk.poll(100).expect("poll");
        xsk.receive(64, |frame| {
            let f = parse_frame(frame, Checksums::Verify).expect("a frame the stack parses");
            reply = Some(echo(&f));
        });
    }
    let reply = reply.expect("the datagram reached the XSK");
    const BURST: usize = 200;
    for _ in 0..BURST {
        assert!(xsk.transmit(|buf| {
            buf[..reply.len()].copy_from_slice(&reply);
            reply.len()
        }));
    }
    xsk.flush();
    sender
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < BURST {
        match sender.recv_from(&mut buf) {
            Ok((n, _)) => {
                assert_eq!(&buf[..n], b"burst");
                got += 1;
            }
            Err(_) => break,
        }
    }
    assert_eq!(got, BURST, "frames of the burst that left with one flush");
}

/// Idle frames when nothing is in flight: all but the fill ring's.
const FREE_AT_REST: usize = 4096 - 2048;

/// Flushes until `at_rest` frames are idle again (transmissions completed)
/// or a bounded wait ran out.
fn settle(xsk: &mut Xsk, at_rest: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while xsk.free_frames() < at_rest && Instant::now() < deadline {
        xsk.flush();
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Writes each frame into the tx ring and flushes.
fn send_all(xsk: &mut Xsk, frames: &[Vec<u8>]) {
    for r in frames {
        assert!(xsk.transmit(|buf| {
            buf[..r.len()].copy_from_slice(r);
            r.len()
        }));
    }
    xsk.flush();
}

/// The reply to a UDP datagram: addresses and ports swapped, same payload.
fn echo(f: &Frame<'_>) -> Vec<u8> {
    echo_with(f, TxChecksums::Full)
}

/// [`echo`], its UDP checksum in full or left partial.
fn echo_with(f: &Frame<'_>, checksums: TxChecksums) -> Vec<u8> {
    let Network::Ipv4(ip, Transport::Udp(udp)) = f.network else {
        unreachable!("only UDP is echoed")
    };
    let mut ethernet = f.ethernet;
    std::mem::swap(&mut ethernet.src_addr, &mut ethernet.dst_addr);
    let mut ip = ip;
    std::mem::swap(&mut ip.src_addr, &mut ip.dst_addr);
    let mut udp = udp;
    std::mem::swap(&mut udp.src_port, &mut udp.dst_port);
    let reply = Frame {
        ethernet,
        network: Network::Ipv4(ip, Transport::Udp(udp)),
    };
    let mut out = vec![0u8; reply.buffer_len()];
    reply.emit_with(&mut out, checksums);
    out
}

#[test]
fn zero_copy_on_veth_is_refused_with_a_reason() {
    let Some(lab) = Lab::new("zero_copy_on_veth_is_refused_with_a_reason") else {
        return;
    };
    let config = XskConfig {
        bind: BindMode::ZeroCopy,
        ..XskConfig::default()
    };
    // The program must be attached natively for a zero-copy attempt to mean
    // anything; veth still has no zero-copy AF_XDP.
    let _s = attach_native(&lab);
    match in_ns(&lab.a, || Xsk::bind(lab.veth_a.as_str(), 0, &config)) {
        Ok(x) => assert!(
            x.zero_copy(),
            "ZeroCopy bind succeeded but reports copy mode"
        ),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("bind(AF_XDP)") && msg.contains(&lab.veth_a),
                "{msg}"
            );
        }
    }
}

/// The program attached natively on side a, for ADDR_A.
fn attach_native(lab: &Lab) -> Steering {
    in_ns(&lab.a, || {
        Steering::attach(
            lab.veth_a.as_str(),
            XdpMode::Native,
            &SteerConfig {
                addr: ADDR_A,
                aliases: None,
                multi_buffer: false,
                steer: Steer::OwnAddress,
            },
            false,
        )
    })
    .unwrap()
}

/// The lab with the program attached (native) and one socket on queue 0 in
/// the map, plus a kernel UDP socket on side b.
fn steered_socket(lab: &Lab, config: &XskConfig) -> (Steering, Xsk, UdpSocket) {
    let (s, mut xs, sender) = steered_queues(lab, XdpMode::Native, config, 1);
    (s, xs.pop().expect("one socket"), sender)
}

/// The lab with the program attached in `mode` and one socket per queue
/// (0..queues) in the map, plus a kernel UDP socket on side b. Shared
/// address: the kernel of side a keeps its address (and answers ARP for it);
/// only UDP/TCP to STACK_PORT goes to the sockets.
fn steered_queues(
    lab: &Lab,
    mode: XdpMode,
    config: &XskConfig,
    queues: u32,
) -> (Steering, Vec<Xsk>, UdpSocket) {
    let steer = SteerConfig {
        addr: ADDR_A,
        aliases: None,
        multi_buffer: false,
        steer: Steer::SharedAddress {
            ports: vec![STACK_PORT],
            ephemeral: None,
        },
    };
    let (s, xs) = in_ns(&lab.a, || {
        let s = Steering::attach(lab.veth_a.as_str(), mode, &steer, false).expect("attach");
        let xs: Vec<Xsk> = (0..queues)
            .map(|q| Xsk::bind(lab.veth_a.as_str(), q, config).expect("bind"))
            .collect();
        (s, xs)
    });
    for (q, x) in (0..).zip(&xs) {
        s.insert_socket(q, x.as_fd()).expect("XSKMAP insert");
    }
    let sender = in_ns(&lab.b, || UdpSocket::bind((ADDR_B, 0))).expect("bind on side b");
    (s, xs, sender)
}

/// Receives through the stack's `Device` interface until `want` frames came
/// or a bounded wait ran out; returns how many came.
fn drain<D: Device>(dev: &mut D, xsk_poll: impl Fn(&mut D), want: usize) -> usize {
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while got < want && Instant::now() < deadline {
        xsk_poll(dev);
        got += dev.receive(64, |_| {});
    }
    got
}

#[test]
fn starved_fill_ring_is_counted_and_the_socket_recovers() {
    let Some(lab) = Lab::new("starved_fill_ring_is_counted_and_the_socket_recovers") else {
        return;
    };
    // 32 frames for receiving, nobody receiving: the 33rd datagram finds
    // the fill ring empty.
    let config = XskConfig {
        umem: UmemConfig {
            frame_size: 2048,
            frame_count: 64,
            fill_size: 32,
            comp_size: 32,
        },
        rx_size: 64,
        tx_size: 32,
        ..XskConfig::default()
    };
    let (steering, mut xsk, sender) = steered_socket(&lab, &config);
    for i in 0..100u32 {
        sender
            .send_to(&i.to_be_bytes(), (ADDR_A, STACK_PORT))
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut st = xsk.statistics().unwrap();
    while st.fill_ring_empty == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        st = xsk.statistics().unwrap();
    }
    eprintln!("after 100 datagrams to 32 frames: {st:?}");
    assert!(st.fill_ring_empty > 0, "starvation not counted: {st:?}");
    assert!(st.rx_dropped > 0, "{st:?}");

    // What did arrive is there; receiving refills the ring, and new traffic
    // flows again on the same socket.
    let poll = |x: &mut Xsk| {
        x.poll(50).unwrap();
    };
    assert_eq!(drain(&mut xsk, poll, 32), 32);
    for i in 0..10u32 {
        sender
            .send_to(&i.to_be_bytes(), (ADDR_A, STACK_PORT))
            .unwrap();
    }
    assert_eq!(drain(&mut xsk, poll, 10), 10, "{:?}", xsk.statistics());
    assert_eq!(steering.counters().unwrap().steered, 110);
    assert!(xsk.caps().mtu >= 1500, "{:?}", xsk.caps());
}

#[test]
fn busy_poll_socket_receives_when_driven_by_its_own_calls() {
    let Some(lab) = Lab::new("busy_poll_socket_receives_when_driven_by_its_own_calls") else {
        return;
    };
    let config = XskConfig {
        busy_poll: Some(BusyPoll::default()),
        ..XskConfig::default()
    };
    let (_steering, mut xsk, sender) = steered_socket(&lab, &config);
    assert_eq!(xsk.busy_poll(), Some(BusyPoll::default()));
    for i in 0..50u32 {
        sender
            .send_to(&i.to_be_bytes(), (ADDR_A, STACK_PORT))
            .unwrap();
    }
    // No poll(): each receive makes the busy-polling syscall itself.
    let idle = |_: &mut Xsk| std::thread::sleep(Duration::from_millis(1));
    assert_eq!(drain(&mut xsk, idle, 50), 50, "{:?}", xsk.statistics());
}

#[test]
fn generic_mode_sockets_receive_in_copy_mode() {
    let Some(lab) = Lab::new("generic_mode_sockets_receive_in_copy_mode") else {
        return;
    };
    let (s, mut xs, sender) = steered_queues(&lab, XdpMode::Generic, &XskConfig::default(), 1);
    assert_eq!(s.mode(), Some(xdp::AttachedMode::Generic));
    let xsk = &mut xs[0];
    assert!(!xsk.zero_copy());
    for i in 0..20u32 {
        sender
            .send_to(&i.to_be_bytes(), (ADDR_A, STACK_PORT))
            .unwrap();
    }
    let poll = |x: &mut Xsk| {
        x.poll(50).unwrap();
    };
    assert_eq!(drain(xsk, poll, 20), 20, "{:?}", xsk.statistics());
    assert_eq!(s.counters().unwrap().steered, 20);
}

#[test]
fn one_socket_per_queue_receives_every_flow() {
    const QUEUES: u32 = 2;
    const FLOWS: u32 = 16;
    const PER_FLOW: u32 = 10;
    let Some(lab) = Lab::with_queues("one_socket_per_queue_receives_every_flow", QUEUES) else {
        return;
    };
    let (s, mut xs, _) = steered_queues(&lab, XdpMode::Native, &XskConfig::default(), QUEUES);
    // Flows from different source ports: side b's veth spreads them over its
    // tx queues by flow hash, and veth delivers tx queue q to rx queue q.
    let senders: Vec<UdpSocket> = (0..FLOWS)
        .map(|_| in_ns(&lab.b, || UdpSocket::bind((ADDR_B, 0))).expect("bind on side b"))
        .collect();
    for round in 0..PER_FLOW {
        for u in &senders {
            u.send_to(&round.to_be_bytes(), (ADDR_A, STACK_PORT))
                .unwrap();
        }
    }
    let want = (FLOWS * PER_FLOW) as usize;
    let mut per_queue = vec![0usize; xs.len()];
    let deadline = Instant::now() + Duration::from_secs(5);
    while per_queue.iter().sum::<usize>() < want && Instant::now() < deadline {
        for (q, x) in xs.iter_mut().enumerate() {
            x.poll(10).unwrap();
            per_queue[q] += x.receive(64, |_| {});
        }
    }
    eprintln!("frames per queue: {per_queue:?}");
    assert_eq!(
        per_queue.iter().sum::<usize>(),
        want,
        "per queue: {per_queue:?}"
    );
    let c = s.counters().unwrap();
    assert_eq!((c.steered, c.no_socket), (want as u64, 0), "{c:?}");
}

/// The socket's device reports the interface's MTU (a frame above it is
/// dropped by the driver without a trace), not what a UMEM frame could hold.
#[test]
fn the_device_mtu_is_the_interface_mtu() {
    let Some(lab) = Lab::new("the_device_mtu_is_the_interface_mtu") else {
        return;
    };
    let _s = attach_native(&lab);
    // 1400: below both veth's default and what a 2048-byte frame holds.
    common::ip(&[
        "-n",
        &lab.a,
        "link",
        "set",
        "dev",
        &lab.veth_a,
        "mtu",
        "1400",
    ])
    .unwrap();
    let config = XskConfig::default();
    let x = in_ns(&lab.a, || Xsk::bind(lab.veth_a.as_str(), 0, &config)).unwrap();
    assert_eq!(x.if_mtu(), 1400);
    assert_eq!(x.caps().mtu, 1400, "frame size {}", x.frame_size());
}

/// Jumbo frames (MTU 9000 on both veth ends) with multi-buffer AF_XDP: the
/// program is loaded frags-aware (veth refuses the MTU otherwise), a
/// datagram larger than a 4 KiB UMEM frame arrives in several buffers and
/// reaches the caller joined, intact and with valid checksums, and the echo
/// of a full 9000-byte frame leaves as several descriptors and reaches the
/// kernel's socket intact.
#[test]
fn jumbo_frames_arrive_joined_and_leave_in_several_buffers() {
    let Some(lab) = Lab::new("jumbo_frames_arrive_joined_and_leave_in_several_buffers") else {
        return;
    };
    common::tx_csum_off(&lab);
    for (ns, dev) in [(&lab.a, &lab.veth_a), (&lab.b, &lab.veth_b)] {
        common::ip(&["-n", ns, "link", "set", "dev", dev, "mtu", "9000"]).unwrap();
    }
    let config = XskConfig::default().for_mtu(9000);
    assert!(config.multi_buffer, "9000 bytes do not fit a 4 KiB frame");
    let steer = SteerConfig {
        addr: ADDR_A,
        aliases: None,
        multi_buffer: true,
        steer: Steer::SharedAddress {
            ports: vec![STACK_PORT],
            ephemeral: None,
        },
    };
    let (_s, mut xsk) = in_ns(&lab.a, || {
        let s = Steering::attach(lab.veth_a.as_str(), XdpMode::Native, &steer, false)
            .expect("a frags-aware program attaches at MTU 9000");
        let x = Xsk::bind(lab.veth_a.as_str(), 0, &config).expect("multi-buffer bind");
        s.insert_socket(0, x.as_fd()).expect("XSKMAP insert");
        (s, x)
    });
    assert!(xsk.multi_buffer());
    assert_eq!(xsk.caps().mtu, 9000);
    let sender = in_ns(&lab.b, || UdpSocket::bind((ADDR_B, 0))).expect("bind on side b");
    // one buffer, one just over a buffer, a full 9000-byte IP packet
    let sizes = [100usize, 4000, 8972];
    let payload = |n: usize, i: usize| -> Vec<u8> { (0..n).map(|j| (i * 7 + j) as u8).collect() };
    for (i, &n) in sizes.iter().enumerate() {
        sender
            .send_to(&payload(n, i), (ADDR_A, STACK_PORT))
            .expect("send");
    }
    let (mut got, mut replies) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < sizes.len() && Instant::now() < deadline {
        xsk.poll(100).expect("poll");
        xsk.receive(64, |frame| {
            let f = parse_frame(frame, Checksums::Verify).expect("a joined frame parses");
            let Network::Ipv4(_, Transport::Udp(udp)) = f.network else {
                panic!("unexpected frame: {:?}", f.network)
            };
            got.push(udp.payload.to_vec());
            replies.push(echo(&f));
        });
    }
    assert_eq!(got.len(), sizes.len(), "datagrams received");
    for (i, (p, &n)) in got.iter().zip(&sizes).enumerate() {
        assert_eq!(p, &payload(n, i), "datagram {i} ({n} bytes) changed");
    }
    let j = xsk.join_stats();
    assert_eq!((j.joined, j.dropped), (2, 0), "{j:?}");
    assert_eq!(replies[2].len(), 9014, "a full jumbo frame");
    send_all(&mut xsk, &replies);
    sender
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = vec![0u8; 9000];
    for (i, &n) in sizes.iter().enumerate() {
        let (len, _) = sender.recv_from(&mut buf).expect("the echo reaches side b");
        assert_eq!(
            &buf[..len],
            &payload(n, i)[..],
            "echo {i} ({n} bytes) changed"
        );
    }
    let st = xsk.statistics().unwrap();
    assert_eq!((st.rx_dropped, st.tx_invalid_descs), (0, 0), "{st:?}");
    // every transmit slot comes back
    let at_rest = (4096 - 2048) / 3 * 3;
    settle(&mut xsk, at_rest);
    assert_eq!(xsk.free_frames(), at_rest);
}

/// TX checksum offload through TX metadata, in copy mode: with veth_a's own
/// checksum offload off, the kernel must complete a partial UDP checksum in
/// software before the frame leaves; the kernel socket on side b, which
/// verifies every checksum, gets the echo. The same partial frame sent by a
/// socket without the metadata is dropped there as a bad checksum.
#[test]
fn a_partial_checksum_is_completed_through_tx_metadata() {
    let Some(lab) = Lab::new("a_partial_checksum_is_completed_through_tx_metadata") else {
        return;
    };
    common::tx_csum_off(&lab);
    let off = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.a,
            "ethtool",
            "-K",
            &lab.veth_a,
            "tx",
            "off",
        ])
        .status()
        .expect("ethtool");
    assert!(off.success());
    let config = XskConfig {
        tx_checksum: TxChecksum::Kernel,
        ..XskConfig::default()
    };
    let (steering, mut xsk, sender) = steered_socket(&lab, &config);
    assert!(
        xsk.tx_checksum_offload(),
        "copy mode on 6.8+ takes TX metadata"
    );
    assert!(xsk.caps().checksum_offload);
    sender
        .send_to(b"complete me", (ADDR_A, STACK_PORT))
        .unwrap();
    let mut reply = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while reply.is_empty() && Instant::now() < deadline {
        xsk.poll(100).expect("poll");
        xsk.receive(64, |frame| {
            let f = parse_frame(frame, Checksums::Verify).expect("a frame");
            reply = echo_with(&f, TxChecksums::Partial);
        });
    }
    assert!(!reply.is_empty(), "the datagram reached the socket");
    send_all(&mut xsk, std::slice::from_ref(&reply));
    sender
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = sender
        .recv_from(&mut buf)
        .expect("the completed echo arrives");
    assert_eq!(&buf[..n], b"complete me");

    // without the metadata the partial checksum stays wrong on the wire
    drop(xsk);
    let mut plain = bind_again(&lab, &XskConfig::default());
    steering.insert_socket(0, plain.as_fd()).unwrap();
    assert!(!plain.tx_checksum_offload());
    send_all(&mut plain, std::slice::from_ref(&reply));
    sender
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    assert!(
        sender.recv_from(&mut buf).is_err(),
        "a partial checksum without TX metadata must not pass the kernel's check"
    );
    // veth offers no xsk tx-checksum: asked only where offered, none
    drop(plain);
    let offered = XskConfig {
        tx_checksum: TxChecksum::Offered,
        ..XskConfig::default()
    };
    let x = bind_again(&lab, &offered);
    assert!(!x.tx_checksum_offload() && !x.caps().checksum_offload);
}

/// Binds queue 0 of side a again, waiting for the kernel to release the
/// queue of a socket just closed (it does so a little later).
fn bind_again(lab: &Lab, config: &XskConfig) -> Xsk {
    let deadline = Instant::now() + Duration::from_secs(3);
    in_ns(&lab.a, || loop {
        match Xsk::bind(lab.veth_a.as_str(), 0, config) {
            Ok(x) => break x,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("bind: {e}"),
        }
    })
}
