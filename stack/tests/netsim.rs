//! A seeded lossy link: 10 MB transfers arrive byte-exact, within a stated
//! bound of simulated time (about 5x what was measured), whatever the link
//! does to the frames. The link's one-way delay is one 100 µs step; the
//! faults hit both directions (data and ACKs).

mod common;

use core::time::Duration;

use common::*;
use stack::phy::Faults;
use stack::tcp::{Algorithm, State, TcpConfig};
use stack::{Shutdown, SocketHandle};

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
    // Measured: 69 ms.
    transfer(loss(0.01), 2, 10 << 20, Duration::from_secs(1));
}

#[test]
fn loss_5_percent_10_mb() {
    // Measured: 5.7 s.
    transfer(loss(0.05), 3, 10 << 20, Duration::from_secs(60));
}

#[test]
fn loss_20_percent_10_mb() {
    // Measured: 135 s: at this loss rate retransmissions are often lost
    // too, and each such loss costs a timeout (200 ms or more).
    transfer(loss(0.20), 4, 10 << 20, Duration::from_secs(700));
}

#[test]
fn reordering_duplication_corruption_10_mb() {
    // Measured: 0.47 s.
    transfer(mangled(0.0), 5, 10 << 20, Duration::from_secs(10));
}

#[test]
fn everything_at_once_10_mb() {
    // Measured: 3.9 s.
    transfer(mangled(0.02), 6, 10 << 20, Duration::from_secs(60));
}

#[test]
fn cubic_loss_1_and_5_percent_10_mb() {
    // Measured: 0.25 s (CUBIC grows by the clock, and this link's RTT is
    // 200 µs: its Reno-friendly region sets the pace) and 4.3 s.
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

/// One end of [`duplex`]: what it sent and read so far.
#[derive(Default)]
struct End {
    sent: usize,
    shut: bool,
    got: Vec<u8>,
    eof: bool,
}

impl End {
    /// Writes what `h` takes of `data` (then shuts the write side) and
    /// reads what arrived.
    fn step(&mut self, iface: &mut Iface, h: SocketHandle, data: &[u8], buf: &mut [u8]) {
        if self.sent < data.len() {
            self.sent += iface.send(h, &data[self.sent..]).unwrap_or(0);
        } else if !self.shut {
            iface.shutdown(h, Shutdown::Write).unwrap();
            self.shut = true;
        }
        while !self.eof {
            match iface.recv(h, buf) {
                Ok(0) => self.eof = true,
                Ok(k) => self.got.extend_from_slice(&buf[..k]),
                Err(_) => break,
            }
        }
    }
}

/// Both ends send `bytes` at once over the faulty link, shut their write
/// side, and read the other's to the end. Each side then has data waiting
/// behind holes while it sends, so its full-sized segments carry SACK
/// blocks beside the data: they must still fit the MTU (a device drops an
/// oversized frame without a trace, and the connection stalls for good).
fn duplex(faults: Faults, seed: u64, bytes: usize, bound: Duration) {
    let tcp = TcpConfig {
        rx_buffer: 256 * 1024,
        tx_buffer: 256 * 1024,
        time_wait: Duration::from_secs(1),
        ..TcpConfig::default()
    };
    let mut net = Net::with_faults(tcp, faults, seed);
    let l = listener(&mut net.b, B_IP, 80, 4);
    let c = net.a.socket().unwrap();
    net.a.connect(c, sa(B_IP, 80)).unwrap();
    let data_a = pattern(bytes, seed);
    let data_b = pattern(bytes, seed ^ 0xb);
    let (mut a, mut b) = (End::default(), End::default());
    let mut server = None;
    let mut buf = vec![0u8; 64 * 1024];
    let start = net.now;
    let ok = net.run_until(bound, |n| {
        if server.is_none() {
            server = n.b.accept(l).ok().map(|(s, _)| s);
        }
        a.step(&mut n.a, c, &data_a, &mut buf);
        let Some(s) = server else {
            return false;
        };
        b.step(&mut n.b, s, &data_b, &mut buf);
        a.eof && b.eof
    });
    let took = net.now - start;
    eprintln!(
        "duplex {faults:?} {bytes} B each way: {took:?} simulated; A {:?}; B {:?}",
        net.a.tcp_stats(),
        net.b.tcp_stats()
    );
    assert!(
        ok,
        "{faults:?} seed {seed}: A got {} and B got {} of {bytes} bytes after {took:?}; A {:?} B {:?}",
        a.got.len(),
        b.got.len(),
        net.a.tcp_stats(),
        net.b.tcp_stats()
    );
    assert!(b.got == data_a, "A -> B: bytes differ");
    assert!(a.got == data_b, "B -> A: bytes differ");
    assert_eq!(net.a.device().inner().dropped(), 0, "A's link overflowed");
    assert_eq!(net.b.device().inner().dropped(), 0, "B's link overflowed");
}

#[test]
fn duplex_loss_and_reordering_4_mb_each_way() {
    // Measured: 1.4 s of simulated time.
    let faults = Faults {
        loss: 0.02,
        reorder: 0.25,
        ..Faults::default()
    };
    duplex(faults, 7, 4 << 20, Duration::from_secs(60));
}
