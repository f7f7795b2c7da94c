//! The interface: one shard's device, demultiplexing tables and sockets,
//! behind the Berkeley sockets verbs.
//!
//! An [`Interface`] owns a [`Device`], the flow table (connections by
//! 5-tuple), the port table (bound sockets and listeners, with the wildcard
//! fallback), the ephemeral port allocator and every socket. It makes no
//! system call and starts no thread: the caller drives it with
//! [`Interface::poll`]`(now)`, which receives a batch of frames, runs the
//! timers that are due and sends what the connections have to send, and
//! then reads readiness [`Event`]s with [`Interface::next_event`]. Every
//! verb is nonblocking and fails with an errno-named [`Error`].
//!
//! Link-layer addresses: the interface answers ARP for its address and,
//! as RFC 826 asks, remembers the asker's MAC, as it remembers the source
//! MAC of every SYN it receives (a small table, the oldest entry
//! replaced); a segment goes to the MAC learned for its peer, else to the
//! configured neighbour. It sends no ARP request of its own.

mod event;
mod socket;

pub use event::{Event, Readiness};
pub use socket::SocketHandle;

use core::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::collections::VecDeque;

use socket::{Kind, Listener, Slot, Socket};

use crate::error::Error;
use crate::flow::{
    EphemeralPorts, FlowHasher, FlowKey, FlowTable, ListenKey, ListenTable, RssQueue, Toeplitz,
};
use crate::frame::{parse_frame, Frame, Network, Transport};
use crate::phy::Device;
use crate::storage::StoragePool;
use crate::tcp::{
    CookieOptions, Endpoints, IsnGenerator, Reaction, SeqNumber, State, SynCookies, Tcb, TcpConfig,
    TcpStats,
};
use crate::time::Instant;
use crate::wire::{
    ArpOperation, ArpRepr, Checksums, EtherType, EthernetAddress, EthernetRepr, IpProtocol,
    Ipv4Repr, TcpFlags, TcpOptions, TcpRepr,
};
use crate::Counters;

/// Resets owed to segments that belong to no connection, at most.
const MAX_PENDING_RESETS: usize = 64;
/// Ring buffers kept for reuse, at most (two per connection).
const STORAGE_POOL: usize = 512;

/// How an interface is set up.
#[derive(Debug, Clone)]
pub struct InterfaceConfig {
    /// This interface's MAC address.
    pub mac: EthernetAddress,
    /// This interface's IPv4 address.
    pub addr: Ipv4Addr,
    /// The MAC a frame goes to when no ARP request taught the peer's.
    pub neighbour: EthernetAddress,
    /// Sockets at most (listeners, connections, and connections still
    /// closing after their user let go); also the flow table's capacity.
    pub max_sockets: usize,
    /// Connections waiting in a listener's SYN queue, at most.
    pub syn_backlog: usize,
    /// Frames taken from the device per poll, at most.
    pub rx_batch: usize,
    /// Verify checksums of received frames (`Trust` where the NIC did).
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
    /// The ports `connect` picks from (Linux's `ip_local_port_range`);
    /// 49152-65535 by default.
    pub ephemeral_ports: core::ops::RangeInclusive<u16>,
}

impl InterfaceConfig {
    /// Defaults around the given addresses and secrets.
    pub fn new(
        mac: EthernetAddress,
        addr: Ipv4Addr,
        neighbour: EthernetAddress,
        flow_secret: [u64; 4],
        isn_secret: [u64; 4],
    ) -> InterfaceConfig {
        InterfaceConfig {
            mac,
            addr,
            neighbour,
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
        }
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

/// A segment sent on behalf of no connection: a reset (RFC 9293
/// §3.10.7.1) or a SYN cookie's SYN-ACK.
#[derive(Debug, Clone, Copy)]
struct PendingSegment {
    local: SocketAddrV4,
    remote: SocketAddrV4,
    seg: TcpRepr<'static>,
}

impl PendingSegment {
    /// `<SEQ=seq><CTL=RST>`, or `<SEQ=seq><ACK=ack><CTL=RST,ACK>`.
    fn reset(local: SocketAddrV4, remote: SocketAddrV4, seq: u32, ack: Option<u32>) -> Self {
        let seg = TcpRepr {
            src_port: local.port(),
            dst_port: remote.port(),
            flags: if ack.is_some() {
                TcpFlags::RST | TcpFlags::ACK
            } else {
                TcpFlags::RST
            },
            seq_number: seq,
            ack_number: ack.unwrap_or(0),
            window_len: 0,
            urgent_at: 0,
            options: TcpOptions::default(),
            payload: &[],
        };
        PendingSegment { local, remote, seg }
    }
}

/// Everything but the device, so that a frame the device lends can be
/// processed while the device is borrowed.
#[derive(Debug)]
struct Inner {
    cfg: InterfaceConfig,
    slots: Vec<Slot>,
    free: Vec<u32>,
    flows: FlowTable<SocketHandle>,
    ports: ListenTable<SocketHandle>,
    ephemeral: EphemeralPorts,
    isn: IsnGenerator,
    counters: Counters,
    stats: TcpStats,
    /// Frames parsed that the stack does not serve yet (ARP, UDP, ICMP,
    /// IPv6, other destinations).
    unhandled: u64,
    /// Resets that could not be queued.
    resets_dropped: u64,
    resets: VecDeque<PendingSegment>,
    /// ARP replies owed.
    arp_replies: VecDeque<ArpRepr>,
    neighbours: Neighbours,
    /// Ring storage of finished connections, for new ones.
    storage: StoragePool,
    /// ARP replies sent.
    arp_replies_sent: u64,
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
    next_timer: Option<Instant>,
    now: Instant,
    ip_ident: u16,
    mss: u16,
}

/// One shard's network interface. See the [module](self) documentation.
#[derive(Debug)]
pub struct Interface<D: Device> {
    device: D,
    inner: Inner,
}

impl<D: Device> Interface<D> {
    /// An interface over `device`; every table is allocated now.
    pub fn new(device: D, cfg: InterfaceConfig) -> Interface<D> {
        let hasher = FlowHasher::new(cfg.flow_secret);
        let mss = device
            .caps()
            .mtu
            .saturating_sub(40)
            .min(usize::from(u16::MAX)) as u16;
        let n = cfg.max_sockets;
        let inner = Inner {
            slots: Vec::with_capacity(n),
            free: Vec::with_capacity(n),
            flows: FlowTable::with_capacity(n, hasher),
            ports: ListenTable::with_capacity(n, hasher),
            ephemeral: EphemeralPorts::with_range(hasher, cfg.ephemeral_ports.clone()),
            isn: IsnGenerator::new(cfg.isn_secret),
            counters: Counters::new(),
            stats: TcpStats::default(),
            unhandled: 0,
            resets_dropped: 0,
            resets: VecDeque::with_capacity(MAX_PENDING_RESETS),
            arp_replies: VecDeque::with_capacity(MAX_PENDING_RESETS),
            neighbours: Neighbours::default(),
            storage: StoragePool::new(STORAGE_POOL),
            arp_replies_sent: 0,
            cookies: SynCookies::new(cfg.cookie_secret),
            last_cookie: None,
            touched: Vec::with_capacity(n),
            events: VecDeque::with_capacity(n),
            unfinished: None,
            next_timer: None,
            now: Instant::ZERO,
            ip_ident: 0,
            mss,
            cfg,
        };
        Interface { device, inner }
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device, mutably.
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// Drop counters of received frames.
    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// What TCP did.
    pub fn tcp_stats(&self) -> &TcpStats {
        &self.inner.stats
    }

    /// ARP replies sent (to requests for this interface's address).
    pub fn arp_replies_sent(&self) -> u64 {
        self.inner.arp_replies_sent
    }

    /// Frames received that nothing here serves yet (ARP other than
    /// requests for our address, UDP, ICMP, IPv6, another destination).
    pub fn unhandled_frames(&self) -> u64 {
        self.inner.unhandled
    }

    /// The time of the last poll.
    pub fn now(&self) -> Instant {
        self.inner.now
    }

    /// Receive a batch, run due timers, send what is owed, flush the
    /// device. Returns whether any frame was received.
    pub fn poll(&mut self, now: Instant) -> bool {
        let Interface { device, inner } = self;
        inner.now = inner.now.max(now);
        let budget = inner.cfg.rx_batch;
        let got = device.receive(budget, |frame| inner.receive(frame));
        inner.run_timers();
        inner.egress(device);
        device.flush();
        inner.report_events();
        got > 0
    }

    /// Run due timers and send what is owed, without receiving: what a
    /// loop calls after socket calls to send at once.
    pub fn poll_egress(&mut self, now: Instant) {
        let Interface { device, inner } = self;
        inner.now = inner.now.max(now);
        inner.run_timers();
        inner.egress(device);
        device.flush();
        inner.report_events();
    }

    /// When [`poll`](Self::poll) next has work without new frames: now if
    /// something is owed, else the earliest timer.
    pub fn poll_at(&self) -> Option<Instant> {
        if !self.inner.touched.is_empty()
            || !self.inner.resets.is_empty()
            || !self.inner.arp_replies.is_empty()
        {
            return Some(self.inner.now);
        }
        self.inner.next_timer
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

    // ---- the verbs ----

    /// `socket(AF_INET, SOCK_STREAM)`: a new unbound TCP socket.
    pub fn socket(&mut self) -> Result<SocketHandle, Error> {
        self.inner.alloc(Socket::new(Kind::Idle, true))
    }

    /// `bind`: take `addr` (this interface's address or 0.0.0.0) and port.
    pub fn bind(&mut self, h: SocketHandle, addr: SocketAddrV4) -> Result<(), Error> {
        let inner = &mut self.inner;
        if !addr.ip().is_unspecified() && *addr.ip() != inner.cfg.addr {
            return Err(Error::AddrNotAvailable);
        }
        if addr.port() == 0 {
            return Err(Error::InvalidInput);
        }
        let s = inner.socket(h)?;
        if !matches!(s.kind, Kind::Idle) || s.bound.is_some() {
            return Err(Error::InvalidInput);
        }
        let key = ListenKey {
            protocol: IpProtocol::TCP,
            addr: IpAddr::V4(*addr.ip()),
            port: addr.port(),
        };
        let wildcard = ListenKey {
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ..key
        };
        let specific = ListenKey {
            addr: IpAddr::V4(inner.cfg.addr),
            ..key
        };
        if inner.ports.get_exact(&wildcard).is_some() || inner.ports.get_exact(&specific).is_some()
        {
            return Err(Error::AddrInUse);
        }
        inner.ports.insert(key, h).map_err(|_| Error::NoBuffers)?;
        inner.socket_mut(h).ok_or(Error::BadHandle)?.bound = Some(key);
        Ok(())
    }

    /// `listen(backlog)`: accept connections; at most `backlog` wait to be
    /// accepted (the accept queue), and at most the configured SYN backlog
    /// wait in the handshake (the SYN queue).
    pub fn listen(&mut self, h: SocketHandle, backlog: usize) -> Result<(), Error> {
        let s = self.inner.socket_mut(h).ok_or(Error::BadHandle)?;
        match (&s.kind, s.bound) {
            (Kind::Idle, Some(_)) if backlog > 0 => {
                s.kind = Kind::Listener(Listener::new(backlog));
                Ok(())
            }
            (Kind::Listener(_), _) => Ok(()),
            _ => Err(Error::InvalidInput),
        }
    }

    /// `accept`: the next established connection and its peer's address.
    pub fn accept(&mut self, h: SocketHandle) -> Result<(SocketHandle, SocketAddrV4), Error> {
        let inner = &mut self.inner;
        let s = inner.socket_mut(h).ok_or(Error::BadHandle)?;
        let Kind::Listener(l) = &mut s.kind else {
            return Err(Error::InvalidInput);
        };
        let child = l.accept_queue.pop_front().ok_or(Error::WouldBlock)?;
        inner.touch(h);
        let c = inner.socket_mut(child).ok_or(Error::BadHandle)?;
        c.user = true;
        c.parent = None;
        let remote = c.tcb().map(|t| t.remote()).ok_or(Error::BadHandle)?;
        inner.touch(child);
        Ok((child, remote))
    }

    /// `connect`: start the handshake (nonblocking: the socket reports
    /// [`Readiness::CONNECTED`], or an error such as ECONNREFUSED or
    /// ETIMEDOUT, later). An unbound socket gets an ephemeral port.
    pub fn connect(&mut self, h: SocketHandle, remote: SocketAddrV4) -> Result<(), Error> {
        let inner = &mut self.inner;
        let s = inner.socket(h)?;
        match &s.kind {
            Kind::Idle => {}
            Kind::Tcb(t) if t.state() == State::SynSent => return Err(Error::AlreadyInProgress),
            Kind::Tcb(_) => return Err(Error::AlreadyConnected),
            Kind::Listener(_) => return Err(Error::InvalidInput),
        }
        let local_ip = inner.cfg.addr;
        let now = inner.now;
        let port = match s.bound {
            Some(k) => k.port,
            None => {
                let Inner {
                    flows,
                    slots,
                    ephemeral,
                    cfg,
                    ..
                } = inner;
                let rss = cfg.rss.as_ref().map(|r| RssQueue {
                    toeplitz: &r.toeplitz,
                    indirection: &r.indirection,
                    queue: r.queue,
                });
                // A tuple is free if no connection has it, or if its
                // connection is a TIME-WAIT that may be reused.
                let delay = cfg.tcp.tw_reuse_delay;
                let in_use = |k: &FlowKey| {
                    flows.get(k).is_some_and(|h| {
                        !slot(slots, *h)
                            .and_then(|s| s.tcb())
                            .is_some_and(|t| t.reusable_by_connect(now, delay))
                    })
                };
                ephemeral
                    .allocate(
                        IpProtocol::TCP,
                        IpAddr::V4(local_ip),
                        IpAddr::V4(*remote.ip()),
                        remote.port(),
                        in_use,
                        rss.as_ref(),
                    )
                    .ok_or(Error::AddrNotAvailable)?
            }
        };
        let local = SocketAddrV4::new(local_ip, port);
        let key = flow_key(local, remote);
        let mut iss = None;
        if let Some(&old) = inner.flows.get(&key) {
            match inner.socket(old).ok().and_then(|s| s.tcb()) {
                Some(t) if t.reusable_by_connect(now, inner.cfg.tcp.tw_reuse_delay) => {
                    iss = Some(t.time_wait_successor_iss());
                    inner.retire(old);
                    inner.stats.time_wait_reused += 1;
                }
                _ => return Err(Error::AddrInUse),
            }
        }
        inner.flows.insert(key, h).map_err(|_| Error::NoBuffers)?;
        let mut ep = inner.endpoints(local, remote, &key);
        if let Some(iss) = iss {
            ep.iss = iss;
        }
        let mut tcb = Tcb::connect(&inner.cfg.tcp, ep);
        tcb.provide_storage(&mut inner.storage);
        let s = inner.socket_mut(h).ok_or(Error::BadHandle)?;
        s.kind = Kind::Tcb(Box::new(tcb));
        s.in_flows = true;
        inner.touch(h);
        Ok(())
    }

    /// `send`: queue bytes; returns how many fitted (EAGAIN if none did).
    pub fn send(&mut self, h: SocketHandle, data: &[u8]) -> Result<usize, Error> {
        let n = self.inner.tcb_mut(h)?.send(data)?;
        self.inner.touch(h);
        Ok(n)
    }

    /// `recv`: copy received bytes; `Ok(0)` is the end of the stream.
    pub fn recv(&mut self, h: SocketHandle, out: &mut [u8]) -> Result<usize, Error> {
        let n = self.inner.tcb_mut(h)?.recv(out)?;
        self.inner.touch(h);
        Ok(n)
    }

    /// `SO_KEEPALIVE` on a connection: probe it when idle, per
    /// `keepalive`, or not at all with `None` (the default comes from
    /// [`TcpConfig::keepalive`](crate::tcp::TcpConfig::keepalive)).
    pub fn set_keepalive(
        &mut self,
        h: SocketHandle,
        keepalive: Option<crate::tcp::Keepalive>,
    ) -> Result<(), Error> {
        let now = self.inner.now;
        self.inner.tcb_mut(h)?.set_keepalive(now, keepalive);
        self.inner.touch(h);
        Ok(())
    }

    /// `shutdown`.
    pub fn shutdown(&mut self, h: SocketHandle, how: Shutdown) -> Result<(), Error> {
        let tcb = self.inner.tcb_mut(h)?;
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            tcb.shutdown_read();
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            tcb.shutdown_write()?;
        }
        self.inner.touch(h);
        Ok(())
    }

    /// `close`: let go of the handle. A connection closes gracefully (FIN
    /// after the queued data) and lives on inside the interface until it
    /// is done (TIME-WAIT included); with unread data it is reset. A
    /// listener resets the connections it had not handed out.
    pub fn close(&mut self, h: SocketHandle) -> Result<(), Error> {
        self.inner.close(h)
    }

    /// `SO_ERROR`: the error the connection failed with, if any.
    pub fn error(&self, h: SocketHandle) -> Result<Option<Error>, Error> {
        let s = self.inner.socket(h)?;
        Ok(s.tcb().and_then(|t| t.error()))
    }

    /// The state of a socket: a listener is LISTEN, an unconnected socket
    /// CLOSED.
    pub fn state(&self, h: SocketHandle) -> Result<State, Error> {
        let s = self.inner.socket(h)?;
        Ok(match &s.kind {
            Kind::Idle => State::Closed,
            Kind::Listener(_) => State::Listen,
            Kind::Tcb(t) => t.state(),
        })
    }

    /// The connection behind a handle (for inspection: RTO, MSS, what was
    /// negotiated).
    pub fn tcb(&self, h: SocketHandle) -> Result<&Tcb, Error> {
        self.inner.socket(h)?.tcb().ok_or(Error::NotConnected)
    }

    /// `getsockname` of a connection.
    pub fn local_addr(&self, h: SocketHandle) -> Result<SocketAddrV4, Error> {
        Ok(self.tcb(h)?.local())
    }

    /// `getpeername`.
    pub fn peer_addr(&self, h: SocketHandle) -> Result<SocketAddrV4, Error> {
        Ok(self.tcb(h)?.remote())
    }

    /// Ring buffers (rings given storage from the pool of finished
    /// connections, rings whose storage went back to it) so far.
    pub fn ring_reuse(&self) -> (u64, u64) {
        (self.inner.storage.provided, self.inner.storage.reclaimed)
    }

    /// Sockets in use, including connections that finish closing after
    /// their user let go (TIME-WAIT).
    pub fn sockets_in_use(&self) -> usize {
        self.inner.slots.len() - self.inner.free.len()
    }

    /// Connections in each state, for tests and reports (like `ss -s`).
    pub fn count_in_state(&self, state: State) -> usize {
        self.inner
            .slots
            .iter()
            .filter_map(|s| s.socket.as_ref())
            .filter_map(|s| s.tcb())
            .filter(|t| t.state() == state)
            .count()
    }
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

fn flow_key(local: SocketAddrV4, remote: SocketAddrV4) -> FlowKey {
    FlowKey {
        protocol: IpProtocol::TCP,
        local_addr: IpAddr::V4(*local.ip()),
        local_port: local.port(),
        remote_addr: IpAddr::V4(*remote.ip()),
        remote_port: remote.port(),
    }
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
        if let Some(t) = s.tcb() {
            let key = flow_key(t.local(), t.remote());
            if self.flows.get(&key) == Some(&h) {
                self.flows.remove(&key);
            }
            // An embryo that dies leaves its listener's SYN queue.
            if let Some(p) = s.parent {
                if t.is_passive() {
                    if let Some(Kind::Listener(l)) = self.socket_mut(p).map(|p| &mut p.kind) {
                        l.forget(h);
                    }
                }
            }
        }
    }

    fn socket(&self, h: SocketHandle) -> Result<&Socket, Error> {
        slot(&self.slots, h).ok_or(Error::BadHandle)
    }

    fn socket_mut(&mut self, h: SocketHandle) -> Option<&mut Socket> {
        slot_mut(&mut self.slots, h)
    }

    /// The connection of a handle its user holds.
    fn tcb_mut(&mut self, h: SocketHandle) -> Result<&mut Tcb, Error> {
        let s = self.socket_mut(h).ok_or(Error::BadHandle)?;
        match &mut s.kind {
            Kind::Tcb(t) => Ok(t),
            _ => Err(Error::NotConnected),
        }
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

    fn endpoints(&self, local: SocketAddrV4, remote: SocketAddrV4, key: &FlowKey) -> Endpoints {
        Endpoints {
            local,
            remote,
            iss: self.isn.isn(key, self.now),
            ts_offset: self.isn.ts_offset(key),
            local_mss: self.mss,
        }
    }

    // ---- receive ----

    fn receive(&mut self, frame: &[u8]) {
        let Some(f) = self.counters.record(parse_frame(frame, self.cfg.checksums)) else {
            return;
        };
        match f.network {
            Network::Ipv4(ip, Transport::Tcp(seg)) if ip.dst_addr == self.cfg.addr => {
                // A connection's first segment tells where its peer (or
                // the router before it) is: its answers go to that MAC,
                // whether or not the peer asked for ours by ARP (its
                // kernel may hold our MAC from an earlier run's ARP).
                if seg.flags.contains(TcpFlags::SYN) {
                    self.neighbours.learn(ip.src_addr, f.ethernet.src_addr);
                }
                self.tcp_input(ip.src_addr, ip.dst_addr, &seg);
            }
            // RFC 826: answer who-has for our address, so that a peer can
            // reach this interface without a static neighbour entry, and
            // "merge the <protocol type, sender protocol address, sender
            // hardware address> triplet into the table".
            Network::Arp(arp)
                if arp.operation == ArpOperation::Request
                    && arp.target_protocol_addr == self.cfg.addr =>
            {
                self.neighbours
                    .learn(arp.source_protocol_addr, arp.source_hardware_addr);
                if self.arp_replies.len() < MAX_PENDING_RESETS {
                    self.arp_replies.push_back(ArpRepr {
                        operation: ArpOperation::Reply,
                        source_hardware_addr: self.cfg.mac,
                        source_protocol_addr: self.cfg.addr,
                        target_hardware_addr: arp.source_hardware_addr,
                        target_protocol_addr: arp.source_protocol_addr,
                    });
                }
            }
            _ => self.unhandled += 1,
        }
    }

    fn tcp_input(&mut self, src: Ipv4Addr, dst: Ipv4Addr, seg: &TcpRepr<'_>) {
        let local = SocketAddrV4::new(dst, seg.dst_port);
        let remote = SocketAddrV4::new(src, seg.src_port);
        let key = flow_key(local, remote);
        let mut iss = None;
        if let Some(&h) = self.flows.get(&key) {
            let syn = seg.flags.contains(TcpFlags::SYN)
                && !seg.flags.intersects(TcpFlags::ACK | TcpFlags::RST);
            let takeover = match self.socket(h).ok().and_then(|s| s.tcb()) {
                Some(t) if syn && t.accepts_new_syn(seg) => Some(t.time_wait_successor_iss()),
                _ => None,
            };
            match takeover {
                // RFC 1122 §4.2.2.13 / RFC 6191: a new SYN ends TIME-WAIT
                // and goes to the listener, if there is one.
                Some(next) if self.has_listener(&key) => {
                    self.retire(h);
                    iss = Some(next);
                }
                _ => {
                    self.connection_input(h, local, remote, seg);
                    return;
                }
            }
        }
        if let Some(&l) = self.ports.lookup(&key.listen_key()) {
            if matches!(self.socket(l).map(|s| &s.kind), Ok(Kind::Listener(_))) {
                self.listen_input(l, local, remote, &key, seg, iss);
                return;
            }
        }
        // RFC 9293 §3.10.7.1, CLOSED: "An incoming segment not containing
        // a RST causes a RST to be sent in response."
        self.reset_for(local, remote, seg);
    }

    fn connection_input(
        &mut self,
        h: SocketHandle,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &TcpRepr<'_>,
    ) {
        let now = self.now;
        let parent = self.socket(h).ok().and_then(|s| s.parent);
        let accept_ok = match parent.and_then(|p| self.socket(p).ok()).map(|p| &p.kind) {
            Some(Kind::Listener(l)) => l.has_room(),
            _ => true,
        };
        let Some(s) = slot_mut(&mut self.slots, h) else {
            return;
        };
        let Kind::Tcb(tcb) = &mut s.kind else { return };
        let reaction = tcb.process(now, seg, accept_ok, &mut self.stats);
        self.touch(h);
        match reaction {
            Reaction::Established => {
                if let Some(p) = parent {
                    if let Some(Kind::Listener(l)) = self.socket_mut(p).map(|p| &mut p.kind) {
                        l.established(h);
                    }
                    self.touch(p);
                }
            }
            Reaction::Reset(seq) => {
                self.queue_reset(PendingSegment::reset(local, remote, seq.0, None))
            }
            Reaction::AcceptQueueFull | Reaction::None => {}
        }
    }

    /// RFC 9293 §3.10.7.2, LISTEN.
    fn listen_input(
        &mut self,
        l: SocketHandle,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        key: &FlowKey,
        seg: &TcpRepr<'_>,
        iss: Option<SeqNumber>,
    ) {
        let f = seg.flags;
        // "First, check for a RST: An incoming RST segment could not be
        // valid since it could not have been sent in response to anything
        // sent by this incarnation of the connection. An incoming RST
        // should be ignored."
        if f.contains(TcpFlags::RST) {
            return;
        }
        // "Second, check for an ACK: Any acknowledgment is bad if it arrives
        // on a connection still in the LISTEN state. An acceptable reset
        // segment should be formed for any arriving ACK-bearing segment:
        // <SEQ=SEG.ACK><CTL=RST>".
        if f.contains(TcpFlags::ACK) {
            if !f.contains(TcpFlags::SYN) && self.cookie_ack(l, local, remote, key, seg) {
                return;
            }
            self.reset_for(local, remote, seg);
            return;
        }
        // "Third, check for a SYN".
        if !f.contains(TcpFlags::SYN) {
            return;
        }
        let syn_limit = self.cfg.syn_backlog;
        let Ok(Kind::Listener(listener)) = self.socket(l).map(|s| &s.kind) else {
            return;
        };
        if listener.syn_queue >= syn_limit {
            self.stats.syn_queue_overflows += 1;
            if self.cfg.syn_cookies {
                self.send_cookie(local, remote, key, seg);
            }
            return;
        }
        let mut ep = self.endpoints(local, remote, key);
        if let Some(iss) = iss {
            ep.iss = iss;
        }
        let mut tcb = Tcb::accept_syn(&self.cfg.tcp, ep, seg);
        tcb.provide_storage(&mut self.storage);
        if self.adopt(l, key, tcb).is_none() {
            self.stats.syn_queue_overflows += 1;
            return;
        }
        if let Some(Kind::Listener(listener)) = self.socket_mut(l).map(|s| &mut s.kind) {
            listener.syn_queue += 1;
        }
    }

    /// A new connection of listener `l` on `key`: a slot and a flow entry,
    /// or nothing if either is full.
    fn adopt(&mut self, l: SocketHandle, key: &FlowKey, tcb: Tcb) -> Option<SocketHandle> {
        let mut child = Socket::new(Kind::Tcb(Box::new(tcb)), false);
        child.parent = Some(l);
        child.in_flows = true;
        let h = self.alloc(child).ok()?;
        if self.flows.insert(*key, h).is_err() {
            if let Some(s) = self.socket_mut(h) {
                s.parent = None;
            }
            self.release(h);
            return None;
        }
        self.touch(h);
        Some(h)
    }

    /// RFC 4987 §3.6: the SYN queue is full; answer with a SYN-ACK whose
    /// ISN is a cookie, and keep nothing.
    fn send_cookie(
        &mut self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        key: &FlowKey,
        syn: &TcpRepr<'_>,
    ) {
        let o = &syn.options;
        let opts = CookieOptions {
            mss: o.mss.unwrap_or(536),
            window_scale: o.window_scale,
            sack_permitted: o.sack_permitted,
        };
        let mut ep = self.endpoints(local, remote, key);
        ep.iss = self
            .cookies
            .encode(key, SeqNumber(syn.seq_number), self.now, opts);
        let seg = Tcb::cookie_syn_ack(&self.cfg.tcp, ep, syn, self.now);
        self.last_cookie = Some(self.now);
        self.stats.syn_cookies_sent += 1;
        self.queue_reset(PendingSegment { local, remote, seg });
    }

    /// An ACK to a listener with no connection: if SYN cookies were sent
    /// lately and this one checks out, the connection it stands for is
    /// made, established, and queued for accept. Returns whether the ACK
    /// was taken (made a connection, or dropped for a full accept queue).
    fn cookie_ack(
        &mut self,
        l: SocketHandle,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        key: &FlowKey,
        seg: &TcpRepr<'_>,
    ) -> bool {
        let recent = self
            .last_cookie
            .is_some_and(|t| self.now.saturating_since(t) <= core::time::Duration::from_secs(128));
        if !recent {
            return false;
        }
        let irs = SeqNumber(seg.seq_number.wrapping_sub(1));
        let iss = SeqNumber(seg.ack_number.wrapping_sub(1));
        let Some(opts) = self.cookies.decode(key, irs, iss, self.now) else {
            self.stats.syn_cookies_failed += 1;
            return false;
        };
        let room = matches!(self.socket(l).map(|s| &s.kind), Ok(Kind::Listener(x)) if x.has_room());
        if !room {
            self.stats.accept_queue_overflows += 1;
            return true;
        }
        let mut ep = self.endpoints(local, remote, key);
        ep.iss = iss;
        let mut tcb = Tcb::from_cookie(&self.cfg.tcp, ep, irs, opts, seg);
        tcb.provide_storage(&mut self.storage);
        // The ACK may carry data (and a FIN): the connection takes it.
        tcb.process(self.now, seg, true, &mut self.stats);
        let Some(h) = self.adopt(l, key, tcb) else {
            return true;
        };
        self.stats.syn_cookies_accepted += 1;
        if let Some(Kind::Listener(listener)) = self.socket_mut(l).map(|s| &mut s.kind) {
            listener.accept_queue.push_back(h);
        }
        self.touch(l);
        true
    }

    fn has_listener(&self, key: &FlowKey) -> bool {
        self.ports
            .lookup(&key.listen_key())
            .and_then(|l| self.socket(*l).ok())
            .is_some_and(|s| matches!(s.kind, Kind::Listener(_)))
    }

    /// End a connection at once and give up its 4-tuple (a new connection
    /// takes it over); its slot goes if no user holds it.
    fn retire(&mut self, h: SocketHandle) {
        let Some(s) = self.socket_mut(h) else { return };
        s.in_flows = false;
        let user = s.user;
        let Kind::Tcb(t) = &mut s.kind else { return };
        t.retire();
        let key = flow_key(t.local(), t.remote());
        if self.flows.get(&key) == Some(&h) {
            self.flows.remove(&key);
        }
        if user {
            self.touch(h);
        } else {
            self.release(h);
        }
    }

    /// RFC 9293 §3.10.7.1: "If the ACK bit is off, sequence number zero is
    /// used, <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>. If the ACK bit is
    /// on, <SEQ=SEG.ACK><CTL=RST>." Never in answer to a RST.
    fn reset_for(&mut self, local: SocketAddrV4, remote: SocketAddrV4, seg: &TcpRepr<'_>) {
        if seg.flags.contains(TcpFlags::RST) {
            return;
        }
        let reset = if seg.flags.contains(TcpFlags::ACK) {
            PendingSegment::reset(local, remote, seg.ack_number, None)
        } else {
            let end = SeqNumber(seg.seq_number) + seg.segment_len();
            PendingSegment::reset(local, remote, 0, Some(end.0))
        };
        self.queue_reset(reset);
    }

    fn queue_reset(&mut self, r: PendingSegment) {
        if self.resets.len() >= MAX_PENDING_RESETS {
            self.resets_dropped += 1;
        } else {
            self.resets.push_back(r);
        }
    }

    // ---- timers ----

    fn run_timers(&mut self) {
        let now = self.now;
        if self.next_timer.is_none_or(|t| t > now) {
            return;
        }
        let mut next: Option<Instant> = None;
        for index in 0..self.slots.len() {
            let Some(s) = self.slots[index].socket.as_mut() else {
                continue;
            };
            let Kind::Tcb(t) = &mut s.kind else { continue };
            if t.poll_at().is_some_and(|d| d <= now) {
                t.on_timer(now, &mut self.stats);
                if !s.touched {
                    s.touched = true;
                    self.touched.push(index as u32);
                }
            }
            if let Some(d) = t.poll_at() {
                next = Some(next.map_or(d, |n| n.min(d)));
            }
        }
        self.next_timer = next;
    }

    // ---- transmit ----

    fn egress<D: Device>(&mut self, device: &mut D) {
        let link = Link {
            mac: self.cfg.mac,
            neighbour: self.cfg.neighbour,
            neighbours: self.neighbours,
        };
        while let Some(reply) = self.arp_replies.front().copied() {
            if !link.send_arp(device, &reply) {
                return;
            }
            self.arp_replies_sent += 1;
            self.arp_replies.pop_front();
        }
        while let Some(r) = self.resets.front().copied() {
            if !link.send(
                device,
                &mut self.ip_ident,
                *r.local.ip(),
                *r.remote.ip(),
                &r.seg,
            ) {
                return;
            }
            if r.seg.flags.contains(TcpFlags::RST) {
                self.stats.resets_sent += 1;
            }
            self.resets.pop_front();
        }
        let now = self.now;
        let mut i = 0;
        while i < self.touched.len() {
            let index = self.touched[i];
            i += 1;
            let Some(h) = self.handle_at(index) else {
                continue;
            };
            let Some(s) = slot_mut(&mut self.slots, h) else {
                continue;
            };
            let Kind::Tcb(t) = &mut s.kind else { continue };
            let (local, remote) = (*t.local().ip(), *t.remote().ip());
            let ident = &mut self.ip_ident;
            let done = t.dispatch(now, &mut self.stats, |seg| {
                link.send(device, ident, local, remote, seg)
            });
            if let Some(d) = t.poll_at() {
                self.next_timer = Some(self.next_timer.map_or(d, |n| n.min(d)));
            }
            if !done {
                // The device is full: the rest waits for the next poll.
                self.unfinished = Some(i - 1);
                break;
            }
        }
    }

    /// After a poll: release what is finished, queue readiness events.
    fn report_events(&mut self) {
        let touched = core::mem::take(&mut self.touched);
        for &index in &touched {
            let pressed = (self.slots.len() - self.free.len()) * 4 >= self.cfg.max_sockets * 3;
            let Some(h) = self.handle_at(index) else {
                continue;
            };
            let Some(s) = slot_mut(&mut self.slots, h) else {
                continue;
            };
            s.touched = false;
            // Linux's `tcp_max_tw_buckets`: with the table three quarters
            // full, a connection nobody holds any more skips TIME-WAIT
            // (counted), or a server closing first (HTTP's `Connection:
            // close`) would fill the table with TIME-WAITs and refuse new
            // connections for 2*MSL.
            let user = s.user;
            let mut overflow = false;
            if let Some(t) = s.tcb_mut() {
                if pressed && !user && t.state() == State::TimeWait {
                    t.retire();
                    overflow = true;
                }
                // A connection done with its rings gives them back.
                t.reclaim_storage(&mut self.storage);
            }
            if overflow {
                self.stats.time_wait_overflows += 1;
            }
            let Some(s) = self.socket_mut(h) else {
                continue;
            };
            let closed = s
                .tcb()
                .is_some_and(|t| t.state() == State::Closed && t.idle());
            if closed && s.in_flows {
                s.in_flows = false;
                if let Some(t) = s.tcb() {
                    let key = flow_key(t.local(), t.remote());
                    if self.flows.get(&key) == Some(&h) {
                        self.flows.remove(&key);
                    }
                }
            }
            let Some(s) = slot_mut(&mut self.slots, h) else {
                continue;
            };
            if !s.user {
                if closed {
                    self.release(h);
                }
                continue;
            }
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
        let now = self.now;
        let s = self.socket_mut(h).ok_or(Error::BadHandle)?;
        s.user = false;
        match &mut s.kind {
            Kind::Idle => self.release(h),
            Kind::Listener(_) => {
                // Connections not handed out are reset (Linux does the
                // same on close of a listener).
                let mut children = Vec::new();
                for (index, slot) in self.slots.iter().enumerate() {
                    if let Some(c) = &slot.socket {
                        if c.parent == Some(h) {
                            children.push(SocketHandle::new(index as u32, slot.gen));
                        }
                    }
                }
                for c in children {
                    if let Some(cs) = self.socket_mut(c) {
                        cs.parent = None;
                        if let Kind::Tcb(t) = &mut cs.kind {
                            t.abort();
                        }
                    }
                    self.touch(c);
                }
                self.release(h);
            }
            Kind::Tcb(t) => {
                t.close(now);
                self.touch(h);
            }
        }
        Ok(())
    }
}

/// Emit a whole frame into a device buffer; `false` when the device is full.
fn transmit_frame<D: Device>(device: &mut D, frame: &Frame<'_>) -> bool {
    let len = frame.buffer_len();
    device.transmit(|buf| {
        if buf.len() < len {
            return 0;
        }
        frame.emit(buf);
        len
    })
}

/// Peers' MACs learned from their ARP requests and SYNs: a fixed table, the oldest
/// entry replaced when full (a shard talks to few on-link peers: a client
/// host or two, a router).
#[derive(Debug, Clone, Copy)]
struct Neighbours {
    entries: [(Ipv4Addr, EthernetAddress); Neighbours::MAX],
    len: usize,
    next: usize,
}

impl Default for Neighbours {
    fn default() -> Neighbours {
        Neighbours {
            entries: [(Ipv4Addr::UNSPECIFIED, EthernetAddress::default()); Neighbours::MAX],
            len: 0,
            next: 0,
        }
    }
}

impl Neighbours {
    const MAX: usize = 16;

    fn learn(&mut self, ip: Ipv4Addr, mac: EthernetAddress) {
        if ip.is_unspecified() {
            return;
        }
        if let Some(e) = self.entries[..self.len].iter_mut().find(|e| e.0 == ip) {
            e.1 = mac;
            return;
        }
        self.entries[self.next] = (ip, mac);
        self.next = (self.next + 1) % Self::MAX;
        self.len = (self.len + 1).min(Self::MAX);
    }

    fn get(&self, ip: Ipv4Addr) -> Option<EthernetAddress> {
        self.entries[..self.len]
            .iter()
            .find(|e| e.0 == ip)
            .map(|e| e.1)
    }
}

/// The link-layer part of sending.
#[derive(Debug, Clone, Copy)]
struct Link {
    mac: EthernetAddress,
    neighbour: EthernetAddress,
    neighbours: Neighbours,
}

impl Link {
    /// Transmit an ARP packet to its target; `false` when the device is full.
    fn send_arp<D: Device>(&self, device: &mut D, arp: &ArpRepr) -> bool {
        let frame = Frame {
            ethernet: EthernetRepr {
                src_addr: self.mac,
                dst_addr: arp.target_hardware_addr,
                vlan: None,
                ethertype: EtherType::ARP,
            },
            network: Network::Arp(*arp),
        };
        transmit_frame(device, &frame)
    }

    /// Frame and transmit one segment; `false` when the device is full.
    fn send<D: Device>(
        &self,
        device: &mut D,
        ident: &mut u16,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        seg: &TcpRepr<'_>,
    ) -> bool {
        *ident = ident.wrapping_add(1);
        // The TCB sizes its segments to the MSS it derived from this MTU.
        debug_assert!(
            crate::wire::ipv4::HEADER_LEN + seg.buffer_len() <= device.caps().mtu,
            "a TCP segment of {} bytes over the MTU {}",
            seg.buffer_len(),
            device.caps().mtu
        );
        let frame = Frame {
            ethernet: EthernetRepr {
                src_addr: self.mac,
                dst_addr: self.neighbours.get(dst).unwrap_or(self.neighbour),
                vlan: None,
                ethertype: EtherType::IPV4,
            },
            network: Network::Ipv4(
                Ipv4Repr {
                    src_addr: src,
                    dst_addr: dst,
                    protocol: IpProtocol::TCP,
                    payload_len: seg.buffer_len(),
                    ttl: 64,
                    tos: 0,
                    ident: *ident,
                    dont_frag: true,
                },
                Transport::Tcp(*seg),
            ),
        };
        transmit_frame(device, &frame)
    }
}
