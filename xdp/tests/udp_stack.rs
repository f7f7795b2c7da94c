//! The stack's interface (UDP, ARP and ICMP) over an AF_XDP socket, in a throwaway lab:
//! the stack has its own address (198.18.0.3) on side a's veth, and the
//! steering program takes only the frames for it (own-address mode); the
//! kernel of side b resolves it with ARP, exchanges 10,000 datagrams of mixed
//! sizes with its echo server and pings it, while the kernels of both sides
//! keep talking TCP on their own addresses.
mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{in_ns, Lab, ADDR_B};
use stack::wire::EthernetAddress;
use stack::{Error, Interface, InterfaceConfig};
use xdp::{Steering, Xsk};

/// The stack's own address, beside the kernel's 198.18.0.1 on the same veth.
const STACK_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
const ECHO_PORT: u16 = 7777;
const DATAGRAMS: usize = 10_000;
/// Datagrams in flight at most (the kernel socket's buffers stay far from full).
const WINDOW: usize = 16;
/// Bound on the whole exchange.
const RUN_LIMIT: Duration = Duration::from_secs(120);

fn size_of(i: usize) -> usize {
    (i * 7919) % 1472 + 1
}

fn payload(i: usize) -> Vec<u8> {
    let n = size_of(i);
    let mut p: Vec<u8> = (0..n).map(|j| (i * 31 + j * 7) as u8).collect();
    let tag = (i as u32).to_be_bytes();
    let k = n.min(4);
    p[..k].copy_from_slice(&tag[..k]);
    p
}

/// The stack's clock: microseconds since `origin`.
fn now(origin: Instant) -> stack::time::Instant {
    stack::time::Instant::from_micros(origin.elapsed().as_micros() as u64)
}

/// Runs the stack's echo server until `stop` (bounded by RUN_LIMIT): every
/// datagram goes back to its sender, as it came.
fn echo_server(mut st: Interface<Xsk>, stop: Arc<AtomicBool>) -> Interface<Xsk> {
    let h = st.udp_bind(ECHO_PORT).expect("bind the echo port");
    let origin = Instant::now();
    let mut buf = vec![0u8; 2048];
    while !stop.load(Ordering::Relaxed) && origin.elapsed() < RUN_LIMIT {
        if !st.poll(now(origin)) {
            st.device_mut().poll(1).expect("poll(2) on the XSK");
        }
        while let Ok((n, from)) = st.recv_from(h, &mut buf) {
            let mut tries = 0;
            loop {
                match st.send_to(h, from, &buf[..n]) {
                    Ok(()) => break,
                    Err(Error::WouldBlock) if tries < 1000 => {
                        tries += 1;
                        st.poll(now(origin));
                    }
                    Err(e) => panic!("echo to {from}: {e}"),
                }
            }
        }
    }
    st
}

/// The program attached natively to side a's veth in own-address mode for
/// STACK_ADDR, an XSK on queue 0 in its map, and a stack on that socket
/// with side a's MAC. Side b's kernel sends full checksums (tx offload
/// off), so the stack verifies them.
fn stack_on_a(lab: &Lab) -> (Steering, Interface<Xsk>) {
    common::tx_csum_off(lab);
    let mac = EthernetAddress(common::mac_of(&lab.a, &lab.veth_a));
    let (steering, xsk) = common::own_address_socket(lab, STACK_ADDR);
    let mut cfg = InterfaceConfig::new(mac, STACK_ADDR, 24, [1, 2, 3, 4], [5, 6, 7, 8]);
    cfg.mtu = Some(1500); // the veth's
    let st = Interface::new(xsk, cfg);
    assert_eq!(st.max_payload(), 1472);
    (steering, st)
}

/// The kernel client's side: 10,000 datagrams of mixed sizes, at most
/// WINDOW in flight; each must come back intact and in order. Returns how
/// long it took, or what went wrong.
fn exchange(client: &UdpSocket, to: SocketAddr) -> Result<Duration, String> {
    let started = Instant::now();
    let (mut sent, mut back) = (0usize, 0usize);
    let mut buf = vec![0u8; 2048];
    while back < DATAGRAMS {
        if started.elapsed() > RUN_LIMIT {
            return Err(format!("{back} echoes in {RUN_LIMIT:?}"));
        }
        while sent < DATAGRAMS && sent - back < WINDOW {
            client.send_to(&payload(sent), to).expect("send");
            sent += 1;
        }
        let (n, from) = client
            .recv_from(&mut buf)
            .map_err(|e| format!("echo {back} of {DATAGRAMS} ({sent} sent): {e}"))?;
        if from != to || buf[..n] != payload(back)[..] {
            let tag = buf
                .get(..4)
                .map(|t| u32::from_be_bytes([t[0], t[1], t[2], t[3]]));
            return Err(format!(
                "echo {back} ({} bytes) from {from}: got {n} bytes tagged {tag:?}",
                size_of(back)
            ));
        }
        back += 1;
    }
    Ok(started.elapsed())
}

#[test]
fn kernel_udp_client_echoes_through_the_stack_ping_answers_and_kernel_tcp_flows() {
    let Some(lab) =
        Lab::new("kernel_udp_client_echoes_through_the_stack_ping_answers_and_kernel_tcp_flows")
    else {
        return;
    };
    let (steering, st) = stack_on_a(&lab);
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || echo_server(st, stop))
    };

    // The kernel client: 10,000 datagrams of mixed sizes, at most WINDOW in
    // flight; each comes back intact and in order.
    let client = in_ns(&lab.b, || UdpSocket::bind((ADDR_B, 0))).expect("bind on side b");
    client
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let to = SocketAddr::from((STACK_ADDR, ECHO_PORT));
    // One datagram first, echoed before the rest go: it makes side b's
    // kernel resolve the stack's address. Without it the kernel itself
    // reorders: datagrams sent while the ARP reply is being processed can
    // leave before those it queued waiting for it (seen here: 10, 0, 1, ...).
    client.send_to(b"resolve", to).expect("send");
    let mut buf = [0u8; 16];
    let (n, _) = client.recv_from(&mut buf).expect("the first echo");
    assert_eq!(&buf[..n], b"resolve");
    let elapsed = match exchange(&client, to) {
        Ok(d) => d,
        Err(e) => {
            stop.store(true, Ordering::Relaxed);
            let st = server.join().expect("the stack's thread");
            panic!(
                "{e}; stack counters: {:?}; xsk: {:?}; steering: {:?}",
                st.counters(),
                st.device().statistics(),
                steering.counters()
            );
        }
    };

    // A closed port answers with ICMP port unreachable: the kernel's
    // connected socket sees ECONNREFUSED.
    let refused = in_ns(&lab.b, || UdpSocket::bind((ADDR_B, 0))).expect("bind on side b");
    refused.connect((STACK_ADDR, 9)).expect("connect");
    refused
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    refused.send(b"anyone?").expect("send");
    let e = refused
        .recv(&mut buf)
        .expect_err("nothing listens on port 9");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");

    // ping answers (iputils-ping, installed by scripts/setup.sh).
    let ping = Command::new("ip")
        .args([
            "netns", "exec", &lab.b, "ping", "-c", "3", "-i", "0.2", "-W", "2",
        ])
        .arg(STACK_ADDR.to_string())
        .output();
    let pinged = match ping {
        Ok(out) if String::from_utf8_lossy(&out.stderr).contains("No such file") => {
            eprintln!("ping not installed: the ping check is skipped");
            false
        }
        Ok(out) => {
            assert!(
                out.status.success(),
                "ping {STACK_ADDR}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            true
        }
        Err(e) => panic!("run ip netns exec: {e}"),
    };

    // The kernels keep talking TCP on their own addresses, untouched.
    let before = steering.counters().unwrap();
    common::tcp_echo(&lab, common::listen_a(&lab), 20);
    let after = steering.counters().unwrap();
    assert!(after.passed >= before.passed + 20, "{after:?}");

    stop.store(true, Ordering::Relaxed);
    let st = server.join().expect("the stack's thread");
    let c = st.counters();
    eprintln!(
        "{DATAGRAMS} echoes in {elapsed:?}; stack counters: {c:?}; xsk: {:?}; steering: {:?}",
        st.device().statistics(),
        steering.counters()
    );
    assert_eq!(c.rx_datagrams, DATAGRAMS as u64 + 1, "{c:?}");
    assert_eq!(c.tx_datagrams, DATAGRAMS as u64 + 1, "{c:?}");
    assert_eq!(c.parse.dropped(), 0, "{c:?}");
    assert!(
        c.arp_requests_received >= 1 && c.arp_replies_sent >= 1,
        "{c:?}"
    );
    if pinged {
        assert!(c.icmp_echo_replied >= 3, "{c:?}");
    }
    assert_eq!(c.socket_queue_full, 0, "{c:?}");
    assert_eq!((c.closed_port, c.port_unreachable_sent), (1, 1), "{c:?}");
    let x = st.device().statistics().unwrap();
    assert_eq!((x.rx_dropped, x.tx_invalid_descs), (0, 0), "{x:?}");
    let s = steering.counters().unwrap();
    assert_eq!(s.no_socket, 0, "{s:?}");
}

#[test]
fn the_stack_resolves_a_kernel_peer_and_exchanges_with_its_udp_server() {
    const ROUNDS: usize = 1000;
    let Some(lab) = Lab::new("the_stack_resolves_a_kernel_peer_and_exchanges_with_its_udp_server")
    else {
        return;
    };
    let (_steering, mut st) = stack_on_a(&lab);
    // A kernel echo server on side b's own address.
    let server = in_ns(&lab.b, || UdpSocket::bind((ADDR_B, 0))).expect("bind on side b");
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let server_addr = match server.local_addr().unwrap() {
        SocketAddr::V4(a) => a,
        other => panic!("{other}"),
    };
    let echo = thread::spawn(move || {
        let mut buf = vec![0u8; 2048];
        for _ in 0..ROUNDS {
            let (n, from) = server.recv_from(&mut buf).expect("kernel server recv");
            server.send_to(&buf[..n], from).expect("kernel server send");
        }
    });
    let h = st.udp_bind(0).unwrap();
    let origin = Instant::now();
    let mut buf = vec![0u8; 2048];
    for i in 0..ROUNDS {
        let p = payload(i);
        st.poll(now(origin));
        st.send_to(h, server_addr, &p)
            .unwrap_or_else(|e| panic!("send {i}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(5);
        let got = loop {
            if !st.poll(now(origin)) {
                st.device_mut().poll(1).expect("poll(2) on the XSK");
            }
            if let Ok((n, from)) = st.recv_from(h, &mut buf) {
                assert_eq!(from, server_addr);
                break n;
            }
            assert!(
                Instant::now() < deadline,
                "no reply to {i}: {:?}",
                st.counters()
            );
        };
        assert_eq!(&buf[..got], &p[..], "reply {i} changed");
    }
    echo.join().expect("kernel echo server");
    let c = st.counters();
    eprintln!("{ROUNDS} round trips in {:?}: {c:?}", origin.elapsed());
    // The stack asked for side b's MAC, and side b's kernel answered.
    assert!(
        c.arp_requests_sent >= 1 && c.arp_replies_received >= 1,
        "{c:?}"
    );
    assert!(st.neighbour(ADDR_B).is_some());
    assert_eq!(
        (c.rx_datagrams, c.tx_datagrams),
        (ROUNDS as u64, ROUNDS as u64)
    );
    assert_eq!(c.parse.dropped(), 0, "{c:?}");
}
