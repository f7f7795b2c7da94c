//! Scripted scenarios in the spirit of packetdrill: the interface under
//! test (A, 198.18.0.1) on one end of the in-memory link, and a raw peer
//! (B, 198.18.0.2) that sends hand-made segments at chosen times and
//! compares what comes back, field by field.

mod common;

use core::time::Duration;

use common::*;
use stack::tcp::{Keepalive, State, TcpConfig};
use stack::time::Instant;
use stack::wire::{TcpFlags, TcpOptions, Timestamps};
use stack::{Error, SocketHandle};

const ACK: TcpFlags = TcpFlags::ACK;
const SYN: TcpFlags = TcpFlags::SYN;
const RST: TcpFlags = TcpFlags::RST;
const FIN: TcpFlags = TcpFlags::FIN;

fn ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

fn one(out: Vec<Seg>) -> Seg {
    assert_eq!(out.len(), 1, "expected one segment, got {out:#?}");
    out.into_iter().next().unwrap()
}

/// The peer B connects from port 40000 to A's listener on 80 (SYN with an
/// MSS option only: no scaling, no timestamps, no SACK). Returns the
/// accepted handle and A's ISS. B's ISS is 1000.
fn passive_open(raw: &mut Raw) -> (SocketHandle, u32) {
    let l = listener(&mut raw.iface, A_IP, 80, 8);
    let mut syn = seg(40000, 80, SYN, 1000, 0);
    syn.options.mss = Some(1460);
    raw.send(syn);
    let synack = one(raw.poll_at(ms(0)));
    // SYN-ACK: <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>, only the options B offered.
    assert_eq!(synack.flags, SYN | ACK);
    assert_eq!(synack.ack, 1001);
    assert_eq!(synack.window, 65535);
    assert_eq!(
        synack.options,
        TcpOptions {
            mss: Some(1460),
            ..TcpOptions::default()
        }
    );
    let iss = synack.seq;
    raw.send(seg(40000, 80, ACK, 1001, iss.wrapping_add(1)));
    assert!(raw.poll_at(ms(1)).is_empty());
    let (s, peer) = raw.iface.accept(l).unwrap();
    assert_eq!(peer, sa(B_IP, 40000));
    assert_eq!(raw.iface.state(s), Ok(State::Established));
    (s, iss)
}

#[test]
fn passive_open_data_and_out_of_order_reassembly() {
    let mut raw = Raw::new(TcpConfig::default());
    let (s, iss) = passive_open(&mut raw);
    let una = iss.wrapping_add(1);
    // Second segment first: an immediate duplicate ACK (RFC 5681 §4.2).
    let mut second = seg(40000, 80, ACK, 1006, una);
    second.payload = b"world";
    raw.send(second);
    let dup = one(raw.poll_at(ms(2)));
    assert_eq!((dup.flags, dup.seq, dup.ack), (ACK, una, 1001));
    assert_eq!(raw.iface.recv(s, &mut [0; 16]), Err(Error::WouldBlock));
    // The hole fills: one ACK covers both.
    let mut first = seg(40000, 80, ACK, 1001, una);
    first.payload = b"hello";
    raw.send(first);
    let ack = one(raw.poll_at(ms(3)));
    assert_eq!((ack.flags, ack.ack), (ACK, 1011));
    // The window shrank by what waits to be read.
    assert_eq!(ack.window, 65535 - 10 + 1);
    let mut buf = [0u8; 16];
    assert_eq!(raw.iface.recv(s, &mut buf), Ok(10));
    assert_eq!(&buf[..10], b"helloworld");
    // A duplicate of old data is acknowledged again and not delivered.
    let mut old = seg(40000, 80, ACK, 1001, una);
    old.payload = b"hello";
    raw.send(old);
    let ack = one(raw.poll_at(ms(4)));
    assert_eq!(ack.ack, 1011);
    assert_eq!(raw.iface.recv(s, &mut buf), Err(Error::WouldBlock));
}

#[test]
fn rfc5961_rst_cases() {
    let mut raw = Raw::new(TcpConfig::default());
    let (s, iss) = passive_open(&mut raw);
    let una = iss.wrapping_add(1);
    // Out of window: ignored, nothing sent (RFC 5961 §3.2).
    raw.send(seg(40000, 80, RST, 1001 + 1_000_000, 0));
    assert!(raw.poll_at(ms(2)).is_empty());
    // In the window but not RCV.NXT: a challenge ACK <SEQ=SND.NXT><ACK=RCV.NXT>.
    raw.send(seg(40000, 80, RST, 1001 + 100, 0));
    let ch = one(raw.poll_at(ms(3)));
    assert_eq!((ch.flags, ch.seq, ch.ack), (ACK, una, 1001));
    assert_eq!(raw.iface.state(s), Ok(State::Established));
    assert_eq!(raw.iface.tcp_stats().challenge_acks, 1);
    // Exactly RCV.NXT: the connection is reset.
    raw.send(seg(40000, 80, RST, 1001, 0));
    assert!(raw.poll_at(ms(4)).is_empty());
    assert_eq!(raw.iface.state(s), Ok(State::Closed));
    assert_eq!(raw.iface.recv(s, &mut [0; 4]), Err(Error::ConnectionReset));
}

#[test]
fn rfc5961_syn_and_ack_cases() {
    let mut raw = Raw::new(TcpConfig::default());
    let (s, iss) = passive_open(&mut raw);
    let una = iss.wrapping_add(1);
    // A SYN in a synchronized state, in the window: challenge ACK (§4.2).
    raw.send(seg(40000, 80, SYN, 1001 + 10, 0));
    let ch = one(raw.poll_at(ms(2)));
    assert_eq!((ch.flags, ch.seq, ch.ack), (ACK, una, 1001));
    // Out of the window too: still only an ACK.
    raw.send(seg(40000, 80, SYN, 5, 0));
    let ch = one(raw.poll_at(ms(3)));
    assert_eq!((ch.flags, ch.ack), (ACK, 1001));
    assert_eq!(raw.iface.state(s), Ok(State::Established));
    // An ACK of something never sent: dropped, with an ACK (§5.2); its
    // data is not taken.
    let mut bad = seg(40000, 80, ACK, 1001, una.wrapping_add(5000));
    bad.payload = b"nope";
    raw.send(bad);
    let a = one(raw.poll_at(ms(4)));
    assert_eq!((a.flags, a.seq, a.ack), (ACK, una, 1001));
    assert_eq!(raw.iface.recv(s, &mut [0; 8]), Err(Error::WouldBlock));
}

#[test]
fn resets_for_segments_without_a_connection() {
    let mut raw = Raw::new(TcpConfig::default());
    listener(&mut raw.iface, A_IP, 80, 8);
    // RFC 9293 §3.10.7.1, no ACK: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
    let mut data = seg(40000, 81, TcpFlags::PSH | ACK, 7, 0);
    data.flags = TcpFlags::SYN;
    raw.send(data);
    let r = one(raw.poll_at(ms(0)));
    assert_eq!((r.flags, r.seq, r.ack), (RST | ACK, 0, 8));
    // §3.10.7.2, an ACK to a listener: <SEQ=SEG.ACK><CTL=RST>.
    raw.send(seg(40000, 80, ACK, 7, 4242));
    let r = one(raw.poll_at(ms(1)));
    assert_eq!((r.flags, r.seq), (RST, 4242));
    // Never a RST for a RST.
    raw.send(seg(40000, 81, RST, 7, 0));
    assert!(raw.poll_at(ms(2)).is_empty());
}

#[test]
fn syn_retries_back_off_then_etimedout() {
    let tcp = TcpConfig {
        syn_retries: 3,
        ..TcpConfig::default()
    };
    let mut raw = Raw::new(tcp);
    let c = raw.iface.socket().unwrap();
    raw.iface.connect(c, sa(B_IP, 80)).unwrap();
    let mut sent_at = Vec::new();
    let mut now = ms(0);
    for _ in 0..10 {
        let out = raw.poll_at(now);
        for s in &out {
            assert_eq!(s.flags, SYN);
            sent_at.push(now.millis());
        }
        if raw.iface.state(c) == Ok(State::Closed) {
            break;
        }
        now = raw.iface.poll_at().expect("a timer runs");
    }
    // RFC 6298 §2.1 initial RTO 1 s, doubled at each expiry (§5.5).
    assert_eq!(sent_at, vec![0, 1000, 3000, 7000]);
    assert_eq!(now, ms(15_000));
    assert_eq!(raw.iface.error(c), Ok(Some(Error::TimedOut)));
}

/// A connects to B:80; B's SYN-ACK (ISS 5000, MSS 1000, SACK-permitted if
/// asked) arrives at `at`. Returns A's handle, its SYN, and what A sent
/// then.
fn active_open(raw: &mut Raw, at: Instant, sack: bool) -> (SocketHandle, Seg, Vec<Seg>) {
    let c = raw.iface.socket().unwrap();
    raw.iface.connect(c, sa(B_IP, 80)).unwrap();
    let syn = one(raw.poll_at(ms(0)));
    let mut synack = seg(80, syn.src_port, SYN | ACK, 5000, syn.seq.wrapping_add(1));
    synack.options.mss = Some(1000);
    synack.options.sack_permitted = sack;
    raw.send(synack);
    let out = raw.poll_at(at);
    (c, syn, out)
}

#[test]
fn data_rto_follows_the_measured_rtt_and_backs_off() {
    let tcp = TcpConfig {
        retries: 3,
        timestamps: false,
        ..TcpConfig::default()
    };
    let mut raw = Raw::new(tcp);
    // The SYN-ACK comes 100 ms later: SRTT 100 ms, RTTVAR 50 ms, so
    // RTO = 100 + 4 * 50 = 300 ms (RFC 6298 §2.2).
    let (c, syn, ack) = active_open(&mut raw, ms(100), false);
    let ack = one(ack);
    assert_eq!((ack.flags, ack.ack), (ACK, 5001));
    assert_eq!(raw.iface.tcb(c).unwrap().rto(), Duration::from_millis(300));
    // MSS 1000 from the peer: 2500 bytes go as 1000 + 1000 + 500.
    raw.iface.send(c, &pattern(2500, 9)).unwrap();
    let out = raw.poll_at(ms(100));
    let lens: Vec<_> = out.iter().map(|s| s.payload.len()).collect();
    assert_eq!(lens, vec![1000, 1000, 500]);
    // No ACK: at each timeout the first unacknowledged segment goes again
    // (the congestion window is one segment after a timeout, RFC 5681
    // §3.1), at 400, 1000 and 2200 ms (RTO 300, 600, 1200); the expiry
    // after the third (retries = 3) gives up at 4600 ms.
    let una = syn.seq.wrapping_add(1);
    let mut expiries = Vec::new();
    let mut now;
    loop {
        now = raw.iface.poll_at().expect("a timer runs");
        let out = raw.poll_at(now);
        if raw.iface.state(c) == Ok(State::Closed) {
            assert!(out.is_empty());
            break;
        }
        let seqs: Vec<_> = out.iter().map(|s| s.seq.wrapping_sub(una)).collect();
        assert_eq!(seqs, vec![0]);
        let cc = raw.iface.tcb(c).unwrap().congestion();
        // ssthresh = max(FlightSize / 2, 2 * SMSS) = max(1250, 2000).
        assert_eq!((cc.window(), cc.ssthresh()), (1000, 2000));
        expiries.push(now.millis());
    }
    assert_eq!(expiries, vec![400, 1000, 2200]);
    assert_eq!(now, ms(4600));
    assert_eq!(raw.iface.error(c), Ok(Some(Error::TimedOut)));
}

/// A connection accepted from B (see `passive_open`), then closed by A at
/// 10 ms: A's FIN, <SEQ=SND.UNA><ACK=1001>, is checked. Returns the rig and
/// SND.UNA before the FIN.
fn opened_then_closed(tcp: TcpConfig) -> (Raw, u32) {
    let mut raw = Raw::new(tcp);
    let (s, iss) = passive_open(&mut raw);
    let una = iss.wrapping_add(1);
    raw.iface.close(s).unwrap();
    let fin = one(raw.poll_at(ms(10)));
    assert_eq!((fin.flags, fin.seq, fin.ack), (FIN | ACK, una, 1001));
    (raw, una)
}

#[test]
fn time_wait_acks_a_retransmitted_fin_and_restarts() {
    let tcp = TcpConfig {
        time_wait: Duration::from_secs(10),
        ..TcpConfig::default()
    };
    let (mut raw, una) = opened_then_closed(tcp);
    // B acknowledges A's FIN and sends its own: TIME-WAIT.
    raw.send(seg(40000, 80, FIN | ACK, 1001, una.wrapping_add(1)));
    let ack = one(raw.poll_at(ms(20)));
    assert_eq!(
        (ack.flags, ack.seq, ack.ack),
        (ACK, una.wrapping_add(1), 1002)
    );
    assert_eq!(raw.iface.count_in_state(State::TimeWait), 1);
    // B's FIN again at 5 s: ACKed, and the 10 s start over.
    raw.send(seg(40000, 80, FIN | ACK, 1001, una.wrapping_add(1)));
    let ack = one(raw.poll_at(ms(5020)));
    assert_eq!(ack.ack, 1002);
    raw.poll_at(ms(15_019));
    assert_eq!(raw.iface.count_in_state(State::TimeWait), 1);
    raw.poll_at(ms(15_020));
    assert_eq!(raw.iface.count_in_state(State::TimeWait), 0);
    assert_eq!(raw.iface.sockets_in_use(), 1, "only the listener");
}

#[test]
fn timestamps_are_echoed() {
    let mut raw = Raw::new(TcpConfig::default());
    listener(&mut raw.iface, A_IP, 80, 8);
    let mut syn = seg(40000, 80, SYN, 1000, 0);
    syn.options = TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some(Timestamps {
            tsval: 777,
            tsecr: 0,
        }),
        ..TcpOptions::default()
    };
    raw.send(syn);
    let synack = one(raw.poll_at(ms(0)));
    let o = synack.options;
    assert_eq!(o.mss, Some(1460));
    assert_eq!(o.window_scale, Some(1));
    assert!(o.sack_permitted);
    assert_eq!(o.timestamps.map(|t| t.tsecr), Some(777));
}

#[test]
fn a_retransmitted_syn_gets_the_same_syn_ack() {
    let mut raw = Raw::new(TcpConfig::default());
    listener(&mut raw.iface, A_IP, 80, 8);
    raw.send(seg(40000, 80, SYN, 1000, 0));
    let first = one(raw.poll_at(ms(0)));
    // B never saw it and sends its SYN again: the same SYN-ACK, at once.
    raw.send(seg(40000, 80, SYN, 1000, 0));
    let again = one(raw.poll_at(ms(900)));
    assert_eq!(
        (again.flags, again.seq, again.ack),
        (SYN | ACK, first.seq, 1001)
    );
    // With no answer, A retransmits it on its own timer (1 s after the
    // last one, RFC 6298 §5.1 keeps the running timer).
    let timer = raw.iface.poll_at().unwrap();
    let third = one(raw.poll_at(timer));
    assert_eq!((third.flags, third.seq), (SYN | ACK, first.seq));
    assert_eq!(raw.iface.tcp_stats().retransmits, 2);
}

#[test]
fn challenge_acks_are_rate_limited_per_connection() {
    let tcp = TcpConfig {
        challenge_ack_limit: 3,
        ..TcpConfig::default()
    };
    let mut raw = Raw::new(tcp);
    let (_, _) = passive_open(&mut raw);
    for i in 0..5 {
        raw.send(seg(40000, 80, RST, 1001 + 10 + i, 0));
    }
    assert_eq!(raw.poll_at(ms(10)).len(), 1, "ACKs owed coalesce into one");
    for i in 0..5 {
        raw.send(seg(40000, 80, RST, 1001 + 10 + i, 0));
        raw.poll_at(ms(20 + u64::from(i)));
    }
    let stats = raw.iface.tcp_stats();
    assert_eq!(stats.challenge_acks, 3);
    assert_eq!(stats.challenge_acks_suppressed, 7);
    // A new second, a new allowance.
    raw.send(seg(40000, 80, RST, 1001 + 10, 0));
    assert_eq!(raw.poll_at(ms(1100)).len(), 1);
}

#[test]
fn a_newer_syn_ends_time_wait_and_an_old_one_does_not() {
    let (mut raw, una) = opened_then_closed(TcpConfig::default());
    raw.send(seg(40000, 80, FIN | ACK, 1001, una.wrapping_add(1)));
    raw.poll_at(ms(20));
    assert_eq!(raw.iface.count_in_state(State::TimeWait), 1);
    // An old duplicate SYN (not past RCV.NXT = 1002): only an ACK
    // (RFC 5961 §4.2), TIME-WAIT stays.
    raw.send(seg(40000, 80, SYN, 900, 0));
    let ch = one(raw.poll_at(ms(30)));
    assert_eq!((ch.flags, ch.ack), (ACK, 1002));
    assert_eq!(raw.iface.count_in_state(State::TimeWait), 1);
    // A SYN past RCV.NXT opens a new connection at once (RFC 1122
    // §4.2.2.13), with an ISN past all the old one used (+ 65537, as Linux).
    raw.send(seg(40000, 80, SYN, 50_000, 0));
    let synack = one(raw.poll_at(ms(40)));
    assert_eq!((synack.flags, synack.ack), (SYN | ACK, 50_001));
    assert_eq!(synack.seq, una.wrapping_add(1).wrapping_add(65537));
    assert_eq!(raw.iface.count_in_state(State::TimeWait), 0);
    assert_eq!(raw.iface.count_in_state(State::SynReceived), 1);
}

#[test]
fn paws_drops_a_segment_with_an_old_timestamp() {
    let mut raw = Raw::new(TcpConfig::default());
    let l = listener(&mut raw.iface, A_IP, 80, 8);
    let ts = |tsval| TcpOptions {
        timestamps: Some(Timestamps { tsval, tsecr: 0 }),
        ..TcpOptions::default()
    };
    let mut syn = seg(40000, 80, SYN, 1000, 0);
    syn.options = ts(100);
    raw.send(syn);
    let synack = one(raw.poll_at(ms(0)));
    let una = synack.seq.wrapping_add(1);
    let mut ack = seg(40000, 80, ACK, 1001, una);
    ack.options = ts(101);
    raw.send(ack);
    raw.poll_at(ms(1));
    let (s, _) = raw.iface.accept(l).unwrap();
    // Data stamped older than TS.Recent: dropped, answered with an ACK.
    let mut old = seg(40000, 80, ACK, 1001, una);
    old.options = ts(50);
    old.payload = b"stale";
    raw.send(old);
    let a = one(raw.poll_at(ms(2)));
    assert_eq!((a.flags, a.ack), (ACK, 1001));
    assert_eq!(a.options.timestamps.map(|t| t.tsecr), Some(101));
    assert_eq!(raw.iface.tcp_stats().paws_drops, 1);
    // The same data stamped newer is taken.
    let mut new = seg(40000, 80, ACK, 1001, una);
    new.options = ts(102);
    new.payload = b"fresh";
    raw.send(new);
    assert!(raw.poll_at(ms(3)).is_empty(), "a delayed ACK");
    let a = one(raw.poll_at(ms(43)));
    assert_eq!(a.ack, 1006);
    assert_eq!(a.options.timestamps.map(|t| t.tsecr), Some(102));
    // One tick older than TS.Recent (102) passes, as Linux's PAWS window
    // lets it: the segment was reordered, not old.
    let mut reordered = seg(40000, 80, ACK, 1006, una);
    reordered.options = ts(101);
    reordered.payload = b"x";
    raw.send(reordered);
    raw.poll_at(ms(44));
    assert_eq!(raw.iface.tcp_stats().paws_drops, 1);
    let mut buf = [0u8; 16];
    assert_eq!(raw.iface.recv(s, &mut buf), Ok(6));
    assert_eq!(&buf[..6], b"freshx");
}

#[test]
fn syn_cookie_ack_is_checked() {
    let mut raw = Raw::build(TcpConfig::default(), |c| c.syn_backlog = 0);
    let l = listener(&mut raw.iface, A_IP, 80, 8);
    let mut syn = seg(40000, 80, SYN, 1000, 0);
    syn.options = TcpOptions {
        mss: Some(1380),
        window_scale: Some(9),
        sack_permitted: true,
        ..TcpOptions::default()
    };
    raw.send(syn);
    let synack = one(raw.poll_at(ms(0)));
    assert_eq!((synack.flags, synack.ack), (SYN | ACK, 1001));
    assert_eq!(synack.options.window_scale, Some(1));
    assert!(synack.options.sack_permitted);
    assert_eq!(raw.iface.sockets_in_use(), 1, "nothing kept for a cookie");
    // A forged ACK (wrong cookie): a reset, as for any ACK to a listener.
    raw.send(seg(40000, 80, ACK, 1001, synack.seq.wrapping_add(2)));
    let r = one(raw.poll_at(ms(1)));
    assert_eq!((r.flags, r.seq), (RST, synack.seq.wrapping_add(2)));
    // The right one, with data: the connection exists, established.
    let mut ack = seg(40000, 80, ACK, 1001, synack.seq.wrapping_add(1));
    ack.payload = b"hi";
    raw.send(ack);
    // In-order data: its ACK is delayed (40 ms).
    assert!(raw.poll_at(ms(2)).is_empty());
    let a = one(raw.poll_at(ms(42)));
    assert_eq!((a.flags, a.ack), (ACK, 1003));
    let (s, _) = raw.iface.accept(l).unwrap();
    let t = raw.iface.tcb(s).unwrap();
    // MSS 1380 rounds down to 1360 in the cookie; scale 9 and SACK kept.
    assert_eq!(t.mss(), 1360);
    assert_eq!(t.negotiated(), (false, true, Some((1, 9))));
    let mut buf = [0u8; 4];
    assert_eq!(raw.iface.recv(s, &mut buf), Ok(2));
    let st = raw.iface.tcp_stats();
    assert_eq!(
        (
            st.syn_cookies_sent,
            st.syn_cookies_accepted,
            st.syn_cookies_failed
        ),
        (1, 1, 1)
    );
}

#[test]
fn delayed_ack_waits_40_ms_or_two_segments_or_a_reply() {
    let mut raw = Raw::new(TcpConfig::default());
    let (s, iss) = passive_open(&mut raw);
    let una = iss.wrapping_add(1);
    let data = pattern(4000, 4);
    // One small segment: the ACK waits 40 ms.
    let mut d = seg(40000, 80, ACK, 1001, una);
    d.payload = &data[..100];
    raw.send(d);
    assert!(raw.poll_at(ms(10)).is_empty());
    assert!(raw.poll_at(ms(49)).is_empty());
    let a = one(raw.poll_at(ms(50)));
    assert_eq!(a.ack, 1101);
    // Two full-sized segments: acknowledged at once (RFC 5681 §4.2).
    for (i, chunk) in data[100..100 + 2 * 1460].chunks(1460).enumerate() {
        let mut d = seg(40000, 80, ACK, 1101 + 1460 * i as u32, una);
        d.payload = chunk;
        raw.send(d);
    }
    let a = one(raw.poll_at(ms(60)));
    assert_eq!(a.ack, 1101 + 2920);
    // A request answered within the delay: the ACK rides on the reply.
    let mut d = seg(40000, 80, ACK, 4021, una);
    d.payload = b"ping";
    raw.send(d);
    assert!(raw.poll_at(ms(70)).is_empty());
    let mut buf = [0u8; 4096];
    assert_eq!(raw.iface.recv(s, &mut buf), Ok(3024));
    raw.iface.send(s, b"pong").unwrap();
    let r = one(raw.poll_at(ms(71)));
    assert_eq!(
        (r.flags, r.ack, &r.payload[..]),
        (ACK | TcpFlags::PSH, 4025, &b"pong"[..])
    );
    // Nothing more is owed at 40 ms.
    assert!(raw.poll_at(ms(120)).is_empty());
}

#[test]
fn nagle_holds_small_segments_only_when_on() {
    for nagle in [false, true] {
        let mut raw = Raw::new(TcpConfig {
            nagle,
            ..TcpConfig::default()
        });
        let (s, iss) = passive_open(&mut raw);
        let una = iss.wrapping_add(1);
        raw.iface.send(s, b"one").unwrap();
        assert_eq!(one(raw.poll_at(ms(2))).payload, b"one");
        raw.iface.send(s, b"two").unwrap();
        let out = raw.poll_at(ms(3));
        if nagle {
            // "one" is not acknowledged yet: "two" waits for the ACK.
            assert!(out.is_empty());
            raw.send(seg(40000, 80, ACK, 1001, una.wrapping_add(3)));
            assert_eq!(one(raw.poll_at(ms(4))).payload, b"two");
        } else {
            assert_eq!(one(out).payload, b"two");
        }
    }
}

#[test]
fn sack_blocks_describe_what_is_held_beyond_the_holes() {
    let mut raw = Raw::new(TcpConfig::default());
    listener(&mut raw.iface, A_IP, 80, 8);
    let mut syn = seg(40000, 80, SYN, 1000, 0);
    syn.options.sack_permitted = true;
    raw.send(syn);
    let synack = one(raw.poll_at(ms(0)));
    assert!(synack.options.sack_permitted);
    let una = synack.seq.wrapping_add(1);
    raw.send(seg(40000, 80, ACK, 1001, una));
    raw.poll_at(ms(1));
    let data = pattern(100, 5);
    // Bytes 1011..1021, then 1041..1051: two blocks, the latest first.
    for (at, ms_at) in [(10u32, 2u64), (40, 3)] {
        let mut d = seg(40000, 80, ACK, 1001 + at, una);
        d.payload = &data[..10];
        raw.send(d);
        let a = one(raw.poll_at(ms(ms_at)));
        assert_eq!(a.ack, 1001);
        if at == 40 {
            assert_eq!(
                a.options.sack_blocks.as_slice(),
                &[(1041, 1051), (1011, 1021)]
            );
        }
    }
    // The first hole fills: the ACK moves to 1021, one block is left.
    let mut d = seg(40000, 80, ACK, 1001, una);
    d.payload = &data[..10];
    raw.send(d);
    let a = one(raw.poll_at(ms(4)));
    assert_eq!(a.ack, 1021);
    assert_eq!(a.options.sack_blocks.as_slice(), &[(1041, 1051)]);
}

#[test]
fn arp_requests_for_our_address_are_answered() {
    use stack::frame::parse_frame;
    use stack::phy::Device;
    use stack::wire::{ArpOperation, ArpRepr, Checksums, EtherType, EthernetRepr};
    let mut raw = Raw::new(TcpConfig::default());
    for target in [A_IP, B_IP] {
        let req = stack::frame::Frame {
            ethernet: EthernetRepr {
                src_addr: B_MAC,
                dst_addr: stack::wire::EthernetAddress::BROADCAST,
                vlan: None,
                ethertype: EtherType::ARP,
            },
            network: stack::frame::Network::Arp(ArpRepr {
                operation: ArpOperation::Request,
                source_hardware_addr: B_MAC,
                source_protocol_addr: B_IP,
                target_hardware_addr: stack::wire::EthernetAddress([0; 6]),
                target_protocol_addr: target,
            }),
        };
        raw.peer.transmit(|b| {
            req.emit(b);
            req.buffer_len()
        });
        raw.peer.flush();
    }
    raw.iface.poll(ms(0));
    let mut replies = Vec::new();
    raw.peer.receive(8, |f| {
        if let Ok(stack::frame::Frame {
            network: stack::frame::Network::Arp(a),
            ..
        }) = parse_frame(f, Checksums::Verify)
        {
            replies.push(a);
        }
    });
    // Only the request for A's own address is answered.
    assert_eq!(replies.len(), 1);
    let reply = replies[0];
    assert_eq!(reply.operation, ArpOperation::Reply);
    assert_eq!(
        (reply.source_hardware_addr, reply.source_protocol_addr),
        (A_MAC, A_IP)
    );
    assert_eq!(
        (reply.target_hardware_addr, reply.target_protocol_addr),
        (B_MAC, B_IP)
    );
    assert_eq!(raw.iface.counters().arp_replies_sent, 1);
    // The request for B's address is not for A.
    assert_eq!(raw.iface.counters().not_for_us, 1);
}

#[test]
fn sack_recovery_follows_the_scoreboard_and_the_pipe() {
    let tcp = TcpConfig {
        timestamps: false,
        ..TcpConfig::default()
    };
    let mut raw = Raw::new(tcp);
    let (c, syn, _) = active_open(&mut raw, ms(1), true);
    let port = syn.src_port;
    let una = syn.seq.wrapping_add(1);
    raw.iface.send(c, &pattern(6000, 3)).unwrap();
    assert_eq!(raw.poll_at(ms(1)).len(), 6);
    // B got segments 2, 4, 5, 6 (of 1..6): holes at 0 and 2000.
    let dup = |blocks: &[(u32, u32)]| {
        let mut a = seg(80, port, ACK, 5001, una);
        let abs: Vec<_> = blocks
            .iter()
            .map(|(l, r)| (una.wrapping_add(*l), una.wrapping_add(*r)))
            .collect();
        a.options.sack_blocks = stack::wire::tcp::SackBlocks::new(&abs);
        a
    };
    raw.send(dup(&[(1000, 2000)]));
    raw.send(dup(&[(3000, 4000), (1000, 2000)]));
    raw.send(dup(&[(3000, 5000), (1000, 2000)]));
    // The third duplicate ACK: fast retransmit of the first hole.
    let out = raw.poll_at(ms(2));
    let firsts: Vec<_> = out.iter().map(|s| s.seq.wrapping_sub(una)).collect();
    assert_eq!(firsts, vec![0]);
    // One more duplicate ACK: the next hole the blocks reveal, not 1000.
    raw.send(dup(&[(3000, 6000), (1000, 2000)]));
    let out = raw.poll_at(ms(3));
    let seqs: Vec<_> = out.iter().map(|s| s.seq.wrapping_sub(una)).collect();
    assert_eq!(seqs, vec![2000]);
    assert_eq!(raw.iface.tcp_stats().fast_retransmits, 1);
    // RFC 6675 §5 step 4.2: ssthresh = cwnd = FlightSize / 2, no
    // inflation by the duplicates that followed.
    let cc = raw.iface.tcb(c).unwrap().congestion();
    assert_eq!((cc.window(), cc.ssthresh()), (3000, 3000));
    // More data queued: the two retransmissions are the pipe (2000, the
    // rest is SACKed), so one new segment fits (RFC 6675 NextSeg rule 2).
    raw.iface.send(c, &pattern(5000, 4)).unwrap();
    let out = raw.poll_at(ms(4));
    let seqs: Vec<_> = out.iter().map(|s| s.seq.wrapping_sub(una)).collect();
    assert_eq!(seqs, vec![6000]);
    // A partial ACK (the retransmitted 0..1000 arrived): the pipe is the
    // retransmitted 2000 and the new 6000, so one more new segment goes.
    let mut partial = seg(80, port, ACK, 5001, una.wrapping_add(2000));
    partial.options.sack_blocks =
        stack::wire::tcp::SackBlocks::new(&[(una.wrapping_add(3000), una.wrapping_add(6000))]);
    raw.send(partial);
    let out = raw.poll_at(ms(5));
    let seqs: Vec<_> = out.iter().map(|s| s.seq.wrapping_sub(una)).collect();
    assert_eq!(seqs, vec![7000]);
    // The full ACK of everything sent before recovery (6000) ends it:
    // cwnd = ssthresh, and sending follows the window again.
    raw.send(seg(80, port, ACK, 5001, una.wrapping_add(6000)));
    let out = raw.poll_at(ms(6));
    let cc = raw.iface.tcb(c).unwrap().congestion();
    assert!(!cc.in_fast_recovery());
    assert_eq!(cc.window(), 3000);
    let seqs: Vec<_> = out.iter().map(|s| s.seq.wrapping_sub(una)).collect();
    assert_eq!(seqs, vec![8000], "6000..8000 in flight, cwnd 3000");
}

#[test]
fn an_orphan_in_fin_wait_2_times_out() {
    let tcp = TcpConfig {
        fin_wait2_timeout: Duration::from_secs(5),
        ..TcpConfig::default()
    };
    let (mut raw, una) = opened_then_closed(tcp);
    // B acknowledges the FIN and never sends its own.
    raw.send(seg(40000, 80, ACK, 1001, una.wrapping_add(1)));
    assert!(raw.poll_at(ms(20)).is_empty());
    assert_eq!(raw.iface.count_in_state(State::FinWait2), 1);
    assert!(raw.poll_at(ms(5019)).is_empty());
    assert_eq!(raw.iface.count_in_state(State::FinWait2), 1);
    raw.poll_at(ms(5020));
    assert_eq!(raw.iface.count_in_state(State::FinWait2), 0);
    assert_eq!(raw.iface.sockets_in_use(), 1, "only the listener");
}

/// Runs A's timers until it sends something: when, and what.
fn next_sent(raw: &mut Raw) -> (Instant, Vec<Seg>) {
    for _ in 0..100 {
        let t = raw.iface.poll_at().expect("a timer runs");
        let out = raw.poll_at(t);
        if !out.is_empty() {
            return (t, out);
        }
    }
    panic!("A sent nothing in 100 timer runs");
}

#[test]
fn keepalive_probes_an_idle_connection_and_gives_up_on_silence() {
    let tcp = TcpConfig {
        keepalive: Some(Keepalive {
            idle: Duration::from_secs(10),
            interval: Duration::from_secs(1),
            probes: 3,
        }),
        ..TcpConfig::default()
    };
    let mut raw = Raw::new(tcp);
    let (s, iss) = passive_open(&mut raw);
    let una = iss.wrapping_add(1);
    // Nothing for 10 s after the peer was last heard (the final ACK of the
    // handshake, at 1 ms): then a probe, <SEQ=SND.UNA-1><ACK=RCV.NXT>, no
    // data (RFC 1122 §4.2.3.6, as Linux).
    let (t, out) = next_sent(&mut raw);
    assert_eq!(t, ms(10_001));
    let p = one(out);
    assert_eq!((p.flags, p.seq, p.ack), (ACK, iss, 1001));
    assert!(p.payload.is_empty());
    // The peer answers (an ACK of what it has): idle counts from there.
    raw.send(seg(40000, 80, ACK, 1001, una));
    assert!(raw.poll_at(ms(10_500)).is_empty());
    // Silence: probes at 20.5, 21.5 and 22.5 s; at 23.5 s the connection
    // is reset and fails with ETIMEDOUT.
    let mut probes = Vec::new();
    loop {
        let (t, out) = next_sent(&mut raw);
        let out = one(out);
        if raw.iface.state(s) == Ok(State::Closed) {
            assert!(out.flags.contains(RST), "{out:?}");
            assert_eq!(out.seq, una);
            assert_eq!(t, ms(23_500));
            break;
        }
        assert_eq!((out.flags, out.seq), (ACK, iss));
        probes.push(t.millis());
    }
    assert_eq!(probes, vec![20_500, 21_500, 22_500]);
    assert_eq!(raw.iface.error(s), Ok(Some(Error::TimedOut)));
    let stats = raw.iface.tcp_stats();
    assert_eq!((stats.keepalive_probes, stats.keepalive_timeouts), (4, 1));
}

#[test]
fn keepalive_is_off_by_default_and_waits_while_data_is_in_flight() {
    // Off: an idle connection has no timer at all.
    let mut raw = Raw::new(TcpConfig::default());
    let (s, _) = passive_open(&mut raw);
    for _ in 0..10 {
        let Some(t) = raw.iface.poll_at() else { break };
        assert!(raw.poll_at(t).is_empty(), "at {t:?}");
    }
    assert_eq!(raw.iface.poll_at(), None);
    // On for this socket only: data in flight holds the probes back (the
    // retransmission timer watches the peer then).
    let k = Keepalive {
        idle: Duration::from_secs(1),
        interval: Duration::from_secs(1),
        probes: 1,
    };
    raw.iface.set_keepalive(s, Some(k)).unwrap();
    raw.iface.send(s, b"hello").unwrap();
    let out = raw.poll_at(ms(0));
    assert_eq!(one(out).payload, b"hello");
    for t in [1_000, 2_000, 3_000] {
        for seg in raw.poll_at(ms(t)) {
            assert_eq!(seg.payload, b"hello", "at {t} ms only retransmissions");
        }
    }
    assert_eq!(raw.iface.tcp_stats().keepalive_probes, 0);
    assert_eq!(raw.iface.state(s), Ok(State::Established));
}

#[test]
fn a_small_window_waits_for_a_full_segment_or_the_override_timeout() {
    // RFC 9293 §3.8.6.2.1, sender side. No timestamps: 1000-byte segments.
    let tcp = TcpConfig {
        timestamps: false,
        ..TcpConfig::default()
    };
    let mut raw = Raw::new(tcp);
    let c = raw.iface.socket().unwrap();
    raw.iface.connect(c, sa(B_IP, 80)).unwrap();
    let syn = one(raw.poll_at(ms(0)));
    let una = syn.seq.wrapping_add(1);
    // B offers 4000 bytes (no scaling): Max(SND.WND) = 4000.
    let mut synack = seg(80, syn.src_port, SYN | ACK, 5000, una);
    synack.options.mss = Some(1000);
    synack.window_len = 4000;
    raw.send(synack);
    raw.poll_at(ms(1));
    raw.iface.send(c, &pattern(9000, 5)).unwrap();
    let out = raw.poll_at(ms(1));
    let lens: Vec<_> = out
        .iter()
        .filter(|s| !s.payload.is_empty())
        .map(|s| s.payload.len())
        .collect();
    assert_eq!(lens, vec![1000; 4]);
    // All acknowledged, but only 300 bytes of window: less than a segment
    // and less than half of 4000, with more queued: nothing goes.
    let ack = |at: u32, window: u16| {
        let mut a = seg(80, syn.src_port, ACK, 5001, una.wrapping_add(at));
        a.window_len = window;
        a
    };
    raw.send(ack(4000, 300));
    assert!(raw.poll_at(ms(2)).is_empty());
    // The override timeout (the persist timer, one RTO) sends what fits.
    let (_, out) = next_sent(&mut raw);
    let s = one(out);
    assert_eq!((s.seq.wrapping_sub(una), s.payload.len()), (4000, 300));
    // A window of 2500 after that: two full segments, then 500 bytes are
    // held back again.
    raw.send(ack(4300, 2500));
    let out = raw.poll_at(ms(1500));
    let sent: Vec<_> = out
        .iter()
        .map(|s| (s.seq.wrapping_sub(una), s.payload.len()))
        .collect();
    assert_eq!(sent, vec![(4300, 1000), (5300, 1000)]);
    // When all that is queued fits, it goes even if it is small.
    raw.send(ack(6300, 2700));
    let out = raw.poll_at(ms(1501));
    let sent: Vec<_> = out
        .iter()
        .map(|s| (s.seq.wrapping_sub(una), s.payload.len()))
        .collect();
    assert_eq!(sent, vec![(6300, 1000), (7300, 1000), (8300, 700)]);
}

#[test]
fn a_peer_that_asked_by_arp_gets_its_segments_at_its_mac_and_an_unknown_one_is_asked_first() {
    use stack::frame::{parse_frame, Frame, Network, Transport};
    use stack::phy::Device;
    use stack::wire::{ArpOperation, ArpRepr, Checksums, EtherType, EthernetAddress, EthernetRepr};
    let c_mac = EthernetAddress([0x02, 0, 0, 0, 0, 0x0c]);
    let c_ip = std::net::Ipv4Addr::new(198, 18, 0, 12);
    let mut raw = Raw::new(TcpConfig::default());
    listener(&mut raw.iface, A_IP, 80, 8);
    // C asks who has A's address (RFC 826: A learns C's MAC from it) ...
    let who_has = Frame {
        ethernet: EthernetRepr {
            src_addr: c_mac,
            dst_addr: EthernetAddress::BROADCAST,
            vlan: None,
            ethertype: EtherType::ARP,
        },
        network: Network::Arp(ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: c_mac,
            source_protocol_addr: c_ip,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: A_IP,
        }),
    };
    raw.put(who_has);
    // ... then C, B (a permanent neighbour) and D (which never asked)
    // each send a SYN. A learns nothing from a SYN: it asks who D is.
    let d_mac = EthernetAddress([0x02, 0, 0, 0, 0, 0x0d]);
    let d_ip = std::net::Ipv4Addr::new(198, 18, 0, 13);
    for (mac, ip, port) in [
        (c_mac, c_ip, 40001),
        (B_MAC, B_IP, 40002),
        (d_mac, d_ip, 40003),
    ] {
        raw.put(tcp_frame(mac, ip, seg(port, 80, SYN, 1000, 0)));
    }
    raw.iface.poll(ms(0));
    let drain = |raw: &mut Raw| {
        let mut syn_acks = Vec::new();
        let mut asked = Vec::new();
        raw.peer
            .receive(8, |f| match parse_frame(f, Checksums::Verify).unwrap() {
                Frame {
                    ethernet,
                    network: Network::Ipv4(ip, Transport::Tcp(t)),
                } => syn_acks.push((ip.dst_addr, t.dst_port, ethernet.dst_addr)),
                Frame {
                    ethernet,
                    network: Network::Arp(arp),
                } => asked.push((arp.operation, arp.target_protocol_addr, ethernet.dst_addr)),
                other => panic!("unexpected {other:?}"),
            });
        syn_acks.sort_by_key(|s| s.1);
        (syn_acks, asked)
    };
    let (syn_acks, asked) = drain(&mut raw);
    assert_eq!(
        syn_acks,
        vec![(c_ip, 40001, c_mac), (B_IP, 40002, B_MAC)],
        "C's at the MAC it told, B's at its permanent entry's, D's held"
    );
    assert_eq!(
        asked,
        vec![
            (ArpOperation::Reply, c_ip, c_mac),
            (ArpOperation::Request, d_ip, EthernetAddress::BROADCAST)
        ],
        "C's answer, and who has D's address?"
    );
    // D answers; the SYN-ACK that waited goes to the MAC D told.
    raw.put(Frame {
        ethernet: EthernetRepr {
            src_addr: d_mac,
            dst_addr: A_MAC,
            vlan: None,
            ethertype: EtherType::ARP,
        },
        network: Network::Arp(ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: d_mac,
            source_protocol_addr: d_ip,
            target_hardware_addr: A_MAC,
            target_protocol_addr: A_IP,
        }),
    });
    raw.iface.poll(ms(1));
    let (syn_acks, asked) = drain(&mut raw);
    assert_eq!(syn_acks, vec![(d_ip, 40003, d_mac)]);
    assert!(asked.is_empty());
    let c = raw.iface.counters();
    assert_eq!((c.arp_requests_sent, c.arp_pending_sent), (1, 1));
    assert_eq!(raw.iface.neighbour(d_ip), Some(d_mac));
}

/// A careful host's neighbours: once A knows C (learnt by ARP), a forged
/// ARP reply, a gratuitous ARP and a SYN from another MAC that all claim
/// C's address change nothing for C's connection; A re-validates C, and C's
/// answer at its own MAC keeps the entry.
#[test]
fn forged_arp_and_a_forged_syn_for_a_known_peer_change_nothing_for_its_connection() {
    use stack::frame::{parse_frame, Frame, Network, Transport};
    use stack::phy::Device;
    use stack::wire::{ArpOperation, ArpRepr, Checksums, EtherType, EthernetAddress, EthernetRepr};
    let c_mac = EthernetAddress([0x02, 0, 0, 0, 0, 0x0c]);
    let evil = EthernetAddress([0x02, 0, 0, 0, 0, 0x66]);
    let c_ip = std::net::Ipv4Addr::new(198, 18, 0, 12);
    let mut raw = Raw::new(TcpConfig::default());
    let l = listener(&mut raw.iface, A_IP, 80, 8);
    let arp = |op, mac: EthernetAddress, dst: EthernetAddress, target| Frame {
        ethernet: EthernetRepr {
            src_addr: mac,
            dst_addr: dst,
            vlan: None,
            ethertype: EtherType::ARP,
        },
        network: Network::Arp(ArpRepr {
            operation: op,
            source_hardware_addr: mac,
            source_protocol_addr: c_ip,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        }),
    };
    let tcp = |mac, t| tcp_frame(mac, c_ip, t);
    // (kind, to-ip, to-port, to-mac, seq, ack) of what A sent
    let drain = |raw: &mut Raw| {
        let mut out = Vec::new();
        raw.peer
            .receive(16, |f| match parse_frame(f, Checksums::Verify).unwrap() {
                Frame {
                    ethernet,
                    network: Network::Ipv4(ip, Transport::Tcp(t)),
                } => out.push((
                    "tcp",
                    ip.dst_addr,
                    t.dst_port,
                    ethernet.dst_addr,
                    t.seq_number,
                    t.ack_number,
                )),
                Frame {
                    ethernet,
                    network: Network::Arp(a),
                } => out.push((
                    if a.operation == ArpOperation::Request {
                        "arp-request"
                    } else {
                        "arp-reply"
                    },
                    a.target_protocol_addr,
                    0,
                    ethernet.dst_addr,
                    0,
                    0,
                )),
                other => panic!("unexpected {other:?}"),
            });
        out
    };
    // C asks for A (A learns C), opens a connection and completes it.
    raw.put(arp(
        ArpOperation::Request,
        c_mac,
        EthernetAddress::BROADCAST,
        A_IP,
    ));
    raw.put(tcp(c_mac, seg(40001, 80, SYN, 1000, 0)));
    raw.iface.poll(ms(0));
    let sent = drain(&mut raw);
    let syn_ack = sent.iter().find(|s| s.0 == "tcp").expect("a SYN-ACK");
    assert_eq!(syn_ack.3, c_mac);
    let iss = syn_ack.4;
    raw.put(tcp(c_mac, seg(40001, 80, ACK, 1001, iss.wrapping_add(1))));
    raw.iface.poll(ms(1));
    let (s, _) = raw.iface.accept(l).expect("C's connection");
    assert_eq!(raw.iface.neighbour(c_ip), Some(c_mac));

    // The forgeries: a reply for us, a gratuitous ARP, a SYN from another MAC.
    raw.put(arp(ArpOperation::Reply, evil, A_MAC, A_IP));
    raw.put(arp(
        ArpOperation::Request,
        evil,
        EthernetAddress::BROADCAST,
        c_ip,
    ));
    raw.put(tcp(evil, seg(40002, 80, SYN, 5000, 0)));
    raw.iface.poll(ms(2));
    assert_eq!(raw.iface.neighbour(c_ip), Some(c_mac), "the entry stands");
    let c = raw.iface.counters();
    assert_eq!(c.arp_conflicts, 2, "{c:?}");
    // everything A sent since went to C's own MAC: the SYN-ACK for the
    // forged SYN too (an attacker learns nothing from it), and the
    // re-validation of C that the conflict asked for
    let sent = drain(&mut raw);
    assert!(
        sent.iter().any(|f| f.0 == "arp-request" && f.1 == c_ip),
        "C is asked again: {sent:?}"
    );
    for f in &sent {
        let to_c = f.3 == c_mac || (f.0 == "arp-request" && f.3 == EthernetAddress::BROADCAST);
        assert!(to_c, "nothing to the forged MAC: {sent:?}");
    }

    // C's connection goes on: its data is acknowledged at its MAC.
    raw.iface.send(s, b"still C's").unwrap();
    raw.put(tcp(c_mac, seg(40001, 80, ACK, 1001, iss.wrapping_add(1))));
    raw.iface.poll(ms(3));
    let sent = drain(&mut raw);
    let data = sent
        .iter()
        .find(|f| f.0 == "tcp" && f.2 == 40001)
        .expect("A's data for C");
    assert_eq!(data.3, c_mac);
    // C answers the re-validation at its own MAC: the entry is kept and no
    // further request goes out
    raw.put(arp(ArpOperation::Reply, c_mac, A_MAC, A_IP));
    raw.iface.poll(ms(4));
    raw.iface.send(s, b"!").unwrap();
    raw.iface.poll(ms(300));
    let sent = drain(&mut raw);
    assert!(sent.iter().all(|f| f.0 != "arp-request"), "{sent:?}");
    assert_eq!(raw.iface.neighbour(c_ip), Some(c_mac));
    assert_eq!(raw.iface.state(s), Ok(State::Established));
}

/// An interface that trusts transport checksums (a veth peer's partial
/// ones) still verifies every IPv4 header checksum, and counts what it
/// trusted; one that verifies drops a bad TCP checksum.
#[test]
fn the_ipv4_header_checksum_is_always_verified_and_trusted_checksums_are_counted() {
    use stack::phy::Device;
    use stack::wire::Checksums;
    let mut raw = Raw::build(TcpConfig::default(), |c| c.checksums = Checksums::Trust);
    listener(&mut raw.iface, A_IP, 80, 8);
    let frame = tcp_frame(B_MAC, B_IP, seg(40001, 80, SYN, 1000, 0));
    let mut bytes = vec![0u8; frame.buffer_len()];
    frame.emit(&mut bytes);
    let mangled = |at: usize| {
        let mut b = bytes.clone();
        b[at] ^= 0x40;
        b
    };
    // 14 + 10: the IPv4 header checksum; 14 + 20 + 16: the TCP checksum
    let put = |raw: &mut Raw, b: &[u8]| {
        raw.peer.transmit(|buf| {
            buf[..b.len()].copy_from_slice(b);
            b.len()
        });
        raw.peer.flush();
    };
    put(&mut raw, &mangled(14 + 10));
    raw.iface.poll(ms(0));
    let c = raw.iface.counters();
    assert_eq!(
        c.parse.dropped(),
        1,
        "a bad header checksum is dropped: {c:?}"
    );
    assert_eq!((c.tcp_segments, c.checksums_trusted), (0, 0));
    assert!(raw.take().is_empty());
    // a bad TCP checksum is trusted (and counted), the SYN answered
    put(&mut raw, &mangled(14 + 20 + 16));
    raw.iface.poll(ms(1));
    let c = raw.iface.counters();
    assert_eq!((c.tcp_segments, c.checksums_trusted), (1, 1), "{c:?}");
    assert_eq!(raw.take().len(), 1, "a SYN-ACK");

    // verifying: the same bad TCP checksum is dropped
    let mut raw = Raw::new(TcpConfig::default());
    listener(&mut raw.iface, A_IP, 80, 8);
    put(&mut raw, &mangled(14 + 20 + 16));
    raw.iface.poll(ms(0));
    let c = raw.iface.counters();
    assert_eq!(
        (c.parse.dropped(), c.tcp_segments, c.checksums_trusted),
        (1, 0, 0)
    );
    assert!(raw.take().is_empty());
}
