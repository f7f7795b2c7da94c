//! A seeded lossy link: 10 MB transfers (2 MB at 20% loss) arrive byte-exact, within a stated
//! bound of simulated time (about 5x what was measured), whatever the link
//! does to the frames. The link's one-way delay is one 100 µs step; the
//! faults hit both directions (data and ACKs).

mod common;

use core::time::Duration;

use common::*;
use stack::phy::Faults;
use stack::tcp::{Algorithm, State, TcpConfig};

/// Open a connection A -> B:80 over the faulty link, send `bytes` from A,
/// close, and check what B read. Returns the simulated time it took.
fn transfer(faults: Faults, seed: u64, bytes: usize, bound: Duration) -> Duration {
    transfer_with(faults, seed, bytes, bound, Algorithm::NewReno)
}

/// [`transfer`] with the given congestion control.
fn transfer_with(
    faults: Faults,
    seed: u64,
    bytes: usize,
    bound: Duration,
    congestion: Algorithm,
) -> Duration {
    let tcp = TcpConfig {
        rx_buffer: 256 * 1024,
        tx_buffer: 256 * 1024,
        time_wait: Duration::from_secs(1),
        congestion,
        ..TcpConfig::default()
    };
    let mut net = Net::with_faults(tcp, faults, seed);
    let l = listener(&mut net.b, B_IP, 80, 4);
    let c = net.a.socket().unwrap();
    net.a.connect(c, sa(B_IP, 80)).unwrap();
    let data = pattern(bytes, seed);
    let mut sent = 0;
    let mut closed = false;
    let mut server = None;
    let mut got = Vec::with_capacity(bytes);
    let mut eof = false;
    let mut buf = vec![0u8; 64 * 1024];
    let start = net.now;
    let ok = net.run_until(bound, |n| {
        if sent < data.len() {
            sent += n.a.send(c, &data[sent..]).unwrap_or(0);
        } else if !closed {
            n.a.close(c).unwrap();
            closed = true;
        }
        if server.is_none() {
            server = n.b.accept(l).ok().map(|(s, _)| s);
        }
        if let Some(s) = server {
            loop {
                match n.b.recv(s, &mut buf) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(k) => got.extend_from_slice(&buf[..k]),
                    Err(_) => break,
                }
            }
        }
        eof
    });
    let took = net.now - start;
    eprintln!(
        "{faults:?} {bytes} B: {took:?} simulated; A {:?}",
        net.a.tcp_stats()
    );
    let (fa, fb) = (net.a.device().stats(), net.b.device().stats());
    assert!(
        ok,
        "{faults:?} seed {seed}: {} of {bytes} bytes after {took:?}; A {:?} B {:?}; faults {fa:?} {fb:?}",
        got.len(),
        net.a.tcp_stats(),
        net.b.tcp_stats()
    );
    assert!(got == data, "{faults:?} seed {seed}: bytes differ");
    // The connection then closes cleanly on both sides.
    let s = server.unwrap();
    net.b.close(s).unwrap();
    let closed = net.run_until(Duration::from_secs(120), |n| {
        n.a.sockets_in_use() == 0 && n.b.count_in_state(State::LastAck) == 0
    });
    assert!(closed, "{faults:?}: close did not finish");
    took
}

fn loss(p: f64) -> Faults {
    Faults {
        loss: p,
        ..Faults::default()
    }
}

/// 2% duplicated, 5% reordered, 1% corrupted, and `loss` lost.
fn mangled(loss: f64) -> Faults {
    Faults {
        loss,
        duplicate: 0.02,
        reorder: 0.05,
        corrupt: 0.01,
    }
}

#[test]
fn clean_link_10_mb() {
    // Measured: 12 ms of simulated time.
    transfer(Faults::default(), 1, 10 << 20, Duration::from_secs(1));
}

#[test]
fn loss_1_percent_10_mb() {
    // Measured: 58 ms.
    transfer(loss(0.01), 2, 10 << 20, Duration::from_secs(1));
}

#[test]
fn loss_5_percent_10_mb() {
    // Measured: 9.2 s.
    transfer(loss(0.05), 3, 10 << 20, Duration::from_secs(60));
}

#[test]
fn loss_20_percent_2_mb() {
    // Measured: 52 s: at this loss rate retransmissions are often lost
    // too, and each such loss costs a timeout (200 ms or more).
    transfer(loss(0.20), 4, 2 << 20, Duration::from_secs(300));
}

#[test]
fn reordering_duplication_corruption_10_mb() {
    // Measured: 1.2 s.
    transfer(mangled(0.0), 5, 10 << 20, Duration::from_secs(10));
}

#[test]
fn everything_at_once_10_mb() {
    // Measured: 6.5 s.
    transfer(mangled(0.02), 6, 10 << 20, Duration::from_secs(60));
}

#[test]
fn cubic_loss_1_and_5_percent_10_mb() {
    // Measured: 0.26 s (CUBIC grows by the clock, and this link's RTT is
    // 200 µs: its Reno-friendly region sets the pace) and 8.0 s.
    transfer_with(
        loss(0.01),
        2,
        10 << 20,
        Duration::from_secs(2),
        Algorithm::Cubic,
    );
    transfer_with(
        loss(0.05),
        3,
        10 << 20,
        Duration::from_secs(60),
        Algorithm::Cubic,
    );
}
