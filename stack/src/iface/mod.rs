//! The interface: one shard's device, neighbour cache, demultiplexing
//! tables and sockets (TCP and UDP), behind the Berkeley sockets verbs.
//!
//! An [`Interface`] owns a [`Device`] and everything a host needs on it:
//! Ethernet, ARP (it answers requests for its address and resolves its
//! peers by asking, with retries and a bounded queue of frames waiting for
//! an answer), IPv4, ICMP (echo, port unreachable), TCP and UDP. It makes
//! no system call and starts no thread: the caller drives it with
//! [`Interface::poll`]`(now)`, which receives a batch of frames, runs the
//! timers that are due and sends what is owed, and then reads readiness
//! [`Event`]s with [`Interface::next_event`]. Every verb is nonblocking and
//! fails with an errno-named [`Error`].
//!
//! A received frame travels through one file per protocol, as in smoltcp's
//! `iface/interface/`: `ethernet` (link checks, then ARP or IPv4),
//! `arp`, `ipv4` (then TCP, UDP or ICMP), `tcp`, `udp`, `icmp`. Whatever
//! is sent — segments, datagrams, ICMP, ARP — leaves through one egress
//! path (`egress`), where the neighbour cache gives the next hop's MAC.
//! Every received frame ends in exactly one of the [`InterfaceCounters`].
//!
//! Several shards of one NIC each have an interface; an ARP reply lands on
//! one queue only, so a shard passes what it learned by ARP to its siblings
//! ([`Interface::take_learned`], [`Interface::learn_neighbour`]).

mod arp;
mod counters;
mod egress;
mod ethernet;
mod event;
mod icmp;
mod ipv4;
mod socket;
mod tcp;
mod timers;
mod udp;

pub use counters::InterfaceCounters;
pub use event::{Event, Readiness};
pub use socket::SocketHandle;

use core::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::collections::VecDeque;

use egress::Egress;
use socket::{Kind, Slot, Socket};
use tcp::PendingSegment;
use timers::TimerQueue;

use crate::arp::ArpConfig;
use crate::error::Error;
use crate::flow::{EphemeralPorts, FlowHasher, FlowTable, ListenKey, ListenTable, Toeplitz};
use crate::icmp::RateLimit;
use crate::phy::Device;
use crate::storage::StoragePool;
use crate::tcp::{IsnGenerator, SynCookies, TcpConfig, TcpStats};
use crate::time::Instant;
use crate::wire::{Checksums, EthernetAddress, IpProtocol};

/// Resets owed to segments that belong to no connection, at most.
const MAX_PENDING_RESETS: usize = 64;
/// Ring buffers kept for reuse, at most (two per connection).
const STORAGE_POOL: usize = 512;
/// IPv4 header (no options) and UDP header: what a datagram adds to its
/// payload inside the MTU.
const UDP_HEADERS: usize = 20 + 8;

/// How an interface is set up.
#[derive(Debug, Clone)]
pub struct InterfaceConfig {
    /// This interface's MAC address.
    pub mac: EthernetAddress,
    /// This interface's IPv4 address.
    pub addr: Ipv4Addr,
    /// Addresses it also answers for (Linux's secondary addresses): ARP for
    /// them is answered, IPv4 to them taken, and
    /// [`Interface::connect_from`] may open connections from them (a client
    /// that needs more than one address's 64 K ports to one server);
    /// `None`: `addr` alone.
    pub aliases: Option<core::ops::RangeInclusive<Ipv4Addr>>,
    /// Prefix length of the on-link subnet: peers in it are resolved with
    /// ARP directly, others through `gateway`.
    pub prefix_len: u8,
    /// The router for peers off the subnet; `None`: they are unreachable
    /// (ENETUNREACH).
    pub gateway: Option<Ipv4Addr>,
    /// The link's MTU, where it is lower than what the device reports:
    /// TCP's MSS and the largest datagram follow it. `None`: the device's.
    pub mtu: Option<usize>,
    /// Sockets at most (listeners, connections, connections still closing
    /// after their user let go, UDP sockets); also the flow table's
    /// capacity.
    pub max_sockets: usize,
    /// Connections waiting in a listener's SYN queue, at most.
    pub syn_backlog: usize,
    /// Frames taken from the device per poll, at most.
    pub rx_batch: usize,
    /// Verify checksums of received frames (`Trust` only where the sender
    /// leaves them to hardware, e.g. a veth peer with tx checksum offload).
    pub checksums: Checksums,
    /// Settings of each connection.
    pub tcp: TcpConfig,
    /// Secret of the flow hashes (drawn once per process).
    pub flow_secret: [u64; 4],
    /// Secret of the ISN function (RFC 6528).
    pub isn_secret: [u64; 4],
    /// Answer SYNs with cookies when a SYN queue is full (RFC 4987 §3.6).
    pub syn_cookies: bool,
    /// The NIC's receive-side scaling, when this interface serves one of
    /// several queues: `connect` then picks ephemeral ports whose replies
    /// the NIC steers to this queue.
    pub rss: Option<RssConfig>,
    /// Secret of the SYN cookies. [`InterfaceConfig::new`] derives it from
    /// the ISN secret; set it to a secret of its own to keep them apart.
    pub cookie_secret: [u64; 4],
    /// The ports `connect` and a UDP `bind` to port 0 pick from (Linux's
    /// `ip_local_port_range`); 49152-65535 by default.
    pub ephemeral_ports: core::ops::RangeInclusive<u16>,
    /// The neighbour cache: size, retries (3, 100 ms apart by default),
    /// lifetime, hold-down after a failure.
    pub arp: ArpConfig,
    /// Frames waiting for ARP, at most, all next hops together (half of
    /// them for one hop).
    pub arp_pending: usize,
    /// Datagrams each UDP socket's receive queue holds; more are dropped
    /// and counted ([`InterfaceCounters::socket_queue_full`]).
    pub udp_rx_queue: usize,
    /// Time to live of the packets sent.
    pub ttl: u8,
    /// ICMP error messages (port unreachable) per second, at most.
    pub icmp_error_rate: u32,
    /// ICMP error messages in a burst, at most.
    pub icmp_error_burst: u32,
    /// Frames the interface makes itself (ARP, ICMP) held between a receive
    /// batch and the device's transmit ring, at most; more are dropped and
    /// counted ([`InterfaceCounters::control_dropped`]).
    pub control_queue: usize,
}

impl InterfaceConfig {
    /// Defaults around the given addresses and secrets: 1024 sockets, SYN
    /// backlog 128, batches of 64, checksums verified, SYN cookies on;
    /// UDP sockets of 256 datagrams, 256 frames waiting for ARP, TTL 64,
    /// ICMP errors at most 100 per second in bursts of 10.
    pub fn new(
        mac: EthernetAddress,
        addr: Ipv4Addr,
        prefix_len: u8,
        flow_secret: [u64; 4],
        isn_secret: [u64; 4],
    ) -> InterfaceConfig {
        InterfaceConfig {
            mac,
            addr,
            aliases: None,
            prefix_len,
            gateway: None,
            mtu: None,
            max_sockets: 1024,
            syn_backlog: 128,
            rx_batch: 64,
            checksums: Checksums::Verify,
            tcp: TcpConfig::default(),
            flow_secret,
            isn_secret,
            syn_cookies: true,
            rss: None,
            cookie_secret: isn_secret.map(|w| w.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15),
            ephemeral_ports: crate::flow::EPHEMERAL_FIRST..=crate::flow::EPHEMERAL_LAST,
            arp: ArpConfig::default(),
            arp_pending: 256,
            udp_rx_queue: 256,
            ttl: 64,
            icmp_error_rate: 100,
            icmp_error_burst: 10,
            control_queue: 64,
        }
    }
}

impl InterfaceConfig {
    /// Whether `ip` is this interface's: its address or one of its aliases.
    pub fn owns(&self, ip: Ipv4Addr) -> bool {
        ip == self.addr || self.aliases.as_ref().is_some_and(|r| r.contains(&ip))
    }
}

/// How the NIC spreads received flows over its queues, and which queue is
/// this interface's.
#[derive(Debug, Clone)]
pub struct RssConfig {
    /// The NIC's Toeplitz key (`ethtool -x`).
    pub toeplitz: Toeplitz,
    /// The NIC's indirection table (`ethtool -x`): entry `hash % len` is
    /// the queue.
    pub indirection: Vec<u16>,
    /// This interface's queue.
    pub queue: u16,
}

/// `shutdown(2)`'s `how`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// `SHUT_RD`.
    Read,
    /// `SHUT_WR`: send a FIN after the queued data.
    Write,
    /// `SHUT_RDWR`.
    Both,
}

/// Everything but the device, so that a frame the device lends can be
/// processed while the device is borrowed.
#[derive(Debug)]
struct Inner {
    cfg: InterfaceConfig,
    slots: Vec<Slot>,
    free: Vec<u32>,
    flows: FlowTable<SocketHandle>,
    /// Bound sockets: TCP listeners and UDP sockets, by protocol and port.
    ports: ListenTable<SocketHandle>,
    ephemeral: EphemeralPorts,
    isn: IsnGenerator,
    counters: InterfaceCounters,
    stats: TcpStats,
    /// Resets that could not be queued.
    resets_dropped: u64,
    resets: VecDeque<PendingSegment>,
    egress: Egress,
    icmp_errors: RateLimit,
    /// Ring storage of finished connections, for new ones.
    storage: StoragePool,
    cookies: SynCookies,
    /// When a SYN cookie was last sent: ACKs are checked as cookies only
    /// for two cookie lifetimes after.
    last_cookie: Option<Instant>,
    /// Sockets with something new: to dispatch and to check for events.
    touched: Vec<u32>,
    events: VecDeque<SocketHandle>,
    /// Where egress stopped because the device was full: the touched
    /// sockets from there on still have something to send.
    unfinished: Option<usize>,
    /// The connections' deadlines.
    timers: TimerQueue,
    now: Instant,
    mss: u16,
    /// The longest UDP payload: the MTU less 28.
    max_payload: usize,
}

/// One shard's network interface. See the [module](self) documentation.
#[derive(Debug)]
pub struct Interface<D: Device> {
    device: D,
    inner: Inner,
}

impl<D: Device> Interface<D> {
    /// An interface over `device`; every table is allocated now (a UDP
    /// socket's queue at its `bind`).
    pub fn new(device: D, cfg: InterfaceConfig) -> Interface<D> {
        let hasher = FlowHasher::new(cfg.flow_secret);
        let caps = device.caps();
        let mtu = cfg.mtu.map_or(caps.mtu, |m| m.min(caps.mtu));
        let mss = mtu.saturating_sub(40).min(usize::from(u16::MAX)) as u16;
        let max_payload = mtu
            .saturating_sub(UDP_HEADERS)
            .min(usize::from(u16::MAX) - UDP_HEADERS);
        let n = cfg.max_sockets;
        let inner = Inner {
            slots: Vec::with_capacity(n),
            free: Vec::with_capacity(n),
            flows: FlowTable::with_capacity(n, hasher),
            ports: ListenTable::with_capacity(n, hasher),
            ephemeral: EphemeralPorts::with_range(hasher, cfg.ephemeral_ports.clone()),
            isn: IsnGenerator::new(cfg.isn_secret),
            counters: InterfaceCounters::default(),
            stats: TcpStats::default(),
            resets_dropped: 0,
            resets: VecDeque::with_capacity(MAX_PENDING_RESETS),
            egress: Egress::new(&cfg, caps),
            icmp_errors: RateLimit::new(cfg.icmp_error_rate, cfg.icmp_error_burst),
            storage: StoragePool::new(STORAGE_POOL),
            cookies: SynCookies::new(cfg.cookie_secret),
            last_cookie: None,
            touched: Vec::with_capacity(n),
            events: VecDeque::with_capacity(n),
            unfinished: None,
            timers: TimerQueue::new(),
            now: Instant::ZERO,
            mss,
            max_payload,
            cfg,
        };
        Interface { device, inner }
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device, mutably (to wait on it, e.g. an AF_XDP socket's `poll`).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// The configuration.
    pub fn config(&self) -> &InterfaceConfig {
        &self.inner.cfg
    }

    /// What happened to the frames received and sent.
    pub fn counters(&self) -> &InterfaceCounters {
        &self.inner.counters
    }

    /// What TCP did.
    pub fn tcp_stats(&self) -> &TcpStats {
        &self.inner.stats
    }

    /// The time of the last poll.
    pub fn now(&self) -> Instant {
        self.inner.now
    }

    /// Receive a batch of at most [`InterfaceConfig::rx_batch`] frames and
    /// handle each, run due timers (TCP's and ARP's), send what is owed,
    /// flush the device. Returns whether anything was received or sent
    /// (datagrams written by [`send_to`](Self::send_to) since the last poll
    /// included).
    pub fn poll(&mut self, now: Instant) -> bool {
        let Interface { device, inner } = self;
        inner.now = inner.now.max(now);
        let budget = inner.cfg.rx_batch;
        let got = device.receive(budget, |frame| inner.receive(frame));
        inner.run_timers();
        inner.egress(device);
        let wrote = inner.egress.take_wrote();
        device.flush();
        inner.report_events();
        got > 0 || wrote
    }

    /// Run due timers and send what is owed, without receiving: what a
    /// loop calls after socket calls to send at once.
    pub fn poll_egress(&mut self, now: Instant) {
        let Interface { device, inner } = self;
        inner.now = inner.now.max(now);
        inner.run_timers();
        inner.egress(device);
        inner.egress.take_wrote();
        device.flush();
        inner.report_events();
    }

    /// Whether something waits to be sent or flushed: a connection with
    /// something to send, a reset, a staged or released frame, or frames
    /// written since the last poll (a loop calls
    /// [`poll_egress`](Self::poll_egress) after its socket calls only then).
    pub fn owes(&self) -> bool {
        let inner = &self.inner;
        !inner.touched.is_empty()
            || !inner.resets.is_empty()
            || inner.egress.owed()
            || inner.egress.wrote()
    }

    /// When [`poll`](Self::poll) next has work without new frames: now if
    /// something is owed, else the earliest timer (TCP's or ARP's).
    pub fn poll_at(&self) -> Option<Instant> {
        let inner = &self.inner;
        if !inner.touched.is_empty() || !inner.resets.is_empty() || inner.egress.owed() {
            return Some(inner.now);
        }
        match (inner.timers.next(), inner.egress.next_timer()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next socket whose readiness changed, with its readiness now.
    pub fn next_event(&mut self) -> Option<Event> {
        let inner = &mut self.inner;
        while let Some(h) = inner.events.pop_front() {
            if let Some(s) = inner.socket_mut(h) {
                s.queued = false;
                let readiness = s.readiness();
                return Some(Event {
                    handle: h,
                    readiness,
                });
            }
        }
        None
    }

    /// The readiness of a socket now (level-triggered).
    pub fn readiness(&self, h: SocketHandle) -> Result<Readiness, Error> {
        Ok(self.inner.socket(h)?.readiness())
    }

    // ---- neighbours ----

    /// The MAC the neighbour cache holds for `ip`, if resolved.
    pub fn neighbour(&self, ip: Ipv4Addr) -> Option<EthernetAddress> {
        self.inner.egress.arp.get(ip)
    }

    /// A permanent neighbour (`ip neigh replace IP lladdr MAC nud
    /// permanent`): never resolved, refreshed, aged or changed by what
    /// arrives. `false` if the cache is full of permanent entries.
    pub fn set_permanent_neighbour(&mut self, ip: Ipv4Addr, mac: EthernetAddress) -> bool {
        self.inner.egress.arp.insert_permanent(ip, mac)
    }

    /// The next neighbour this interface learned by ARP (a reply to its
    /// request, or a request addressed to it) since last asked: a shard
    /// passes it to the other shards of its NIC, since an ARP frame lands
    /// on one queue only. At most 64 wait; more are not kept.
    pub fn take_learned(&mut self) -> Option<(Ipv4Addr, EthernetAddress)> {
        self.inner.egress.take_learned()
    }

    /// A neighbour that another shard of the same NIC learned by ARP
    /// ([`take_learned`](Self::take_learned)): taken as if the ARP frame
    /// had come here; frames waiting for it go at the next poll.
    pub fn learn_neighbour(&mut self, ip: Ipv4Addr, mac: EthernetAddress) {
        let inner = &mut self.inner;
        inner.counters.neighbours_relayed += 1;
        inner
            .egress
            .learn_relayed(ip, mac, inner.now, &mut inner.counters);
    }

    // ---- verbs of every kind of socket ----

    /// `bind`: take `addr` (this interface's address or 0.0.0.0) and port.
    /// A TCP socket needs a port; a UDP socket bound to port 0 gets an
    /// ephemeral one, and its receive queue is allocated now.
    pub fn bind(&mut self, h: SocketHandle, addr: SocketAddrV4) -> Result<(), Error> {
        let inner = &mut self.inner;
        if !addr.ip().is_unspecified() && *addr.ip() != inner.cfg.addr {
            return Err(Error::AddrNotAvailable);
        }
        let s = inner.socket(h)?;
        if s.bound.is_some() {
            return Err(Error::InvalidInput);
        }
        match s.kind {
            Kind::Idle => inner.bind_tcp(h, addr),
            Kind::Udp(None) => inner.bind_udp(h, addr),
            _ => Err(Error::InvalidInput),
        }
    }

    /// `close`: let go of the handle. A connection closes gracefully (FIN
    /// after the queued data) and lives on inside the interface until it
    /// is done (TIME-WAIT included); with unread data it is reset. A
    /// listener resets the connections it had not handed out. A UDP
    /// socket's port is free at once; what it had queued is dropped.
    pub fn close(&mut self, h: SocketHandle) -> Result<(), Error> {
        self.inner.close(h)
    }

    /// `close` under `SO_LINGER` 0 (RFC 9293 §3.10.5, ABORT): a connection
    /// sends a reset (from a synchronized state) and is gone at once, with
    /// no FIN exchange and no TIME-WAIT; any other socket is closed as by
    /// [`close`](Self::close).
    pub fn abort(&mut self, h: SocketHandle) -> Result<(), Error> {
        if let Some(t) = self.inner.socket_mut(h).and_then(|s| s.tcb_mut()) {
            t.abort();
        }
        self.inner.close(h)
    }

    /// `getsockname`: a connection's local address, or where a listener
    /// or UDP socket is bound.
    pub fn local_addr(&self, h: SocketHandle) -> Result<SocketAddrV4, Error> {
        let s = self.inner.socket(h)?;
        if let Some(t) = s.tcb() {
            return Ok(t.local());
        }
        match s.bound {
            Some(ListenKey {
                addr: IpAddr::V4(a),
                port,
                ..
            }) => Ok(SocketAddrV4::new(a, port)),
            _ => Err(Error::NotConnected),
        }
    }

    /// Sockets in use, including connections that finish closing after
    /// their user let go (TIME-WAIT).
    pub fn sockets_in_use(&self) -> usize {
        self.inner.slots.len() - self.inner.free.len()
    }
}

/// Whether `port` of `protocol` is bound on `ip` or on the wildcard.
fn port_taken(
    ports: &ListenTable<SocketHandle>,
    protocol: IpProtocol,
    ip: Ipv4Addr,
    port: u16,
) -> bool {
    [ip, Ipv4Addr::UNSPECIFIED].into_iter().any(|a| {
        ports
            .get_exact(&ListenKey {
                protocol,
                addr: IpAddr::V4(a),
                port,
            })
            .is_some()
    })
}

fn slot(slots: &[Slot], h: SocketHandle) -> Option<&Socket> {
    slots
        .get(h.index())
        .filter(|s| s.gen == h.gen())
        .and_then(|s| s.socket.as_ref())
}

fn slot_mut(slots: &mut [Slot], h: SocketHandle) -> Option<&mut Socket> {
    slots
        .get_mut(h.index())
        .filter(|s| s.gen == h.gen())
        .and_then(|s| s.socket.as_mut())
}

impl Inner {
    fn alloc(&mut self, socket: Socket) -> Result<SocketHandle, Error> {
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.socket = Some(socket);
            return Ok(SocketHandle::new(index, slot.gen));
        }
        if self.slots.len() >= self.cfg.max_sockets {
            return Err(Error::TooManySockets);
        }
        self.slots.push(Slot {
            gen: 0,
            socket: Some(socket),
        });
        Ok(SocketHandle::new(self.slots.len() as u32 - 1, 0))
    }

    fn release(&mut self, h: SocketHandle) {
        let Some(slot) = self.slots.get_mut(h.index()) else {
            return;
        };
        if slot.gen != h.gen() || slot.socket.is_none() {
            return;
        }
        let s = slot.socket.take();
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(h.index() as u32);
        let Some(s) = s else { return };
        if let Some(key) = s.bound {
            if self.ports.get_exact(&key) == Some(&h) {
                self.ports.remove(&key);
            }
        }
        self.forget_connection(h, &s);
    }

    /// Put a bound socket in the port table, unless its port is taken on
    /// this address or the wildcard (the more specific binding would
    /// shadow the other).
    fn bind_port(
        &mut self,
        h: SocketHandle,
        protocol: IpProtocol,
        addr: SocketAddrV4,
    ) -> Result<(), Error> {
        if port_taken(&self.ports, protocol, self.cfg.addr, addr.port()) {
            return Err(Error::AddrInUse);
        }
        let key = ListenKey {
            protocol,
            addr: IpAddr::V4(*addr.ip()),
            port: addr.port(),
        };
        self.ports.insert(key, h).map_err(|_| Error::NoBuffers)?;
        self.socket_mut(h).ok_or(Error::BadHandle)?.bound = Some(key);
        Ok(())
    }

    fn socket(&self, h: SocketHandle) -> Result<&Socket, Error> {
        slot(&self.slots, h).ok_or(Error::BadHandle)
    }

    fn socket_mut(&mut self, h: SocketHandle) -> Option<&mut Socket> {
        slot_mut(&mut self.slots, h)
    }

    fn touch(&mut self, h: SocketHandle) {
        if let Some(s) = self.socket_mut(h) {
            if !s.touched {
                s.touched = true;
                self.touched.push(h.index() as u32);
            }
        }
    }

    fn handle_at(&self, index: u32) -> Option<SocketHandle> {
        let slot = self.slots.get(index as usize)?;
        slot.socket.as_ref()?;
        Some(SocketHandle::new(index, slot.gen))
    }

    fn run_timers(&mut self) {
        self.egress.run_timers(self.now, &mut self.counters);
        self.run_tcp_timers();
    }

    /// Send what is owed, in order: frames staged while receiving and
    /// frames a resolution released, resets, then what each touched
    /// connection has to send, until the device is full; last, the ARP
    /// requests that sending staged.
    fn egress<D: Device>(&mut self, device: &mut D) {
        if self.touched.is_empty() && self.resets.is_empty() && !self.egress.owed() {
            return;
        }
        if !self.egress.flush_owed(device, &mut self.counters) {
            return;
        }
        self.tcp_egress(device);
        self.egress.flush_owed(device, &mut self.counters);
    }

    /// After a poll: release what is finished, queue readiness events.
    fn report_events(&mut self) {
        if self.touched.is_empty() {
            return;
        }
        let touched = core::mem::take(&mut self.touched);
        for &index in &touched {
            let Some(h) = self.handle_at(index) else {
                continue;
            };
            match slot_mut(&mut self.slots, h) {
                // a UDP socket has nothing to settle
                Some(s) if matches!(s.kind, Kind::Udp(_)) => s.touched = false,
                _ => {
                    if !self.settle_connection(h) {
                        continue;
                    }
                }
            }
            let Some(s) = slot_mut(&mut self.slots, h) else {
                continue;
            };
            let r = s.readiness();
            if r != s.reported && !s.queued {
                s.queued = true;
                self.events.push_back(h);
            }
            s.reported = r;
        }
        // What egress could not finish stays touched for the next poll
        // (the list keeps its allocation).
        let mut list = touched;
        let from = self.unfinished.take().unwrap_or(list.len()).min(list.len());
        list.drain(..from);
        list.retain(|&index| match self.handle_at(index) {
            Some(h) => match self.socket_mut(h) {
                Some(s) => {
                    s.touched = true;
                    true
                }
                None => false,
            },
            None => false,
        });
        self.touched = list;
    }

    fn close(&mut self, h: SocketHandle) -> Result<(), Error> {
        let s = self.socket_mut(h).ok_or(Error::BadHandle)?;
        s.user = false;
        match &s.kind {
            Kind::Idle | Kind::Udp(_) => self.release(h),
            Kind::Listener(_) => self.close_listener(h),
            Kind::Tcb(_) => self.close_connection(h),
        }
        Ok(())
    }
}
