//! The state machine against arbitrary segments: whatever a peer sends, in
//! any state, nothing panics, nothing is delivered out of order, and the
//! connection's invariants hold.

mod common;

use common::*;
use proptest::prelude::*;
use stack::tcp::{State, TcpConfig};
use stack::time::Instant;
use stack::wire::{TcpFlags, TcpOptions, Timestamps};

/// One segment from the peer, relative to what A expects.
#[derive(Debug, Clone)]
struct Arbitrary {
    flags: u8,
    /// Offset from the sequence number A expects next (small or huge).
    seq_off: i64,
    /// Offset from A's SND.UNA.
    ack_off: i64,
    window: u16,
    len: usize,
    tsval: Option<u32>,
    at_ms: u64,
}

fn segment() -> impl Strategy<Value = Arbitrary> {
    (
        any::<u8>(),
        prop_oneof![-3000i64..3000, any::<i32>().prop_map(i64::from)],
        prop_oneof![-3000i64..3000, any::<i32>().prop_map(i64::from)],
        any::<u16>(),
        0usize..1400,
        proptest::option::of(any::<u32>()),
        0u64..3000,
    )
        .prop_map(
            |(flags, seq_off, ack_off, window, len, tsval, at_ms)| Arbitrary {
                flags,
                seq_off,
                ack_off,
                window,
                len,
                tsval,
                at_ms,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn no_segment_sequence_breaks_a_connection(
        segs in proptest::collection::vec(segment(), 1..40),
        close_first in any::<bool>(),
    ) {
        let mut raw = Raw::new(TcpConfig::default());
        let l = listener(&mut raw.iface, A_IP, 80, 8);
        let mut syn = seg(40000, 80, TcpFlags::SYN, 1000, 0);
        syn.options.timestamps = Some(Timestamps { tsval: 1, tsecr: 0 });
        raw.send(syn);
        let synack = raw.poll_at(Instant::from_millis(0)).remove(0);
        let iss = synack.seq;
        let mut ack = seg(40000, 80, TcpFlags::ACK, 1001, iss.wrapping_add(1));
        ack.options.timestamps = Some(Timestamps { tsval: 2, tsecr: 0 });
        raw.send(ack);
        raw.poll_at(Instant::from_millis(1));
        let (s, _) = raw.iface.accept(l).unwrap();
        raw.iface.send(s, &pattern(5000, 1)).unwrap();
        if close_first {
            raw.iface.close(s).unwrap();
        }
        let payload = pattern(1500, 2);
        let mut rcv_nxt: u32 = 1001;
        let mut delivered = Vec::new();
        let mut now = 1;
        for a in &segs {
            now += a.at_ms;
            let seq = (i64::from(rcv_nxt) + a.seq_off) as u32;
            let ackn = (i64::from(iss.wrapping_add(1)) + a.ack_off) as u32;
            let mut t = seg(40000, 80, TcpFlags(a.flags), seq, ackn);
            t.window_len = a.window;
            t.payload = &payload[..a.len];
            t.options = TcpOptions {
                timestamps: a.tsval.map(|tsval| Timestamps { tsval, tsecr: 0 }),
                ..TcpOptions::default()
            };
            if t.flags.is_illegal() {
                continue;
            }
            raw.send(t);
            let out = raw.poll_at(Instant::from_millis(now));
            // Once the connection is gone, a SYN may open another on the
            // same 4-tuple, with its own numbers: stop comparing.
            if !matches!(raw.iface.state(s), Ok(st) if st != State::Closed) {
                continue;
            }
            for out in out {
                // What A acknowledges never goes backwards in its stream,
                // except in a reset.
                if out.flags.contains(TcpFlags::ACK) && !out.flags.contains(TcpFlags::RST) {
                    prop_assert!((out.ack.wrapping_sub(rcv_nxt) as i32) >= 0 || out.ack == 0);
                    rcv_nxt = rcv_nxt.max(out.ack);
                }
            }
            if !close_first {
                let mut buf = [0u8; 2048];
                while let Ok(n) = raw.iface.recv(s, &mut buf) {
                    if n == 0 { break; }
                    delivered.extend_from_slice(&buf[..n]);
                }
            }
        }
        // No more was delivered than A acknowledged.
        prop_assert!(delivered.len() <= rcv_nxt.wrapping_sub(1001) as usize);
        // Time runs out every timer; the connection ends somewhere legal.
        for t in [60_000u64, 200_000, 400_000] {
            raw.poll_at(Instant::from_millis(now + t));
        }
        let st = raw.iface.state(s);
        prop_assert!(st.is_ok() || close_first);
        if let Ok(st) = st {
            prop_assert!(st != State::Listen);
        }
    }
}
