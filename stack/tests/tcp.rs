//! TCP between two interfaces on the in-memory link, under a deterministic
//! clock.

mod common;

use core::time::Duration;

use common::*;
use stack::tcp::{State, TcpConfig};
use stack::{Error, Readiness, SocketHandle};

/// A listener on B:80 and a connection from A to it, handshake done;
/// returns (client on A, listener on B, accepted on B).
fn connected(net: &mut Net) -> (SocketHandle, SocketHandle, SocketHandle) {
    let l = net.b.socket().unwrap();
    net.b.bind(l, sa(B_IP, 80)).unwrap();
    net.b.listen(l, 16).unwrap();
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
