//! TCP between two interfaces on the in-memory link, under a deterministic
//! clock.

mod common;

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use common::*;
use stack::phy::Faults;
use stack::tcp::{State, TcpConfig};
use stack::time::Instant;
use stack::{Error, Readiness, Shutdown, SocketHandle};

/// A listener on B:80 and a connection from A to it, handshake done;
/// returns (client on A, listener on B, accepted on B).
fn connected(net: &mut Net) -> (SocketHandle, SocketHandle, SocketHandle) {
    let l = listener(&mut net.b, B_IP, 80, 16);
    let c = net.a.socket().unwrap();
    net.a.connect(c, sa(B_IP, 80)).unwrap();
    assert_eq!(net.a.state(c), Ok(State::SynSent));
    let mut accepted = None;
    assert!(net.run_until(Duration::from_secs(1), |n| {
        if accepted.is_none() {
            accepted = n.b.accept(l).ok();
        }
        accepted.is_some() && n.a.state(c) == Ok(State::Established)
    }));
    let (s, peer) = accepted.unwrap();
    assert_eq!(peer, net.a.local_addr(c).unwrap());
    (c, l, s)
}

/// `n` connects from A to B:80, started at once.
fn connect_many(net: &mut Net, n: usize) -> Vec<SocketHandle> {
    (0..n)
        .map(|_| {
            let c = net.a.socket().unwrap();
            net.a.connect(c, sa(B_IP, 80)).unwrap();
            c
        })
        .collect()
}

/// Move `ab` from x on A to y on B and `ba` back, reading as it comes;
/// returns what each side read.
fn exchange(
    net: &mut Net,
    x: SocketHandle,
    y: SocketHandle,
    ab: &[u8],
    ba: &[u8],
    limit: Duration,
) -> (Vec<u8>, Vec<u8>) {
    let (mut sent_ab, mut sent_ba) = (0, 0);
    let (mut got_b, mut got_a) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 16 * 1024];
    let ok = net.run_until(limit, |n| {
        if sent_ab < ab.len() {
            sent_ab += n.a.send(x, &ab[sent_ab..]).unwrap_or(0);
        }
        if sent_ba < ba.len() {
            sent_ba += n.b.send(y, &ba[sent_ba..]).unwrap_or(0);
        }
        while let Ok(k) = n.b.recv(y, &mut buf) {
            if k == 0 {
                break;
            }
            got_b.extend_from_slice(&buf[..k]);
        }
        while let Ok(k) = n.a.recv(x, &mut buf) {
            if k == 0 {
                break;
            }
            got_a.extend_from_slice(&buf[..k]);
        }
        got_b.len() == ab.len() && got_a.len() == ba.len()
    });
    assert!(
        ok,
        "transfer unfinished at {}: {} of {} and {} of {}",
        net.now,
        got_b.len(),
        ab.len(),
        got_a.len(),
        ba.len()
    );
    (got_b, got_a)
}

#[test]
fn handshake_negotiates_options_and_reports_events() {
    let mut net = Net::new(TcpConfig::default());
    let (c, l, s) = connected(&mut net);
    let t = net.a.tcb(c).unwrap();
    // MSS 1460 less the 12 bytes of timestamps in every segment.
    assert_eq!(t.mss(), 1448);
    assert_eq!(t.negotiated(), (true, true, Some((1, 1))));
    assert_eq!(net.b.state(s), Ok(State::Established));
    assert_eq!(net.b.state(l), Ok(State::Listen));
    let ev = net.a.next_event().unwrap();
    assert_eq!(ev.handle, c);
    assert!(ev
        .readiness
        .contains(Readiness::CONNECTED | Readiness::WRITABLE));
    let ev = net.b.next_event().unwrap();
    // Reported when the handshake completed; read at the time it is taken
    // (the connection was accepted since).
    assert_eq!(ev.handle, l);
    assert_eq!(ev.readiness, Readiness::NONE);
    assert_eq!(net.a.recv(c, &mut [0; 8]), Err(Error::WouldBlock));
    assert_eq!(net.b.accept(l), Err(Error::WouldBlock));
}

#[test]
fn options_off_are_not_used() {
    let tcp = TcpConfig {
        window_scaling: false,
        timestamps: false,
        sack_permitted: false,
        ..TcpConfig::default()
    };
    let mut net = Net::new(tcp);
    let (c, _, _) = connected(&mut net);
    let t = net.a.tcb(c).unwrap();
    assert_eq!(t.mss(), 1460);
    assert_eq!(t.negotiated(), (false, false, None));
}

#[test]
fn data_both_ways_byte_exact() {
    let mut net = Net::new(TcpConfig::default());
    let (c, _, s) = connected(&mut net);
    let ab = pattern(300_000, 1);
    let ba = pattern(200_000, 2);
    let (got_b, got_a) = exchange(&mut net, c, s, &ab, &ba, Duration::from_secs(5));
    assert!(got_b == ab && got_a == ba);
    assert_eq!(net.a.tcp_stats().retransmits, 0);
    assert_eq!(net.b.tcp_stats().retransmits, 0);
}

fn short_time_wait() -> TcpConfig {
    TcpConfig {
        time_wait: Duration::from_secs(2),
        ..TcpConfig::default()
    }
}

/// Run until both handles reach the given states.
fn until_states(net: &mut Net, x: SocketHandle, sx: State, y: SocketHandle, sy: State) {
    let ok = net.run_until(Duration::from_secs(5), |n| {
        n.a.state(x) == Ok(sx) && n.b.state(y) == Ok(sy)
    });
    assert!(
        ok,
        "wanted {sx} / {sy}, have {:?} / {:?}",
        net.a.state(x),
        net.b.state(y)
    );
}

fn drain(net: &mut Net, x: SocketHandle, y: SocketHandle) -> (usize, usize) {
    let mut buf = [0u8; 64];
    (
        net.a.recv(x, &mut buf).unwrap(),
        net.b.recv(y, &mut buf).unwrap(),
    )
}

#[test]
fn active_close_goes_through_time_wait_for_2msl() {
    let mut net = Net::new(short_time_wait());
    let (c, _, s) = connected(&mut net);
    net.a.send(c, b"last words").unwrap();
    net.a.shutdown(c, Shutdown::Write).unwrap();
    assert_eq!(net.a.state(c), Ok(State::FinWait1));
    assert_eq!(net.a.send(c, b"x"), Err(Error::BrokenPipe));
    until_states(&mut net, c, State::FinWait2, s, State::CloseWait);
    let mut buf = [0u8; 64];
    assert_eq!(net.b.recv(s, &mut buf), Ok(10));
    assert_eq!(
        net.b.recv(s, &mut buf),
        Ok(0),
        "end of stream after the data"
    );
    // Half-close: B still sends, A still reads.
    net.b.send(s, b"reply").unwrap();
    net.b.close(s).unwrap();
    assert!(net.run_until(Duration::from_secs(1), |n| n.a.state(c)
        == Ok(State::TimeWait)));
    assert_eq!(net.a.recv(c, &mut buf), Ok(5));
    assert_eq!(net.a.recv(c, &mut buf), Ok(0));
    let entered = net.now;
    // B's side is gone once its FIN is acknowledged.
    assert!(net.run_until(Duration::from_secs(1), |n| n.b.sockets_in_use() == 1));
    // TIME-WAIT lasts 2 s here, not less.
    net.a.close(c).unwrap();
    assert!(net.run_until(Duration::from_secs(5), |n| n.a.sockets_in_use() == 0));
    let lasted = net.now - entered;
    assert!(
        lasted >= Duration::from_secs(2) && lasted < Duration::from_millis(2100),
        "{lasted:?}"
    );
}

#[test]
fn passive_close_order() {
    let mut net = Net::new(short_time_wait());
    let (c, _, s) = connected(&mut net);
    // B closes first this time; A sees the end, then closes.
    net.b.close(s).unwrap();
    assert!(net.run_until(Duration::from_secs(1), |n| n.a.state(c)
        == Ok(State::CloseWait)));
    assert_eq!(net.a.recv(c, &mut [0; 8]), Ok(0));
    assert!(net.a.readiness(c).unwrap().contains(Readiness::READABLE));
    net.a.close(c).unwrap();
    assert!(net.run_until(Duration::from_secs(1), |n| n.a.sockets_in_use() == 0));
    // B, the active closer, holds the TIME-WAIT.
    assert_eq!(net.b.count_in_state(State::TimeWait), 1);
    net.run_for(Duration::from_secs(3));
    assert_eq!(net.b.count_in_state(State::TimeWait), 0);
    assert_eq!(net.b.sockets_in_use(), 1, "only the listener is left");
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let mut net = Net::new(short_time_wait());
    let (c, _, s) = connected(&mut net);
    net.a.shutdown(c, Shutdown::Write).unwrap();
    net.b.shutdown(s, Shutdown::Write).unwrap();
    // Both FINs leave before either arrives.
    net.a.poll_egress(net.now);
    net.b.poll_egress(net.now);
    net.step();
    // A got B's FIN before the ACK of its own: CLOSING. B got A's FIN and
    // A's ACK in one batch: through CLOSING to TIME-WAIT.
    assert_eq!(net.a.state(c), Ok(State::Closing));
    assert_eq!(net.b.state(s), Ok(State::TimeWait));
    until_states(&mut net, c, State::TimeWait, s, State::TimeWait);
    assert_eq!(drain(&mut net, c, s), (0, 0));
    net.run_for(Duration::from_secs(3));
    assert_eq!(net.a.state(c), Ok(State::Closed));
    assert_eq!(net.b.state(s), Ok(State::Closed));
}

#[test]
fn simultaneous_open_goes_through_syn_received() {
    let mut net = Net::new(TcpConfig::default());
    let x = net.a.socket().unwrap();
    net.a.bind(x, sa(A_IP, 5000)).unwrap();
    let y = net.b.socket().unwrap();
    net.b.bind(y, sa(B_IP, 6000)).unwrap();
    net.a.connect(x, sa(B_IP, 6000)).unwrap();
    net.b.connect(y, sa(A_IP, 5000)).unwrap();
    // Both SYNs leave before either arrives.
    net.a.poll_egress(net.now);
    net.b.poll_egress(net.now);
    net.step();
    assert_eq!(net.a.state(x), Ok(State::SynReceived));
    assert_eq!(net.b.state(y), Ok(State::SynReceived));
    until_states(&mut net, x, State::Established, y, State::Established);
    let (gb, ga) = exchange(&mut net, x, y, b"ping", b"pong", Duration::from_secs(1));
    assert_eq!((&gb[..], &ga[..]), (&b"ping"[..], &b"pong"[..]));
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    let mut net = Net::new(TcpConfig::default());
    let c = net.a.socket().unwrap();
    net.a.connect(c, sa(B_IP, 81)).unwrap();
    assert!(net.run_until(Duration::from_secs(1), |n| n.a.state(c)
        == Ok(State::Closed)));
    assert_eq!(net.a.error(c), Ok(Some(Error::ConnectionRefused)));
    assert_eq!(net.a.recv(c, &mut [0; 4]), Err(Error::ConnectionRefused));
    assert!(net.a.readiness(c).unwrap().contains(Readiness::ERROR));
    assert_eq!(net.b.tcp_stats().resets_sent, 1);
    assert_eq!(net.b.tcp_stats().no_connection, 1);
    assert_eq!(net.a.tcp_stats().no_connection, 0);
    assert_eq!(Error::ConnectionRefused.name(), "ECONNREFUSED");
}

#[test]
fn reset_by_peer_is_econnreset() {
    let mut net = Net::new(TcpConfig::default());
    let (c, _, s) = connected(&mut net);
    // B closes with unread data: that is an abort (RST), as Linux does.
    net.a.send(c, b"unread").unwrap();
    net.run_for(Duration::from_millis(10));
    net.b.close(s).unwrap();
    assert!(net.run_until(Duration::from_secs(1), |n| n.a.state(c)
        == Ok(State::Closed)));
    assert_eq!(net.a.error(c), Ok(Some(Error::ConnectionReset)));
    assert_eq!(net.a.send(c, b"x"), Err(Error::ConnectionReset));
}

#[test]
fn data_after_close_is_answered_with_a_reset() {
    let mut net = Net::new(TcpConfig::default());
    let (c, _, s) = connected(&mut net);
    // B closes with nothing unread: a FIN; A goes on sending, which nobody
    // will read: B resets instead of taking it (Linux TCPAbortOnData)
    net.b.close(s).unwrap();
    assert!(net.run_until(Duration::from_secs(1), |n| n.a.state(c)
        == Ok(State::CloseWait)));
    net.a.send(c, b"after the close").unwrap();
    assert!(net.run_until(Duration::from_secs(1), |n| n.a.state(c)
        == Ok(State::Closed)));
    assert_eq!(net.a.error(c), Ok(Some(Error::ConnectionReset)));
    assert_eq!(net.b.tcp_stats().aborts_on_data, 1);
    // a close with nothing arriving after it ends with FINs, no reset
    let mut net = Net::new(TcpConfig::default());
    let (c, _, s) = connected(&mut net);
    net.b.close(s).unwrap();
    net.run_for(Duration::from_millis(10));
    net.a.close(c).unwrap();
    net.run_for(Duration::from_millis(50));
    assert_eq!(net.b.tcp_stats().aborts_on_data, 0);
    assert_eq!(net.a.error(c).unwrap_or(None), None);
}

#[test]
fn an_idle_connection_gives_its_rings_back_and_takes_them_again() {
    let mut net = Net::new(TcpConfig::default());
    let (c, _, s) = connected(&mut net);
    for round in 0..3u8 {
        let ask = pattern(3000, round.into());
        let answer = pattern(5000, 10 + u64::from(round));
        let (got_b, got_a) = exchange(&mut net, c, s, &ask, &answer, Duration::from_secs(2));
        assert_eq!((got_b, got_a), (ask, answer), "round {round}");
        net.run_for(Duration::from_millis(100));
        assert_eq!(net.a.state(c), Ok(State::Established));
        // everything read and acknowledged: both rings went back, on
        // both sides, and came from the pool again for the next round
        for (side, iface) in [("A", &net.a), ("B", &net.b)] {
            let (provided, reclaimed) = iface.ring_reuse();
            let r = u64::from(round);
            assert!(
                reclaimed >= 2 * (r + 1),
                "{side} round {round}: {reclaimed} reclaimed"
            );
            assert!(
                provided >= 2 * r,
                "{side} round {round}: {provided} provided"
            );
        }
    }
}

#[test]
fn a_full_table_drops_new_syns_counted_and_lets_them_in_once_room_is_made() {
    // B: the listener and room for three connections
    let mut net = Net::with_sockets(TcpConfig::default(), 4);
    let l = listener(&mut net.b, B_IP, 80, 16);
    let clients = connect_many(&mut net, 4);
    let mut accepted = Vec::new();
    net.run_until(Duration::from_millis(500), |n| {
        while let Ok(a) = n.b.accept(l) {
            accepted.push(a);
        }
        false
    });
    assert_eq!(accepted.len(), 3);
    assert!(net.b.tcp_stats().table_full >= 1, "{:?}", net.b.tcp_stats());
    let waiting: Vec<_> = clients
        .iter()
        .filter(|c| net.a.state(**c) == Ok(State::SynSent))
        .copied()
        .collect();
    assert_eq!(waiting.len(), 1, "the refused one still tries");
    // the established ones go on
    let server_of = |net: &Net, c: SocketHandle| {
        let me = net.a.local_addr(c).unwrap();
        accepted.iter().find(|(_, peer)| *peer == me).unwrap().0
    };
    for c in clients.iter().filter(|c| !waiting.contains(c)) {
        let s = server_of(&net, *c);
        let (got_b, _) = exchange(&mut net, *c, s, b"still here", b"", Duration::from_secs(1));
        assert_eq!(got_b, b"still here");
    }
    // one connection ends: its slot frees, and the SYN's retransmission
    // gets in
    let gone = clients
        .iter()
        .find(|c| !waiting.contains(c))
        .copied()
        .unwrap();
    let s = server_of(&net, gone);
    net.a.close(gone).unwrap();
    net.b.close(s).unwrap();
    let mut more = 0;
    assert!(net.run_until(Duration::from_secs(5), |n| {
        if n.b.accept(l).is_ok() {
            more += 1;
        }
        n.a.state(waiting[0]) == Ok(State::Established) && more == 1
    }));
}

#[test]
fn bind_conflicts_are_eaddrinuse() {
    let mut net = Net::new(TcpConfig::default());
    let x = net.b.socket().unwrap();
    net.b.bind(x, sa(B_IP, 80)).unwrap();
    let y = net.b.socket().unwrap();
    assert_eq!(net.b.bind(y, sa(B_IP, 80)), Err(Error::AddrInUse));
    assert_eq!(net.b.bind(y, sa(A_IP, 80)), Err(Error::AddrNotAvailable));
    net.b.close(x).unwrap();
    net.b.bind(y, sa(B_IP, 80)).unwrap();
    assert_eq!(net.b.listen(y, 0), Err(Error::InvalidInput));
    net.b.close(y).unwrap();
    assert_eq!(net.b.close(y), Err(Error::BadHandle));
}

#[test]
fn backlog_full_drops_the_final_ack_then_recovers() {
    let mut net = Net::new(TcpConfig::default());
    let l = listener(&mut net.b, B_IP, 80, 1);
    let clients = connect_many(&mut net, 3);
    // Every client completes its side of the handshake; only one fits in
    // the accept queue.
    net.run_for(Duration::from_millis(50));
    for c in &clients {
        assert_eq!(net.a.state(*c), Ok(State::Established));
    }
    assert!(net.b.tcp_stats().accept_queue_overflows >= 2);
    assert_eq!(net.b.count_in_state(State::SynReceived), 2);
    // Accepting makes room; the SYN-ACK retransmissions bring the others in.
    let mut accepted = Vec::new();
    assert!(net.run_until(Duration::from_secs(10), |n| {
        if let Ok((s, _)) = n.b.accept(l) {
            accepted.push(s);
        }
        accepted.len() == 3
    }));
    assert_eq!(net.b.count_in_state(State::Established), 3);
}

#[test]
fn zero_window_is_probed_until_the_reader_reads() {
    let tcp = TcpConfig {
        rx_buffer: 4096,
        retries: 3,
        ..TcpConfig::default()
    };
    let mut net = Net::new(tcp);
    let (c, _, s) = connected(&mut net);
    let data = pattern(20_000, 3);
    let mut sent = 0;
    // B does not read for a minute: A's window closes and A probes it,
    // far beyond its 3 retries, without giving up.
    net.run_until(Duration::from_secs(60), |n| {
        if sent < data.len() {
            sent += n.a.send(c, &data[sent..]).unwrap_or(0);
        }
        false
    });
    assert_eq!(net.a.state(c), Ok(State::Established));
    assert!(
        net.a.tcp_stats().window_probes >= 3,
        "{:?}",
        net.a.tcp_stats()
    );
    assert_eq!(net.b.tcb(s).unwrap().recv_queue(), 4096);
    assert_eq!(sent, data.len(), "all queued in A's send buffer");
    // The reader reads: window updates reopen the flow.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1024];
    assert!(net.run_until(Duration::from_secs(60), |n| {
        while let Ok(k) = n.b.recv(s, &mut buf) {
            got.extend_from_slice(&buf[..k]);
        }
        got.len() == data.len()
    }));
    assert!(got == data);
}

/// `n` connections one after the other: connect, a 4-byte request, a
/// 2-byte reply, close; the client (A) or the server (B) closes first and
/// holds the TIME-WAIT.
fn sequential_connections(n: u32, time_wait: Duration, client_closes_first: bool) -> Net {
    sequential_connections_in(n, time_wait, client_closes_first, 30_000)
}

/// [`sequential_connections`] with room for `sockets` on each side.
fn sequential_connections_in(
    n: u32,
    time_wait: Duration,
    client_closes_first: bool,
    sockets: usize,
) -> Net {
    let tcp = TcpConfig {
        time_wait,
        ..TcpConfig::default()
    };
    let (net, refused) = sequential_connections_with(n, tcp, client_closes_first, sockets);
    if let Some((i, e)) = refused {
        panic!("connection {i}: {e}");
    }
    net
}

/// [`sequential_connections_in`] with any TCP configuration; stops at the
/// first `connect` refused, and returns its number and error.
fn sequential_connections_with(
    n: u32,
    tcp: TcpConfig,
    client_closes_first: bool,
    sockets: usize,
) -> (Net, Option<(u32, Error)>) {
    let mut net = Net::with_sockets(tcp, sockets);
    let l = listener(&mut net.b, B_IP, 80, 64);
    let mut buf = [0u8; 16];
    for i in 0..n {
        let c = net.a.socket().unwrap();
        if let Err(e) = net.a.connect(c, sa(B_IP, 80)) {
            return (net, Some((i, e)));
        }
        let mut server = None;
        let mut step = 0;
        let ok = net.run_until(Duration::from_secs(5), |n| {
            if server.is_none() {
                server = n.b.accept(l).ok().map(|(s, _)| s);
            }
            match (step, server) {
                (0, _) if n.a.send(c, &i.to_be_bytes()).is_ok() => step = 1,
                (1, Some(s)) if n.b.recv(s, &mut buf) == Ok(4) => {
                    assert_eq!(buf[..4], i.to_be_bytes());
                    n.b.send(s, b"ok").unwrap();
                    if !client_closes_first {
                        n.b.close(s).unwrap();
                    }
                    step = 2;
                }
                (2, _) if n.a.recv(c, &mut buf) == Ok(2) => {
                    n.a.close(c).unwrap();
                    step = 3;
                }
                (3, Some(s)) if client_closes_first && n.b.recv(s, &mut buf) == Ok(0) => {
                    n.b.close(s).unwrap();
                    step = 4;
                }
                _ => {}
            }
            step == if client_closes_first { 4 } else { 3 }
        });
        assert!(ok, "connection {i} stuck at step {step}");
    }
    (net, None)
}

#[test]
fn many_sequential_connections_leak_nothing() {
    let mut net = sequential_connections(10_000, Duration::from_millis(10), false);
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.a.sockets_in_use(), 0);
    assert_eq!(net.b.sockets_in_use(), 1, "only the listener");
    // Each side's connections after the first few got their rings from
    // those that finished before them (two rings each, both sides).
    for (side, iface) in [("A", &net.a), ("B", &net.b)] {
        let (provided, reclaimed) = iface.ring_reuse();
        assert!(provided >= 19_000, "{side}: {provided} rings reused");
        assert!(reclaimed >= provided, "{side}: {reclaimed} reclaimed");
    }
    assert_eq!(
        net.a.tcp_stats().retransmits + net.b.tcp_stats().retransmits,
        0
    );
}

#[test]
fn clients_reuse_their_time_wait_tuples_past_the_port_range() {
    // 20,000 connections from A to one server port within a 60 s
    // TIME-WAIT: past 16,384 the ephemeral ports are all in TIME-WAIT on
    // A, and connect takes over those older than a second (timestamps on).
    let mut net = sequential_connections(20_000, Duration::from_secs(60), true);
    assert!(net.now < Instant::from_secs(60), "{}", net.now);
    net.run_for(Duration::from_millis(10));
    assert_eq!(net.a.count_in_state(State::TimeWait), 16_384);
    // every connection past the port range took one over (Linux's
    // TWRecycled), and none skipped TIME-WAIT
    assert_eq!(net.a.tcp_stats().time_wait_reused, 20_000 - 16_384);
    assert_eq!(net.a.tcp_stats().time_wait_overflows, 0);
    assert_eq!(
        net.a.tcp_stats().retransmits + net.b.tcp_stats().retransmits,
        0
    );
}

#[test]
fn time_wait_tuples_wait_the_configured_delay_before_reuse() {
    // As above: a connection takes 0.5 ms of simulated time here, so when
    // the 16,385th connects, every port is in a TIME-WAIT and the oldest
    // is about 8.2 s old. A 10 s reuse delay refuses it...
    let with_delay = |delay| TcpConfig {
        time_wait: Duration::from_secs(60),
        tw_reuse_delay: delay,
        ..TcpConfig::default()
    };
    let (mut net, refused) =
        sequential_connections_with(16_400, with_delay(Duration::from_secs(10)), true, 30_000);
    let (i, e) = refused.expect("a connect must be refused");
    assert_eq!(i, 16_384, "{e}");
    assert_eq!(e, Error::AddrNotAvailable);
    assert!(net.now > Instant::from_secs(8), "{}", net.now);
    net.run_for(Duration::from_millis(10));
    assert_eq!(net.a.count_in_state(State::TimeWait), 16_384);
    // ...and a 5 s one takes over the oldest tuples
    let (net, refused) =
        sequential_connections_with(16_400, with_delay(Duration::from_secs(5)), true, 30_000);
    assert!(refused.is_none(), "{refused:?}");
    assert!(net.now < Instant::from_secs(10), "{}", net.now);
}

#[test]
fn a_table_three_quarters_full_skips_time_wait() {
    // A server closing first with room for 100 sockets: TIME-WAITs fill
    // it to 75, then closed connections skip TIME-WAIT (counted, as
    // Linux's `tcp_max_tw_buckets`), and 1,000 connections all go through.
    let mut net = sequential_connections_in(1_000, Duration::from_secs(60), false, 100);
    net.run_for(Duration::from_millis(10));
    let stats = net.b.tcp_stats();
    assert!(net.b.sockets_in_use() <= 76, "{}", net.b.sockets_in_use());
    assert!(net.b.count_in_state(State::TimeWait) >= 70);
    assert!(stats.time_wait_overflows >= 900, "{stats:?}");
    assert_eq!(stats.syn_queue_overflows, 0);
}

#[test]
fn servers_let_a_newer_syn_end_time_wait() {
    // The same with the server closing first: its TIME-WAITs meet the
    // client's SYNs once the client's ports wrap, and give way to them
    // (RFC 6191: the SYN's timestamp is newer).
    let mut net = sequential_connections(20_000, Duration::from_secs(60), false);
    assert!(net.now < Instant::from_secs(60), "{}", net.now);
    net.run_for(Duration::from_millis(10));
    assert_eq!(net.b.count_in_state(State::TimeWait), 16_384);
    assert_eq!(net.b.tcp_stats().challenge_acks, 0);
    assert_eq!(
        net.a.tcp_stats().retransmits + net.b.tcp_stats().retransmits,
        0
    );
}

#[test]
fn a_full_transmit_ring_delays_but_loses_nothing() {
    let mut net = Net::new(TcpConfig::default());
    let (c, _, s) = connected(&mut net);
    // Three frames per poll at most, each way: most polls leave work owed.
    net.a.device_mut().inner_mut().set_tx_ring(3);
    net.b.device_mut().inner_mut().set_tx_ring(3);
    let ab = pattern(500_000, 7);
    let ba = pattern(100_000, 8);
    let (got_b, got_a) = exchange(&mut net, c, s, &ab, &ba, Duration::from_secs(10));
    assert!(got_b == ab && got_a == ba);
    assert_eq!(net.a.tcp_stats().retransmits, 0);
}

#[test]
fn syn_cookies_take_over_when_the_syn_queue_is_full() {
    let mut net = Net::build(TcpConfig::default(), Default::default(), 1, |c| {
        c.syn_backlog = 2;
    });
    let l = listener(&mut net.b, B_IP, 80, 16);
    let clients = connect_many(&mut net, 8);
    let mut accepted = Vec::new();
    assert!(net.run_until(Duration::from_secs(1), |n| {
        while let Ok((s, _)) = n.b.accept(l) {
            accepted.push(s);
        }
        accepted.len() == 8
    }));
    let st = *net.b.tcp_stats();
    assert_eq!((st.syn_cookies_sent, st.syn_cookies_accepted), (6, 6));
    assert_eq!(net.a.tcp_stats().retransmits, 0);
    // A cookie connection kept the options: timestamps (from the ACK),
    // window scaling and SACK (from the cookie), MSS 1460 less timestamps.
    // The last client's SYN found the queue full.
    let c = clients[7];
    let mine = net.a.local_addr(c).unwrap();
    let s = *accepted
        .iter()
        .find(|s| net.b.peer_addr(**s) == Ok(mine))
        .unwrap();
    let t = net.b.tcb(s).unwrap();
    assert_eq!(t.negotiated(), (true, true, Some((1, 1))));
    assert_eq!(t.mss(), 1448);
    let ab = pattern(100_000, 11);
    let (got_b, got_a) = exchange(&mut net, c, s, &ab, b"thanks", Duration::from_secs(5));
    assert!(got_b == ab && got_a == b"thanks");
}

#[test]
fn connect_picks_ports_whose_replies_come_back_to_its_queue() {
    use stack::flow::Toeplitz;
    use stack::RssConfig;
    let rss = RssConfig {
        toeplitz: Toeplitz::new(Toeplitz::MICROSOFT_KEY),
        indirection: (0..128).map(|i| i % 4).collect(),
        queue: 3,
    };
    let keep = rss.clone();
    let mut net = Net::build(TcpConfig::default(), Default::default(), 1, move |c| {
        c.rss = Some(rss.clone());
    });
    let l = listener(&mut net.b, B_IP, 80, 64);
    let clients = connect_many(&mut net, 40);
    let mut accepted = 0;
    assert!(net.run_until(Duration::from_secs(1), |n| {
        while n.b.accept(l).is_ok() {
            accepted += 1;
        }
        accepted == 40
    }));
    for c in clients {
        let port = net.a.local_addr(c).unwrap().port();
        // The reply, B -> A, as the NIC hashes it.
        let h = keep.toeplitz.hash_tuple(
            core::net::IpAddr::V4(B_IP),
            core::net::IpAddr::V4(A_IP),
            Some((80, port)),
        );
        assert_eq!(keep.indirection[h as usize % 128], 3, "port {port}");
    }
}

#[test]
fn connections_from_aliases_get_a_port_range_each_and_carry_data() {
    let (first, last) = (
        Ipv4Addr::new(198, 18, 0, 200),
        Ipv4Addr::new(198, 18, 0, 201),
    );
    let mut net = Net::resolving(TcpConfig::default(), Faults::default(), 1, |c| {
        if c.addr == A_IP {
            c.aliases = Some(first..=last);
            // one port only: each address must have its own
            c.ephemeral_ports = 40000..=40000;
        }
    });
    let l = listener(&mut net.b, B_IP, 80, 16);
    let stranger = net.a.socket().unwrap();
    assert_eq!(
        net.a
            .connect_from(stranger, Ipv4Addr::new(198, 18, 0, 202), sa(B_IP, 80)),
        Err(Error::AddrNotAvailable)
    );
    let cs: Vec<SocketHandle> = [A_IP, first, last]
        .iter()
        .map(|&ip| {
            let c = net.a.socket().unwrap();
            net.a.connect_from(c, ip, sa(B_IP, 80)).unwrap();
            c
        })
        .collect();
    // the one port of the primary address is taken
    let c4 = net.a.socket().unwrap();
    assert_eq!(
        net.a.connect_from(c4, first, sa(B_IP, 80)),
        Err(Error::AddrNotAvailable)
    );
    let mut accepted = Vec::new();
    let ok = net.run_until(Duration::from_secs(2), |n| {
        while let Ok(a) = n.b.accept(l) {
            accepted.push(a);
        }
        accepted.len() == 3 && cs.iter().all(|&c| n.a.state(c) == Ok(State::Established))
    });
    assert!(ok, "connections from every address established");
    let locals: Vec<SocketAddrV4> = cs.iter().map(|&c| net.a.local_addr(c).unwrap()).collect();
    assert_eq!(
        locals,
        [A_IP, first, last].map(|ip| SocketAddrV4::new(ip, 40000))
    );
    // B found each address by ARP, answered by A from the address asked for
    for ip in [A_IP, first, last] {
        assert_eq!(net.b.neighbour(ip), Some(A_MAC), "{ip}");
    }
    let (s, _) = *accepted
        .iter()
        .find(|(_, peer)| *peer.ip() == last)
        .unwrap();
    let (got_b, got_a) = exchange(
        &mut net,
        cs[2],
        s,
        b"from an alias",
        b"back to it",
        Duration::from_secs(1),
    );
    assert_eq!(
        (&got_b[..], &got_a[..]),
        (&b"from an alias"[..], &b"back to it"[..])
    );
}

#[test]
fn in_place_verbs_move_the_same_bytes_without_a_buffer() {
    let mut net = Net::new(TcpConfig {
        rx_buffer: 4096,
        tx_buffer: 4096,
        ..TcpConfig::default()
    });
    let (c, _, s) = connected(&mut net);
    let data = pattern(20_000, 9);
    let (mut sent, mut got) = (0, Vec::new());
    let mut full_seen = false;
    let ok = net.run_until(Duration::from_secs(5), |n| {
        match n.a.send_with(c, |room| {
            let k = room.len().min(data.len() - sent);
            room[..k].copy_from_slice(&data[sent..sent + k]);
            k
        }) {
            Ok(k) => sent += k,
            Err(Error::WouldBlock) => full_seen = true,
            Err(e) => panic!("send_with: {e:?}"),
        }
        // take at most 1000 bytes a call: the rest stays for the next
        while let Ok(k) = n.b.recv_stream_with(s, |run| {
            let k = run.len().min(1000);
            got.extend_from_slice(&run[..k]);
            k
        }) {
            if k == 0 {
                break;
            }
        }
        got.len() == data.len()
    });
    assert!(ok, "{} of {} bytes", got.len(), data.len());
    assert_eq!(got, data);
    assert!(full_seen, "a 4 KiB ring filled and said EAGAIN");
    // the end of the stream, without a call of f
    net.a.close(c).unwrap();
    let mut called = false;
    assert!(
        net.run_until(Duration::from_secs(1), |n| n.b.recv_stream_with(s, |_| {
            called = true;
            0
        }) == Ok(0))
    );
    assert!(!called);
}

#[test]
fn abort_resets_the_peer_and_leaves_no_time_wait() {
    let mut net = Net::new(TcpConfig::default());
    let (c, _, s) = connected(&mut net);
    let before = net.a.sockets_in_use();
    net.a.abort(c).unwrap();
    assert!(net.run_until(Duration::from_secs(1), |n| n.b.state(s)
        == Ok(State::Closed)));
    assert_eq!(net.b.error(s), Ok(Some(Error::ConnectionReset)));
    // gone at once: no FIN exchange, no TIME-WAIT holding the tuple
    assert_eq!(net.a.sockets_in_use(), before - 1);
    assert_eq!(net.a.state(c), Err(Error::BadHandle));
}
