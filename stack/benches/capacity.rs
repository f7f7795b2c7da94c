//! How many connections one interface (one shard) holds, what each costs,
//! and whether a full table slows new connections down.
//!
//! Two interfaces on an in-memory link, on one thread, with the real clock:
//! A the clients, B the server. B listens on as many ports as A's port
//! range (1024-65535) needs to open `N` connections, at most 32,768 per port
//! (so that the client's port search stays short); each connection
//! exchanges a 16-byte request and reply, then stays open and idle. Before
//! the fill and at the end, 2,000 more connections are timed one at a time
//! (connect to ESTABLISHED on both ends and accepted: a handshake's three
//! frames and the polls between them), and closed again.
//!
//! Prints a table: connections held, resident memory per connection end
//! (the process's RSS growth over the fill, divided by 2N: both ends are in
//! this process and cost the same), and the timed connections' p50/p99
//! before and after.
//!
//! `cargo bench -p stack --bench capacity [-- N]` (default 1,000,000).

use core::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant as WallClock;

use stack::iface::{Interface, InterfaceConfig};
use stack::phy::Loopback;
use stack::tcp::State;
use stack::time::Instant;
use stack::wire::EthernetAddress;
use stack::SocketHandle;

const A_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const A_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const B_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
const FIRST_PORT: u16 = 1024;
/// Connections opened at once while filling (a handshake is three frames;
/// the link queues 4096).
const BATCH: usize = 512;
/// Connections timed one by one, before and after the fill.
const TIMED: usize = 2000;
const BASE_PORT: u16 = 8000;
/// Connections per listener port during the fill: half of A's port range.
const PER_PORT: usize = 32768;

struct Lab {
    a: Interface<Loopback>,
    b: Interface<Loopback>,
    listeners: Vec<SocketHandle>,
    t0: WallClock,
}

impl Lab {
    fn new(n: usize) -> Lab {
        let (da, db) = Loopback::pair(1500, 4096);
        // the fill's ports, and one more for the timed connections
        let ports = n.div_ceil(PER_PORT) + 1;
        let conf = |mac, ip: Ipv4Addr| {
            let mut c = InterfaceConfig::new(mac, ip, 24, [1, 2, 3, 4], [5, 6, 7, 8]);
            c.max_sockets = n + TIMED + ports + 64;
            c.syn_backlog = 4096;
            c.ephemeral_ports = FIRST_PORT..=u16::MAX;
            c
        };
        let mut a = Interface::new(da, conf(A_MAC, A_IP));
        let mut b = Interface::new(db, conf(B_MAC, B_IP));
        assert!(a.set_permanent_neighbour(B_IP, B_MAC));
        assert!(b.set_permanent_neighbour(A_IP, A_MAC));
        let listeners = (0..ports as u16)
            .map(|i| {
                let l = b.socket().unwrap();
                b.bind(l, SocketAddrV4::new(B_IP, BASE_PORT + i)).unwrap();
                b.listen(l, 4096).unwrap();
                l
            })
            .collect();
        Lab {
            a,
            b,
            listeners,
            t0: WallClock::now(),
        }
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.t0.elapsed().as_micros() as u64)
    }

    fn poll(&mut self) {
        let now = self.now();
        self.a.poll(now);
        self.b.poll(now);
    }

    /// Accepts what is waiting on every listener.
    fn accept_all(&mut self, into: &mut Vec<SocketHandle>) {
        for &l in &self.listeners {
            while let Ok((s, _)) = self.b.accept(l) {
                into.push(s);
            }
        }
    }

    /// Opens `count` connections to listener port `i`, exchanges a
    /// request and reply on each, and returns the (client, server) ends.
    fn open(&mut self, count: usize, port: u16) -> Vec<(SocketHandle, SocketHandle)> {
        let to = SocketAddrV4::new(B_IP, port);
        let clients: Vec<_> = (0..count)
            .map(|_| {
                let c = self.a.socket().unwrap();
                self.a.connect(c, to).unwrap();
                c
            })
            .collect();
        let mut servers = Vec::with_capacity(count);
        let mut spins = 0;
        while servers.len() < count {
            self.poll();
            self.accept_all(&mut servers);
            spins += 1;
            assert!(spins < 1_000_000, "handshakes stuck at {}", servers.len());
        }
        let mut buf = [0u8; 64];
        for &c in &clients {
            assert_eq!(self.a.send(c, &[7u8; 16]), Ok(16));
        }
        let mut answered = 0;
        while answered < count {
            self.poll();
            for &s in &servers {
                if let Ok(16) = self.b.recv(s, &mut buf) {
                    assert_eq!(self.b.send(s, &[9u8; 16]), Ok(16));
                    answered += 1;
                }
            }
        }
        let mut read = 0;
        while read < count {
            self.poll();
            for &c in &clients {
                if let Ok(16) = self.a.recv(c, &mut buf) {
                    read += 1;
                }
            }
        }
        // the last ACKs, so that both ends are idle
        for _ in 0..4 {
            self.poll();
        }
        clients.into_iter().zip(servers).collect()
    }

    /// Times `TIMED` connections one at a time (connect to established and
    /// accepted), closing each; returns their durations in µs, sorted.
    fn timed(&mut self) -> Vec<f64> {
        let port = BASE_PORT + self.listeners.len() as u16 - 1;
        let to = SocketAddrV4::new(B_IP, port);
        let mut out = Vec::with_capacity(TIMED);
        let mut got = Vec::new();
        for _ in 0..TIMED {
            let start = WallClock::now();
            let c = self.a.socket().unwrap();
            self.a.connect(c, to).unwrap();
            got.clear();
            while got.is_empty() || self.a.state(c) != Ok(State::Established) {
                self.poll();
                self.accept_all(&mut got);
            }
            out.push(start.elapsed().as_secs_f64() * 1e6);
            self.a.close(c).unwrap();
            for s in got.drain(..) {
                self.b.close(s).unwrap();
            }
            self.poll();
        }
        out.sort_by(f64::total_cmp);
        out
    }
}

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kib * 1024
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rss0 = rss_bytes();
    let mut lab = Lab::new(n);
    let rss_tables = rss_bytes();
    let empty = lab.timed();
    let rss1 = rss_bytes();
    let started = WallClock::now();
    let mut held = Vec::with_capacity(n);
    while held.len() < n {
        let port = BASE_PORT + (held.len() / PER_PORT) as u16;
        let room = PER_PORT - held.len() % PER_PORT;
        let count = BATCH.min(n - held.len()).min(room);
        held.extend(lab.open(count, port));
    }
    let fill = started.elapsed();
    let rss2 = rss_bytes();
    let full = lab.timed();
    // every connection still open, on both ends
    let established = held
        .iter()
        .filter(|(c, s)| {
            lab.a.state(*c) == Ok(State::Established) && lab.b.state(*s) == Ok(State::Established)
        })
        .count();
    assert_eq!(established, n, "connections lost while full");
    let (p50e, p99e) = (pct(&empty, 0.5), pct(&empty, 0.99));
    let (p50f, p99f) = (pct(&full, 0.5), pct(&full, 0.99));
    println!("| connections held | fill | tables (both ends) | RSS per connection end | connect p50 empty / full | p99 empty / full | p99 full/empty |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| {n} | {:.1} s | {:.0} MiB | {:.0} B | {p50e:.1} / {p50f:.1} µs | {p99e:.1} / {p99f:.1} µs | {:.2} |",
        fill.as_secs_f64(),
        (rss_tables - rss0) as f64 / (1 << 20) as f64,
        (rss2 - rss1) as f64 / (2 * n) as f64,
        p99f / p99e
    );
    let st = lab.b.tcp_stats();
    println!(
        "server: {} in use, table_full {}, syn_queue_overflows {}, retransmits {}",
        lab.b.sockets_in_use(),
        st.table_full,
        st.syn_queue_overflows,
        st.retransmits
    );
}
