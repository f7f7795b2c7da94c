//! Bulk TCP between two interfaces in memory, on one thread: this stack and
//! smoltcp moving the same bytes the same way, side by side.
//!
//! Each stack gets two Ethernet interfaces (198.18.0.1 and .2) joined by an
//! in-memory link (its own: `phy::Loopback` here, a queue of reused frame
//! buffers for smoltcp), 256 KiB socket buffers each way, every TCP and
//! IPv4 checksum computed and verified, and one connection over which the
//! client sends a counting pattern (byte k of the stream is k mod 251) as
//! fast as the link takes it; the server reads and checks every byte. One
//! poll of each interface per step, the real clock. Four ways:
//!
//! - `bypass`: this stack's copying verbs (`send(h, &[u8])`, `recv(h, &mut
//!   [u8])`);
//! - `bypass in place`: its in-place verbs (`send_with(h, |room| ..)`,
//!   `recv_stream_with(h, |data| ..)`), the same copies as smoltcp's
//!   closures;
//! - `smoltcp copy`: smoltcp's copying verbs (`send_slice`, `recv_slice`),
//!   the same copies as ours;
//! - `smoltcp`: smoltcp's closures (`send(|buf| ..)`, `recv(|data| ..)`),
//!   which let the application work in the socket's rings.
//!
//! The four alternate, round after round, at MTU 1500 and 9000; the table
//! gives each one's median Gbit/s of goodput on this thread [min, max] and
//! the ratios of the medians. `cargo bench -p stack --bench loopback [--
//! SECONDS ROUNDS]` (default 2 s a measurement, 3 rounds); `-- only WAY
//! BYTES MTU` runs one way (`bypass`, `bypass-in-place`, `smoltcp-copy`,
//! `smoltcp`) for a
//! number of bytes, for `scripts/callgrind-loopback.sh`.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant as WallClock};

use stack::iface::{Interface, InterfaceConfig};
use stack::phy::Loopback;
use stack::tcp::TcpConfig;
use stack::time::Instant;
use stack::wire::EthernetAddress;

const A_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const A_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const B_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const PORT: u16 = 5001;
const BUFFER: usize = 256 * 1024;
/// Frames each direction of a link holds.
const QUEUE: usize = 1024;
const PERIOD: usize = 251;

/// The pattern's bytes from stream offset `at` on, `len` of them (the
/// buffer repeats the period, so any window is one slice).
fn pattern_at(pat: &[u8], at: u64, len: usize) -> &[u8] {
    let from = (at % PERIOD as u64) as usize;
    &pat[from..from + len]
}

/// Whether `data` is the pattern from offset `at` (a memcmp against the
/// pattern: checking must not be what limits the figure).
fn checks(pat: &[u8], data: &[u8], at: u64) -> bool {
    data == pattern_at(pat, at, data.len())
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len + PERIOD).map(|i| (i % PERIOD) as u8).collect()
}

/// When a measurement ends: after so long, or (under callgrind, where
/// instructions are counted, not time) after so many bytes.
#[derive(Clone, Copy)]
enum Stop {
    After(f64),
    Bytes(u64),
}

impl Stop {
    fn done(self, start: WallClock, got: u64) -> bool {
        match self {
            Stop::After(secs) => start.elapsed().as_secs_f64() >= secs,
            Stop::Bytes(n) => got >= n,
        }
    }
}

/// Steps of one measurement, until its stop.
struct Meter {
    stop: Stop,
    start: WallClock,
    steps: u32,
}

impl Meter {
    fn new(stop: Stop) -> Meter {
        Meter {
            stop,
            start: WallClock::now(),
            steps: 0,
        }
    }

    /// One step done, `got` bytes received so far: whether to stop (the
    /// clock is read every 64 steps).
    fn step(&mut self, got: u64) -> bool {
        self.steps += 1;
        self.steps % 64 == 0 && self.stop.done(self.start, got)
    }

    fn moved(&self, got: u64) -> Moved {
        Moved {
            bytes: got,
            secs: self.start.elapsed().as_secs_f64(),
        }
    }
}

/// What one measurement moved.
struct Moved {
    bytes: u64,
    secs: f64,
}

impl Moved {
    fn gbps(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.secs / 1e9
    }
}

fn bypass(mtu: usize, stop: Stop, in_place: bool) -> Moved {
    let (da, db) = Loopback::pair(mtu, QUEUE);
    let tcp = TcpConfig {
        rx_buffer: BUFFER,
        tx_buffer: BUFFER,
        ..TcpConfig::default()
    };
    let cfg = |mac: [u8; 6], ip: Ipv4Addr| {
        let mut c = InterfaceConfig::new(EthernetAddress(mac), ip, 24, [1, 2, 3, 4], [5, 6, 7, 8]);
        c.tcp = tcp;
        c
    };
    let mut a = Interface::new(da, cfg(A_MAC, A_IP));
    let mut b = Interface::new(db, cfg(B_MAC, B_IP));
    assert!(a.set_permanent_neighbour(B_IP, EthernetAddress(B_MAC)));
    assert!(b.set_permanent_neighbour(A_IP, EthernetAddress(A_MAC)));
    let l = b.socket().unwrap();
    b.bind(l, SocketAddrV4::new(B_IP, PORT)).unwrap();
    b.listen(l, 1).unwrap();
    let c = a.socket().unwrap();
    a.connect(c, SocketAddrV4::new(B_IP, PORT)).unwrap();
    let clock = WallClock::now();
    let now = || Instant::from_micros(clock.elapsed().as_micros() as u64);
    let server = loop {
        a.poll(now());
        b.poll(now());
        if let Ok((s, _)) = b.accept(l) {
            break s;
        }
        assert!(clock.elapsed() < Duration::from_secs(5), "no handshake");
    };
    let pat = pattern(BUFFER);
    let mut buf = vec![0u8; 64 * 1024];
    let (mut sent, mut got) = (0u64, 0u64);
    let mut meter = Meter::new(stop);
    loop {
        loop {
            let r = if in_place {
                a.send_with(c, |room| {
                    let n = room.len();
                    room.copy_from_slice(pattern_at(&pat, sent, n));
                    n
                })
            } else {
                a.send(c, pattern_at(&pat, sent, 64 * 1024))
            };
            match r {
                Ok(n) if n > 0 => sent += n as u64,
                _ => break,
            }
        }
        a.poll(now());
        b.poll(now());
        loop {
            let r = if in_place {
                b.recv_stream_with(server, |data| {
                    assert!(checks(&pat, data, got), "bypass: bytes differ at {got}");
                    data.len()
                })
            } else {
                b.recv(server, &mut buf).inspect(|&n| {
                    assert!(
                        checks(&pat, &buf[..n], got),
                        "bypass: bytes differ at {got}"
                    );
                })
            };
            match r {
                Ok(n) if n > 0 => got += n as u64,
                _ => break,
            }
        }
        if meter.step(got) {
            break;
        }
    }
    meter.moved(got)
}

/// smoltcp's side: a link of two frame queues and a pool of reused frame
/// buffers (no allocation once warm, like `phy::Loopback`).
mod smol {
    use super::*;
    use smoltcp::iface::{Config, Interface, SocketSet};
    use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
    use smoltcp::socket::tcp;
    use smoltcp::time::Instant as SmolInstant;
    use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

    /// Frames in flight (each buffer a full-sized frame, and its length),
    /// or idle in the pool.
    type Queue = Rc<RefCell<VecDeque<(Vec<u8>, usize)>>>;

    pub struct End {
        rx: Queue,
        tx: Queue,
        pool: Queue,
        mtu: usize,
    }

    pub struct Rx {
        frame: (Vec<u8>, usize),
        pool: Queue,
    }

    pub struct Tx<'a> {
        end: &'a mut End,
    }

    impl phy::RxToken for Rx {
        fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
            let r = f(&self.frame.0[..self.frame.1]);
            self.pool.borrow_mut().push_back(self.frame);
            r
        }
    }

    impl phy::TxToken for Tx<'_> {
        fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
            let full = self.end.mtu + 14;
            let (mut frame, _) = self.end.pool.borrow_mut().pop_front().unwrap_or_default();
            if frame.len() < full.max(len) {
                // once per buffer: no zeroing per frame
                frame.resize(full.max(len), 0);
            }
            let r = f(&mut frame[..len]);
            self.end.tx.borrow_mut().push_back((frame, len));
            r
        }
    }

    impl Device for End {
        type RxToken<'a> = Rx;
        type TxToken<'a> = Tx<'a>;

        fn receive(&mut self, _: SmolInstant) -> Option<(Rx, Tx<'_>)> {
            let frame = self.rx.borrow_mut().pop_front()?;
            let pool = Rc::clone(&self.pool);
            Some((Rx { frame, pool }, Tx { end: self }))
        }

        fn transmit(&mut self, _: SmolInstant) -> Option<Tx<'_>> {
            let room = self.tx.borrow().len() < QUEUE;
            room.then_some(Tx { end: self })
        }

        fn capabilities(&self) -> DeviceCapabilities {
            let mut caps = DeviceCapabilities::default();
            caps.medium = Medium::Ethernet;
            // smoltcp counts the Ethernet header in the MTU
            caps.max_transmission_unit = self.mtu + 14;
            caps
        }
    }

    fn iface(dev: &mut End, mac: [u8; 6], ip: Ipv4Addr) -> Interface {
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        config.random_seed = u64::from(ip.to_bits());
        let mut i = Interface::new(config, dev, SmolInstant::ZERO);
        i.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::Ipv4(ip), 24)).unwrap();
        });
        i
    }

    fn socket() -> tcp::Socket<'static> {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; BUFFER]),
            tcp::SocketBuffer::new(vec![0; BUFFER]),
        )
    }

    pub fn run(mtu: usize, stop: Stop, closures: bool) -> Moved {
        let ab: Queue = Rc::default();
        let ba: Queue = Rc::default();
        let pool: Queue = Rc::default();
        let mut da = End {
            rx: Rc::clone(&ba),
            tx: Rc::clone(&ab),
            pool: Rc::clone(&pool),
            mtu,
        };
        let mut db = End {
            rx: ab,
            tx: ba,
            pool,
            mtu,
        };
        let mut ia = iface(&mut da, A_MAC, A_IP);
        let mut ib = iface(&mut db, B_MAC, B_IP);
        let (mut sa, mut sb) = (SocketSet::new(vec![]), SocketSet::new(vec![]));
        let mut server = socket();
        server.listen(PORT).unwrap();
        let hs = sb.add(server);
        let hc = sa.add(socket());
        let clock = WallClock::now();
        let now = || SmolInstant::from_micros(clock.elapsed().as_micros() as i64);
        sa.get_mut::<tcp::Socket>(hc)
            .connect(ia.context(), (IpAddress::Ipv4(B_IP), PORT), 49152)
            .unwrap();
        while !sb.get::<tcp::Socket>(hs).may_recv() || !sa.get::<tcp::Socket>(hc).may_send() {
            ia.poll(now(), &mut da, &mut sa);
            ib.poll(now(), &mut db, &mut sb);
            assert!(clock.elapsed() < Duration::from_secs(5), "no handshake");
        }
        let pat = pattern(BUFFER);
        let mut buf = vec![0u8; 64 * 1024];
        let (mut sent, mut got) = (0u64, 0u64);
        let mut meter = Meter::new(stop);
        loop {
            let c = sa.get_mut::<tcp::Socket>(hc);
            while c.can_send() {
                let n = if closures {
                    c.send(|room| {
                        let n = room.len();
                        room.copy_from_slice(pattern_at(&pat, sent, n));
                        (n, n)
                    })
                    .unwrap()
                } else {
                    c.send_slice(pattern_at(&pat, sent, 64 * 1024)).unwrap()
                };
                if n == 0 {
                    break;
                }
                sent += n as u64;
            }
            ia.poll(now(), &mut da, &mut sa);
            ib.poll(now(), &mut db, &mut sb);
            let s = sb.get_mut::<tcp::Socket>(hs);
            while s.can_recv() {
                let n = if closures {
                    s.recv(|data| {
                        assert!(checks(&pat, data, got), "smoltcp: bytes differ at {got}");
                        (data.len(), data.len())
                    })
                    .unwrap()
                } else {
                    let n = s.recv_slice(&mut buf).unwrap();
                    assert!(
                        checks(&pat, &buf[..n], got),
                        "smoltcp: bytes differ at {got}"
                    );
                    n
                };
                if n == 0 {
                    break;
                }
                got += n as u64;
            }
            if meter.step(got) {
                break;
            }
        }
        meter.moved(got)
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    // `only WAY BYTES MTU`: one way alone, for a fixed number of bytes
    // (instructions per byte under callgrind: scripts/callgrind-loopback.sh)
    if args.first().map(String::as_str) == Some("only") {
        let way = args.get(1).map_or("bypass", String::as_str);
        let bytes: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64 << 20);
        let mtu: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1500);
        let stop = Stop::Bytes(bytes);
        let m = match way {
            "bypass" => bypass(mtu, stop, false),
            "bypass-in-place" => bypass(mtu, stop, true),
            "smoltcp-copy" => smol::run(mtu, stop, false),
            "smoltcp" => smol::run(mtu, stop, true),
            other => {
                panic!("`{other}`: the ways are bypass, bypass-in-place, smoltcp-copy, smoltcp")
            }
        };
        println!("{way} moved {} bytes", m.bytes);
        return;
    }
    let secs: f64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let rounds: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let stop = Stop::After(secs);
    println!(
        "bulk TCP in memory, one thread, checksums on, every byte checked: Gbit/s, median of {rounds} rounds of {secs} s [min, max]\n"
    );
    println!(
        "| MTU | bypass | bypass in place | smoltcp copy | smoltcp | bypass / smoltcp copy | bypass in place / smoltcp |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for mtu in [1500usize, 9000] {
        let mut figs: [Vec<f64>; 4] = Default::default();
        for _ in 0..rounds {
            figs[0].push(bypass(mtu, stop, false).gbps());
            figs[1].push(bypass(mtu, stop, true).gbps());
            figs[2].push(smol::run(mtu, stop, false).gbps());
            figs[3].push(smol::run(mtu, stop, true).gbps());
        }
        let cell = |v: &mut Vec<f64>| {
            let (lo, hi) = (
                v.iter().copied().fold(f64::INFINITY, f64::min),
                v.iter().copied().fold(0.0, f64::max),
            );
            let m = median(v);
            (m, format!("{m:.1} [{lo:.1}, {hi:.1}]"))
        };
        let [b, bi, sc, s] = &mut figs;
        let ((mb, tb), (mbi, tbi)) = (cell(b), cell(bi));
        let ((msc, tsc), (ms, ts)) = (cell(sc), cell(s));
        println!(
            "| {mtu} | {tb} | {tbi} | {tsc} | {ts} | {:.2} | {:.2} |",
            mb / msc,
            mbi / ms
        );
    }
}
