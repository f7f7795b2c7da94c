//! Shared test rig: two interfaces on an in-memory link under a
//! deterministic clock, and a raw peer that scripts segments by hand.
#![allow(dead_code)]

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use stack::frame::{parse_frame, Frame, Network, Transport};
use stack::iface::{Interface, InterfaceConfig};
use stack::phy::{Device, FaultInjector, Faults, Loopback};
use stack::tcp::TcpConfig;
use stack::time::Instant;
use stack::wire::{
    Checksums, EtherType, EthernetAddress, EthernetRepr, IpProtocol, Ipv4Repr, TcpFlags,
    TcpOptions, TcpRepr,
};

pub const A_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
pub const B_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
pub const A_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const B_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const MTU: usize = 1500;

pub type Dev = FaultInjector<Loopback>;
pub type Iface = Interface<Dev>;

pub fn config(mac: EthernetAddress, ip: Ipv4Addr, tcp: TcpConfig) -> InterfaceConfig {
    let mut c = InterfaceConfig::new(mac, ip, 24, [1, 2, 3, 4], [5, 6, 7, ip.to_bits() as u64]);
    c.tcp = tcp;
    c
}

/// Two interfaces, A (198.18.0.1) and B (198.18.0.2), joined back to back;
/// faults are injected on what each receives. Each knows the other's MAC
/// from the start (a permanent neighbour, as `ip neigh ... nud permanent`),
/// so that what is measured is TCP alone; [`Net::resolving`] leaves that
/// to ARP.
pub struct Net {
    pub a: Iface,
    pub b: Iface,
    pub now: Instant,
    /// Simulated time per step when frames are in flight (the link's
    /// one-way delay, roughly).
    pub tick: Duration,
}

impl Net {
    pub fn new(tcp: TcpConfig) -> Net {
        Net::with_faults(tcp, Faults::default(), 1)
    }

    pub fn with_faults(tcp: TcpConfig, faults: Faults, seed: u64) -> Net {
        Net::build(tcp, faults, seed, |_| {})
    }

    /// Room for `sockets` sockets on each side.
    pub fn with_sockets(tcp: TcpConfig, sockets: usize) -> Net {
        Net::build(tcp, Faults::default(), 1, |c| c.max_sockets = sockets)
    }

    /// Both interfaces' configuration adjusted by `adjust`.
    pub fn build(
        tcp: TcpConfig,
        faults: Faults,
        seed: u64,
        adjust: impl Fn(&mut InterfaceConfig),
    ) -> Net {
        let mut net = Net::resolving(tcp, faults, seed, adjust);
        assert!(net.a.set_permanent_neighbour(B_IP, B_MAC));
        assert!(net.b.set_permanent_neighbour(A_IP, A_MAC));
        net
    }

    /// Like [`Net::build`], but each interface knows nothing of the other
    /// and resolves it by ARP, as hosts do.
    pub fn resolving(
        tcp: TcpConfig,
        faults: Faults,
        seed: u64,
        adjust: impl Fn(&mut InterfaceConfig),
    ) -> Net {
        let (da, db) = Loopback::pair(MTU, 1024);
        let mut ca = config(A_MAC, A_IP, tcp);
        let mut cb = config(B_MAC, B_IP, tcp);
        adjust(&mut ca);
        adjust(&mut cb);
        let a = Interface::new(FaultInjector::new(da, faults, seed), ca);
        let b = Interface::new(FaultInjector::new(db, faults, seed ^ 0x5555), cb);
        Net {
            a,
            b,
            now: Instant::ZERO,
            tick: Duration::from_micros(100),
        }
    }

    /// Poll both; returns whether frames are still in flight.
    pub fn step(&mut self) -> bool {
        self.a.poll(self.now);
        self.b.poll(self.now);
        self.a.device().inner().rx_queued() + self.b.device().inner().rx_queued() > 0
    }

    /// Step until `done` holds or `limit` of simulated time passes; when
    /// nothing is in flight the clock jumps to the next timer. Returns
    /// whether `done` held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Net) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            let busy = self.step();
            if done(self) {
                return true;
            }
            if self.now >= end {
                return false;
            }
            let owed = [self.a.poll_at(), self.b.poll_at()]
                .into_iter()
                .flatten()
                .min();
            self.now = if busy || owed.is_some_and(|t| t <= self.now) {
                self.now + self.tick
            } else {
                match owed {
                    Some(t) => t.min(end),
                    None => end,
                }
            };
        }
    }

    /// Step for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(d, |_| false);
    }
}

/// A listener on `ip:port` with `backlog`.
pub fn listener<D: Device>(
    iface: &mut Interface<D>,
    ip: Ipv4Addr,
    port: u16,
    backlog: usize,
) -> stack::SocketHandle {
    let l = iface.socket().unwrap();
    iface.bind(l, sa(ip, port)).unwrap();
    iface.listen(l, backlog).unwrap();
    l
}

pub fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

/// A segment as seen on the wire, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seg {
    pub src_port: u16,
    pub dst_port: u16,
    pub flags: TcpFlags,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    pub options: TcpOptions,
    pub payload: Vec<u8>,
}

/// A hand-driven peer on the raw end of a link: the interface under test
/// on the other end is A (198.18.0.1); the peer is B (198.18.0.2).
pub struct Raw {
    pub iface: Interface<Loopback>,
    pub peer: Loopback,
    pub now: Instant,
}

impl Raw {
    pub fn new(tcp: TcpConfig) -> Raw {
        Raw::build(tcp, |_| {})
    }

    /// A's configuration adjusted by `adjust`. A knows B's MAC (a
    /// permanent neighbour): the raw peer answers no ARP.
    pub fn build(tcp: TcpConfig, adjust: impl Fn(&mut InterfaceConfig)) -> Raw {
        let (da, db) = Loopback::pair(MTU, 1024);
        let mut c = config(A_MAC, A_IP, tcp);
        adjust(&mut c);
        let mut iface = Interface::new(da, c);
        assert!(iface.set_permanent_neighbour(B_IP, B_MAC));
        Raw {
            iface,
            peer: db,
            now: Instant::ZERO,
        }
    }

    /// Send a segment from B to A.
    pub fn send(&mut self, seg: TcpRepr<'_>) {
        self.put(tcp_frame(B_MAC, B_IP, seg));
    }

    /// Put a whole frame on the link to A.
    pub fn put(&mut self, frame: Frame<'_>) {
        self.peer.transmit(|b| {
            frame.emit(b);
            frame.buffer_len()
        });
        self.peer.flush();
    }

    /// Poll A at `now` and collect what it sent.
    pub fn poll_at(&mut self, now: Instant) -> Vec<Seg> {
        self.now = now;
        self.iface.poll(now);
        self.take()
    }

    /// What A sent so far.
    pub fn take(&mut self) -> Vec<Seg> {
        let mut out = Vec::new();
        self.peer.receive(usize::MAX, |f| {
            let frame = parse_frame(f, Checksums::Verify).expect("A sends valid frames");
            if let Network::Ipv4(_, Transport::Tcp(t)) = frame.network {
                out.push(Seg {
                    src_port: t.src_port,
                    dst_port: t.dst_port,
                    flags: t.flags,
                    seq: t.seq_number,
                    ack: t.ack_number,
                    window: t.window_len,
                    options: t.options,
                    payload: t.payload.to_vec(),
                });
            }
        });
        out
    }
}

/// A TCP segment from (`mac`, `ip`) to A, as a frame.
pub fn tcp_frame(mac: EthernetAddress, ip: Ipv4Addr, seg: TcpRepr<'_>) -> Frame<'_> {
    Frame {
        ethernet: EthernetRepr {
            src_addr: mac,
            dst_addr: A_MAC,
            vlan: None,
            ethertype: EtherType::IPV4,
        },
        network: Network::Ipv4(
            Ipv4Repr {
                src_addr: ip,
                dst_addr: A_IP,
                protocol: IpProtocol::TCP,
                payload_len: seg.buffer_len(),
                ttl: 64,
                tos: 0,
                ident: 0,
                dont_frag: true,
            },
            Transport::Tcp(seg),
        ),
    }
}

/// A segment from B's port `src` to A's port `dst`.
pub fn seg(src: u16, dst: u16, flags: TcpFlags, seq: u32, ack: u32) -> TcpRepr<'static> {
    TcpRepr {
        src_port: src,
        dst_port: dst,
        flags,
        seq_number: seq,
        ack_number: ack,
        window_len: 65535,
        urgent_at: 0,
        options: TcpOptions::default(),
        payload: &[],
    }
}

/// Bytes `0..n` of a fixed pseudo-random pattern, seeded.
pub fn pattern(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = stack::phy::Rng::new(seed);
    (0..n).map(|_| rng.next_u64() as u8).collect()
}
