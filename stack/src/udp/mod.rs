//! UDP over IPv4 (RFC 768), with the ARP (RFC 826) and ICMP (RFC 792) a host
//! needs around it: one [`UdpStack`] per shard.
//!
//! A [`UdpStack`] owns a [`Device`], the neighbour cache, the sockets and
//! their receive queues. Like the rest of the crate it makes no system call
//! and starts no thread; the caller drives it:
//!
//! - [`UdpStack::bind`] a port (0: an ephemeral one), then
//!   [`UdpStack::send_to`] and [`UdpStack::recv_from`], which keep message
//!   boundaries: one call, one datagram;
//! - [`UdpStack::poll`]`(now)` receives one batch from the device, answers ARP
//!   requests for the stack's address and ICMP echo requests (so `ping`
//!   works), queues datagrams to their sockets, sends ICMP port unreachable
//!   (rate-limited) for closed ports, retries ARP, and flushes the device.
//!
//! The data path does not allocate: each socket's receive queue is a ring of
//! fixed-size slots made at `bind`, a datagram sent to a resolved peer is
//! written straight into the device's transmit buffer (a UMEM frame over
//! AF_XDP), and a datagram received is copied once, from the device's frame
//! into its socket's slot. A datagram to a peer whose MAC is not known yet
//! waits in a bounded queue (also preallocated) while ARP resolves it.
//! Replies the stack makes itself (ARP, ICMP) are staged in a small
//! preallocated ring during the receive batch (the device's frame is lent
//! only for the callback) and transmitted after it.
//!
//! Every received frame ends in exactly one counter of [`UdpCounters`]:
//! malformed ones in [`UdpCounters::parse`] by [`DropReason`](crate::DropReason),
//! the others by what happened to them. Nothing received can make it panic.
//!
//! Not here (yet): IP fragmentation and reassembly (a datagram is at most
//! the MTU less 28 bytes; received fragments are dropped and counted),
//! broadcast and multicast sockets, ICMP errors delivered to sockets (they
//! are counted), IP options, VLAN tags (tagged frames are counted
//! `unhandled`), IPv6.

mod ring;

use core::fmt;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::ops::RangeInclusive;

use ring::SlotRing;

use crate::arp::{self, Action, ArpConfig, Lookup};
use crate::frame::{parse_frame, Frame, Network, Transport};
use crate::icmp::{self, RateLimit};
use crate::phy::Device;
use crate::time::Instant;
use crate::wire::icmp::unreachable;
use crate::wire::{
    ArpOperation, ArpRepr, Checksums, EtherType, EthernetAddress, EthernetRepr, Icmpv4Repr,
    IpProtocol, Ipv4Packet, Ipv4Repr, UdpRepr,
};
use crate::Counters;

/// The ephemeral ports `bind(0)` picks from: the dynamic range of RFC 6335 §6.
pub const EPHEMERAL_PORTS: RangeInclusive<u16> = 49152..=65535;

/// IPv4 header (no options) and UDP header: what a datagram adds to its
/// payload inside the MTU.
const HEADERS: usize = 20 + 8;

/// How a [`UdpStack`] is set up.
#[derive(Debug, Clone)]
pub struct UdpConfig {
    /// The stack's MAC address (its interface's).
    pub mac: EthernetAddress,
    /// The stack's IPv4 address.
    pub ip: Ipv4Addr,
    /// Prefix length of the on-link subnet: peers in it are resolved with
    /// ARP directly, others through `gateway`.
    pub prefix_len: u8,
    /// The link's MTU, where it is lower than what the device can carry
    /// (an AF_XDP device reports what its UMEM frames hold, not the
    /// interface's MTU): datagrams are limited to it less 28 bytes. `None`:
    /// the device's.
    pub mtu: Option<usize>,
    /// The router for peers off the subnet; `None`: they are unreachable
    /// ([`SendError::NoRoute`]).
    pub gateway: Option<Ipv4Addr>,
    /// Sockets at most.
    pub max_sockets: usize,
    /// Datagrams each socket's receive queue holds; more are dropped and
    /// counted ([`UdpCounters::socket_queue_full`]).
    pub rx_queue: usize,
    /// Datagrams waiting for ARP, at most, all peers together.
    pub arp_pending: usize,
    /// The neighbour cache: size, retries (3, 100 ms apart by default),
    /// lifetime, hold-down after a failure.
    pub arp: ArpConfig,
    /// Verify received checksums (`Trust` only where the sender leaves them
    /// to hardware, e.g. a veth peer with tx checksum offload on).
    pub checksums: Checksums,
    /// Frames taken from the device per poll, at most.
    pub rx_batch: usize,
    /// Time to live of the datagrams sent.
    pub ttl: u8,
    /// ICMP error messages (port unreachable) per second, at most.
    pub icmp_error_rate: u32,
    /// ICMP error messages in a burst, at most.
    pub icmp_error_burst: u32,
    /// Frames the stack makes itself (ARP, ICMP) held between a receive
    /// batch and the device's transmit ring, at most; more are dropped and
    /// counted ([`UdpCounters::control_dropped`]).
    pub control_queue: usize,
}

impl UdpConfig {
    /// Defaults around the given addresses: 64 sockets of 256 datagrams,
    /// 64 datagrams pending ARP, batches of 64, TTL 64, ICMP errors at most
    /// 100 per second in bursts of 10, checksums verified.
    pub fn new(mac: EthernetAddress, ip: Ipv4Addr, prefix_len: u8) -> UdpConfig {
        UdpConfig {
            mac,
            ip,
            prefix_len,
            mtu: None,
            gateway: None,
            max_sockets: 64,
            rx_queue: 256,
            arp_pending: 64,
            arp: ArpConfig::default(),
            checksums: Checksums::Verify,
            rx_batch: 64,
            ttl: 64,
            icmp_error_rate: 100,
            icmp_error_burst: 10,
            control_queue: 64,
        }
    }
}

/// What happened to the frames and datagrams of one stack. Plain `u64`s:
/// each shard owns its counters; [`UdpCounters::merge`] sums shards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UdpCounters {
    /// Received frames: accepted by the parser, or dropped by reason.
    pub parse: Counters,
    /// Frames taken from the device.
    pub rx_frames: u64,
    /// Datagrams queued to a socket.
    pub rx_datagrams: u64,
    /// Payload bytes of those.
    pub rx_bytes: u64,
    /// Datagrams handed to the device.
    pub tx_datagrams: u64,
    /// Payload bytes of those.
    pub tx_bytes: u64,
    /// Well-formed frames for another host (MAC or IP address).
    pub not_for_us: u64,
    /// Well-formed frames the stack has no use for: IPv6, TCP, VLAN-tagged,
    /// ICMP other than echo request and destination unreachable.
    pub unhandled: u64,
    /// Datagrams dropped because their socket's queue was full.
    pub socket_queue_full: u64,
    /// Datagrams dropped because they were longer than a queue slot (the
    /// device's MTU less 28).
    pub too_big: u64,
    /// Datagrams to a port with no socket.
    pub closed_port: u64,
    /// ICMP port unreachable messages sent for them.
    pub port_unreachable_sent: u64,
    /// ... and not sent, because of the rate limit.
    pub port_unreachable_suppressed: u64,
    /// ICMP echo requests answered.
    pub icmp_echo_replied: u64,
    /// ICMP destination unreachable messages received (counted, not
    /// delivered to sockets).
    pub icmp_unreachable_received: u64,
    /// ARP requests for the stack's address received.
    pub arp_requests_received: u64,
    /// ARP replies to the stack received.
    pub arp_replies_received: u64,
    /// ARP requests sent (first tries, retries and refreshes).
    pub arp_requests_sent: u64,
    /// ARP replies sent.
    pub arp_replies_sent: u64,
    /// Datagrams dropped because their peer's MAC could not be resolved.
    pub arp_failed: u64,
    /// Sends refused because the queue of datagrams waiting for ARP was full.
    pub arp_pending_full: u64,
    /// Times the device had no free transmit buffer (a send refused with
    /// [`SendError::Exhausted`], or a staged frame kept for the next poll).
    pub tx_no_buffer: u64,
    /// Frames the stack made itself (ARP, ICMP) and dropped because the
    /// staging ring was full.
    pub control_dropped: u64,
}

impl UdpCounters {
    /// Add another shard's counters to these.
    pub fn merge(&mut self, o: &UdpCounters) {
        self.parse.merge(&o.parse);
        let pairs = [
            (&mut self.rx_frames, o.rx_frames),
            (&mut self.rx_datagrams, o.rx_datagrams),
            (&mut self.rx_bytes, o.rx_bytes),
            (&mut self.tx_datagrams, o.tx_datagrams),
            (&mut self.tx_bytes, o.tx_bytes),
            (&mut self.not_for_us, o.not_for_us),
            (&mut self.unhandled, o.unhandled),
            (&mut self.socket_queue_full, o.socket_queue_full),
            (&mut self.too_big, o.too_big),
            (&mut self.closed_port, o.closed_port),
            (&mut self.port_unreachable_sent, o.port_unreachable_sent),
            (
                &mut self.port_unreachable_suppressed,
                o.port_unreachable_suppressed,
            ),
            (&mut self.icmp_echo_replied, o.icmp_echo_replied),
            (
                &mut self.icmp_unreachable_received,
                o.icmp_unreachable_received,
            ),
            (&mut self.arp_requests_received, o.arp_requests_received),
            (&mut self.arp_replies_received, o.arp_replies_received),
            (&mut self.arp_requests_sent, o.arp_requests_sent),
            (&mut self.arp_replies_sent, o.arp_replies_sent),
            (&mut self.arp_failed, o.arp_failed),
            (&mut self.arp_pending_full, o.arp_pending_full),
            (&mut self.tx_no_buffer, o.tx_no_buffer),
            (&mut self.control_dropped, o.control_dropped),
        ];
        for (mine, theirs) in pairs {
            *mine = mine.wrapping_add(theirs);
        }
    }
}

/// A bound socket. Stale after [`UdpStack::close`]: every verb then treats
/// it as unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpHandle {
    index: u32,
    gen: u32,
}

/// Why [`UdpStack::bind`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindError {
    /// The port has a socket already (`EADDRINUSE`).
    AddrInUse,
    /// Every ephemeral port has a socket (`EADDRNOTAVAIL`).
    NoEphemeralPort,
    /// [`UdpConfig::max_sockets`] sockets exist (`EMFILE`).
    TooManySockets,
}

/// Why [`UdpStack::send_to`] failed. Nothing was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// Not a socket of this stack (closed, or never bound) (`EBADF`).
    InvalidHandle,
    /// The payload is longer than the device's MTU less 28 bytes: the stack
    /// does not fragment (`EMSGSIZE`).
    TooLarge,
    /// Port 0, or an address that is not a single remote host (unspecified,
    /// loopback, broadcast, multicast, the stack's own) (`EINVAL`).
    Unaddressable,
    /// Off the subnet and no gateway (`ENETUNREACH`).
    NoRoute,
    /// The device has no free transmit buffer: poll, then send again
    /// (`EAGAIN`).
    Exhausted,
    /// The peer is being resolved and the queue of datagrams waiting for
    /// ARP is full (`EAGAIN`).
    PendingFull,
    /// The neighbour cache is full of resolutions in progress (`EAGAIN`).
    NeighbourCacheFull,
    /// ARP failed for the peer recently (hold-down) (`EHOSTUNREACH`).
    HostUnreachable,
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BindError::AddrInUse => "address in use: the port has a socket",
            BindError::NoEphemeralPort => "no ephemeral port left",
            BindError::TooManySockets => "too many sockets: raise max_sockets",
        })
    }
}

impl std::error::Error for BindError {}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::InvalidHandle => "not a bound socket of this stack",
            SendError::TooLarge => "datagram larger than the MTU allows (no fragmentation)",
            SendError::Unaddressable => "destination is not a single remote host and port",
            SendError::NoRoute => "destination off the subnet and no gateway",
            SendError::Exhausted => "no free transmit buffer: poll, then send again",
            SendError::PendingFull => "too many datagrams waiting for ARP",
            SendError::NeighbourCacheFull => "neighbour cache full of resolutions in progress",
            SendError::HostUnreachable => "ARP resolution failed for the next hop",
        })
    }
}

impl std::error::Error for SendError {}

#[derive(Debug)]
struct Socket {
    port: u16,
    rx: SlotRing<SocketAddrV4>,
    drops: u64,
}

#[derive(Debug, Default)]
struct SocketSlot {
    gen: u32,
    socket: Option<Socket>,
}

/// A datagram waiting for ARP.
#[derive(Debug, Clone, Copy)]
struct Pending {
    next_hop: Ipv4Addr,
    src_port: u16,
    dst: SocketAddrV4,
}

const NO_SOCKET: u32 = u32::MAX;

/// Everything but the device, so that a receive callback (which borrows
/// the device) can update it.
#[derive(Debug)]
struct Inner {
    cfg: UdpConfig,
    max_payload: usize,
    arp: arp::Cache,
    sockets: Vec<SocketSlot>,
    /// Socket index by local port.
    ports: Vec<u32>,
    live: usize,
    next_ephemeral: u16,
    pending: SlotRing<Pending>,
    /// Set when a neighbour was resolved: pending datagrams may go.
    release: bool,
    control: SlotRing<()>,
    /// Frames written into the device since its last flush.
    unflushed: bool,
    icmp_errors: RateLimit,
    ident: u16,
    counters: UdpCounters,
}

/// UDP sockets, ARP and ICMP over one device: one per shard.
#[derive(Debug)]
pub struct UdpStack<D: Device> {
    device: D,
    inner: Inner,
}

impl<D: Device> UdpStack<D> {
    /// A stack on `device`. Allocates everything but the sockets' queues
    /// (made at `bind`) here.
    pub fn new(device: D, cfg: UdpConfig) -> UdpStack<D> {
        let caps = device.caps();
        let mtu = cfg.mtu.map_or(caps.mtu, |m| m.min(caps.mtu));
        let max_payload = mtu.saturating_sub(HEADERS).min(65535 - HEADERS);
        let inner = Inner {
            max_payload,
            arp: arp::Cache::new(cfg.arp),
            sockets: (0..cfg.max_sockets)
                .map(|_| SocketSlot::default())
                .collect(),
            ports: vec![NO_SOCKET; 65536],
            live: 0,
            next_ephemeral: *EPHEMERAL_PORTS.start(),
            pending: SlotRing::new(cfg.arp_pending, max_payload),
            release: false,
            control: SlotRing::new(cfg.control_queue, caps.max_frame_len()),
            unflushed: false,
            icmp_errors: RateLimit::new(cfg.icmp_error_rate, cfg.icmp_error_burst),
            ident: 0,
            counters: UdpCounters::default(),
            cfg,
        };
        UdpStack { device, inner }
    }

    /// The device (for its statistics).
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device, to wait on it (e.g. an AF_XDP socket's `poll`).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// The configuration.
    pub fn config(&self) -> &UdpConfig {
        &self.inner.cfg
    }

    /// The longest payload a datagram may carry: the MTU (the device's, or
    /// [`UdpConfig::mtu`] if lower) less 28.
    pub fn max_payload(&self) -> usize {
        self.inner.max_payload
    }

    /// The counters.
    pub fn counters(&self) -> &UdpCounters {
        &self.inner.counters
    }

    /// When [`poll`](Self::poll) next has timed work (an ARP retry or
    /// give-up), if any: a caller that sleeps between polls wakes by then.
    pub fn next_timer(&self) -> Option<Instant> {
        self.inner.arp.next_timer()
    }

    /// The MAC the neighbour cache holds for `ip`, if resolved.
    pub fn neighbour(&self, ip: Ipv4Addr) -> Option<EthernetAddress> {
        self.inner.arp.get(ip)
    }

    /// A permanent neighbour (`ip neigh replace IP lladdr MAC nud
    /// permanent`): never resolved, refreshed or aged. For shards that
    /// share a peer: an ARP reply reaches only the shard whose queue it
    /// lands on, so each shard is told the peer's MAC instead. `false` if
    /// the cache is full of permanent entries.
    pub fn set_permanent_neighbour(&mut self, ip: Ipv4Addr, mac: EthernetAddress) -> bool {
        self.inner.arp.insert_permanent(ip, mac)
    }

    /// Bind a socket to `port` of the stack's address; 0 picks a free
    /// ephemeral port ([`EPHEMERAL_PORTS`]). Allocates the socket's receive
    /// queue ([`UdpConfig::rx_queue`] slots of [`max_payload`](Self::max_payload) bytes).
    pub fn bind(&mut self, port: u16) -> Result<UdpHandle, BindError> {
        let inner = &mut self.inner;
        let Some(index) = inner.sockets.iter().position(|s| s.socket.is_none()) else {
            return Err(BindError::TooManySockets);
        };
        let port = if port == 0 {
            inner.ephemeral_port()?
        } else if inner.ports[usize::from(port)] != NO_SOCKET {
            return Err(BindError::AddrInUse);
        } else {
            port
        };
        let slot = &mut inner.sockets[index];
        slot.gen = slot.gen.wrapping_add(1);
        slot.socket = Some(Socket {
            port,
            rx: SlotRing::new(inner.cfg.rx_queue, inner.max_payload),
            drops: 0,
        });
        let index = u32::try_from(index).unwrap_or(NO_SOCKET - 1);
        inner.ports[usize::from(port)] = index;
        inner.live += 1;
        Ok(UdpHandle {
            index,
            gen: slot.gen,
        })
    }

    /// Close a socket: its port is free, what it had queued is dropped.
    /// Returns whether `h` was open.
    pub fn close(&mut self, h: UdpHandle) -> bool {
        let inner = &mut self.inner;
        let Some(port) = inner.socket(h).map(|s| s.port) else {
            return false;
        };
        inner.ports[usize::from(port)] = NO_SOCKET;
        if let Some(slot) = inner.sockets.get_mut(h.index as usize) {
            slot.socket = None;
        }
        inner.live -= 1;
        true
    }

    /// The local port of a socket.
    pub fn local_port(&self, h: UdpHandle) -> Option<u16> {
        self.inner.socket_ref(h).map(|s| s.port)
    }

    /// Datagrams waiting in a socket's receive queue.
    pub fn rx_queued(&self, h: UdpHandle) -> usize {
        self.inner.socket_ref(h).map_or(0, |s| s.rx.len())
    }

    /// Datagrams a socket lost because its receive queue was full.
    pub fn socket_drops(&self, h: UdpHandle) -> u64 {
        self.inner.socket_ref(h).map_or(0, |s| s.drops)
    }

    /// Send one datagram from socket `h` to `dst`.
    ///
    /// To a peer whose MAC is known, the frame is written into a transmit
    /// buffer of the device at once and leaves at the next [`poll`](Self::poll)
    /// (which flushes the device). To one that is not, the datagram waits
    /// (copied into a bounded queue) while ARP resolves the next hop, and is
    /// sent by the poll that learns its MAC; while any datagram waits, later
    /// ones queue behind it, so that datagrams never overtake each other.
    pub fn send_to(
        &mut self,
        h: UdpHandle,
        dst: SocketAddrV4,
        payload: &[u8],
        now: Instant,
    ) -> Result<(), SendError> {
        let Self { device, inner } = self;
        let src_port = inner
            .socket_ref(h)
            .map(|s| s.port)
            .ok_or(SendError::InvalidHandle)?;
        if payload.len() > inner.max_payload {
            return Err(SendError::TooLarge);
        }
        let ip = *dst.ip();
        if dst.port() == 0
            || ip.is_unspecified()
            || ip.is_loopback()
            || ip.is_broadcast()
            || ip.is_multicast()
            || ip == inner.cfg.ip
        {
            return Err(SendError::Unaddressable);
        }
        let next_hop = inner.next_hop(ip).ok_or(SendError::NoRoute)?;
        let pending = Pending {
            next_hop,
            src_port,
            dst,
        };
        match inner.arp.lookup(next_hop, now) {
            Lookup::Resolved { mac, refresh } => {
                if refresh {
                    inner.stage_arp_request(next_hop);
                }
                if inner.pending.len() > 0 {
                    return inner.queue_pending(pending, payload);
                }
                if inner.transmit_udp(device, mac, pending, payload) {
                    Ok(())
                } else {
                    inner.counters.tx_no_buffer += 1;
                    Err(SendError::Exhausted)
                }
            }
            Lookup::Started => {
                inner.stage_arp_request(next_hop);
                inner.queue_pending(pending, payload)
            }
            Lookup::Resolving => inner.queue_pending(pending, payload),
            Lookup::Failed => Err(SendError::HostUnreachable),
            Lookup::Full => Err(SendError::NeighbourCacheFull),
        }
    }

    /// Take the oldest datagram of socket `h` into `buf`: its length and
    /// sender. A datagram longer than `buf` is cut to fit (the rest is
    /// lost, as with `recv` without `MSG_TRUNC`). `None`: nothing queued,
    /// or not a socket.
    pub fn recv_from(&mut self, h: UdpHandle, buf: &mut [u8]) -> Option<(usize, SocketAddrV4)> {
        self.recv_with(h, |payload, from| {
            let n = payload.len().min(buf.len());
            buf[..n].copy_from_slice(&payload[..n]);
            (n, from)
        })
    }

    /// Like [`recv_from`](Self::recv_from), without the copy: `f` sees the
    /// datagram in its queue slot, then the slot is freed.
    pub fn recv_with<R>(
        &mut self,
        h: UdpHandle,
        f: impl FnOnce(&[u8], SocketAddrV4) -> R,
    ) -> Option<R> {
        let s = self.inner.socket(h)?;
        let (from, payload) = s.rx.front()?;
        let r = f(payload, from);
        s.rx.pop();
        Some(r)
    }

    /// One round of work at `now`: receive a batch of at most
    /// [`UdpConfig::rx_batch`] frames and handle each, run the ARP timers,
    /// transmit the frames the stack made (ARP, ICMP) and the datagrams
    /// whose peer was resolved, and flush the device. Returns whether
    /// anything was received or sent (datagrams written by
    /// [`send_to`](Self::send_to) since the last poll included).
    pub fn poll(&mut self, now: Instant) -> bool {
        let Self { device, inner } = self;
        let received = device.receive(inner.cfg.rx_batch, |frame| inner.ingest(frame, now));
        let mut did = received > 0;
        while let Some(action) = inner.arp.poll(now) {
            did = true;
            match action {
                Action::Retry(addr) => inner.stage_arp_request(addr),
                Action::GaveUp(addr) => inner.drop_pending(addr),
            }
        }
        did |= inner.transmit_control(device);
        if inner.release {
            did |= inner.release_pending(device);
        }
        did |= core::mem::take(&mut inner.unflushed);
        device.flush();
        did
    }
}

impl Inner {
    fn socket(&mut self, h: UdpHandle) -> Option<&mut Socket> {
        let slot = self.sockets.get_mut(h.index as usize)?;
        if slot.gen != h.gen {
            return None;
        }
        slot.socket.as_mut()
    }

    fn socket_ref(&self, h: UdpHandle) -> Option<&Socket> {
        let slot = self.sockets.get(h.index as usize)?;
        if slot.gen != h.gen {
            return None;
        }
        slot.socket.as_ref()
    }

    fn ephemeral_port(&mut self) -> Result<u16, BindError> {
        let (lo, hi) = (*EPHEMERAL_PORTS.start(), *EPHEMERAL_PORTS.end());
        let span = u32::from(hi - lo) + 1;
        for _ in 0..span {
            let p = self.next_ephemeral;
            self.next_ephemeral = if p >= hi { lo } else { p + 1 };
            if self.ports[usize::from(p)] == NO_SOCKET {
                return Ok(p);
            }
        }
        Err(BindError::NoEphemeralPort)
    }

    fn on_link(&self, ip: Ipv4Addr) -> bool {
        let prefix = u32::from(self.cfg.prefix_len.min(32));
        let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.cfg.ip) & mask
    }

    fn next_hop(&self, ip: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.on_link(ip) {
            Some(ip)
        } else {
            self.cfg.gateway
        }
    }

    fn queue_pending(&mut self, p: Pending, payload: &[u8]) -> Result<(), SendError> {
        if self.pending.push(p, payload) {
            Ok(())
        } else {
            self.counters.arp_pending_full += 1;
            Err(SendError::PendingFull)
        }
    }

    /// Write a datagram straight into a transmit buffer of the device.
    fn transmit_udp<D: Device>(
        &mut self,
        device: &mut D,
        mac: EthernetAddress,
        p: Pending,
        payload: &[u8],
    ) -> bool {
        let sent = send_datagram(
            device,
            &self.cfg,
            &mut self.ident,
            &mut self.counters,
            mac,
            p,
            payload,
        );
        self.unflushed |= sent;
        sent
    }

    /// Stage a frame the stack makes itself, to go after the receive batch.
    fn stage(&mut self, frame: &Frame<'_>) {
        let len = frame.buffer_len();
        if !self.control.push_with((), |buf| {
            if buf.len() < len {
                return 0;
            }
            frame.emit(buf);
            len
        }) {
            self.counters.control_dropped += 1;
        }
    }

    fn arp_frame(&self, dst_mac: EthernetAddress, arp: ArpRepr) -> Frame<'static> {
        Frame {
            ethernet: EthernetRepr {
                src_addr: self.cfg.mac,
                dst_addr: dst_mac,
                vlan: None,
                ethertype: EtherType::ARP,
            },
            network: Network::Arp(arp),
        }
    }

    fn stage_arp_request(&mut self, addr: Ipv4Addr) {
        let frame = self.arp_frame(
            EthernetAddress::BROADCAST,
            ArpRepr {
                operation: ArpOperation::Request,
                source_hardware_addr: self.cfg.mac,
                source_protocol_addr: self.cfg.ip,
                target_hardware_addr: EthernetAddress([0; 6]),
                target_protocol_addr: addr,
            },
        );
        self.counters.arp_requests_sent += 1;
        self.stage(&frame);
    }

    fn ip_frame<'a>(
        &mut self,
        dst_mac: EthernetAddress,
        dst: Ipv4Addr,
        icmp: Icmpv4Repr<'a>,
    ) -> Frame<'a> {
        self.ident = self.ident.wrapping_add(1);
        Frame {
            ethernet: EthernetRepr {
                src_addr: self.cfg.mac,
                dst_addr: dst_mac,
                vlan: None,
                ethertype: EtherType::IPV4,
            },
            network: Network::Ipv4(
                Ipv4Repr {
                    src_addr: self.cfg.ip,
                    dst_addr: dst,
                    protocol: IpProtocol::ICMP,
                    payload_len: icmp.buffer_len(),
                    ttl: self.cfg.ttl,
                    tos: 0,
                    ident: self.ident,
                    dont_frag: false,
                },
                Transport::Icmpv4(icmp),
            ),
        }
    }

    /// One received frame: every outcome is counted once.
    fn ingest(&mut self, raw: &[u8], now: Instant) {
        self.counters.rx_frames += 1;
        let Some(frame) = self
            .counters
            .parse
            .record(parse_frame(raw, self.cfg.checksums))
        else {
            return;
        };
        let eth = frame.ethernet;
        if eth.dst_addr != self.cfg.mac && !eth.dst_addr.is_broadcast() {
            self.counters.not_for_us += 1;
            return;
        }
        if eth.vlan.is_some() {
            self.counters.unhandled += 1;
            return;
        }
        match frame.network {
            Network::Arp(arp) => self.ingest_arp(arp, now),
            Network::Ipv4(ip, _) if ip.dst_addr != self.cfg.ip => self.counters.not_for_us += 1,
            Network::Ipv4(ip, Transport::Udp(udp)) => self.ingest_udp(raw, eth, ip, udp, now),
            Network::Ipv4(
                ip,
                Transport::Icmpv4(Icmpv4Repr::EchoRequest {
                    ident,
                    seq_no,
                    data,
                }),
            ) => {
                // RFC 1122 §3.2.2.6: every host MUST implement an echo
                // server; the reply carries the request's identifier,
                // sequence number and data unchanged (RFC 792). It goes back
                // to the MAC it came from.
                if !eth.dst_addr.is_unicast() {
                    // RFC 1122 §3.2.2.6: an echo request to a broadcast MAY
                    // be silently discarded.
                    self.counters.not_for_us += 1;
                    return;
                }
                let reply = Icmpv4Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                };
                let frame = self.ip_frame(eth.src_addr, ip.src_addr, reply);
                self.counters.icmp_echo_replied += 1;
                self.stage(&frame);
            }
            Network::Ipv4(_, Transport::Icmpv4(Icmpv4Repr::DstUnreachable { .. })) => {
                self.counters.icmp_unreachable_received += 1;
            }
            Network::Ipv4(..) | Network::Ipv6(..) => self.counters.unhandled += 1,
        }
    }

    /// RFC 826, "Packet Reception": merge the sender into the table if it
    /// is there; if we are the target, add it if it was not, and answer a
    /// request with a reply from our address.
    fn ingest_arp(&mut self, arp: ArpRepr, now: Instant) {
        let for_us = arp.target_protocol_addr == self.cfg.ip;
        if self.arp.learn(
            arp.source_protocol_addr,
            arp.source_hardware_addr,
            for_us,
            now,
        ) {
            self.release = true;
        }
        if !for_us {
            self.counters.not_for_us += 1;
            return;
        }
        match arp.operation {
            ArpOperation::Request => {
                self.counters.arp_requests_received += 1;
                let reply = self.arp_frame(
                    arp.source_hardware_addr,
                    ArpRepr {
                        operation: ArpOperation::Reply,
                        source_hardware_addr: self.cfg.mac,
                        source_protocol_addr: self.cfg.ip,
                        target_hardware_addr: arp.source_hardware_addr,
                        target_protocol_addr: arp.source_protocol_addr,
                    },
                );
                self.counters.arp_replies_sent += 1;
                self.stage(&reply);
            }
            ArpOperation::Reply => self.counters.arp_replies_received += 1,
        }
    }

    fn ingest_udp(
        &mut self,
        raw: &[u8],
        eth: EthernetRepr,
        ip: Ipv4Repr,
        udp: UdpRepr<'_>,
        now: Instant,
    ) {
        let index = self.ports[usize::from(udp.dst_port)];
        if let Some(s) = self
            .sockets
            .get_mut(index as usize)
            .and_then(|s| s.socket.as_mut())
        {
            let from = SocketAddrV4::new(ip.src_addr, udp.src_port);
            if udp.payload.len() > self.max_payload {
                self.counters.too_big += 1;
            } else if s.rx.push(from, udp.payload) {
                self.counters.rx_datagrams += 1;
                self.counters.rx_bytes += udp.payload.len() as u64;
            } else {
                s.drops += 1;
                self.counters.socket_queue_full += 1;
            }
            return;
        }
        // RFC 1122 §4.1.3.1: a datagram to a port with no socket SHOULD
        // get an ICMP port unreachable; §3.2.2 says when an error MUST NOT
        // be sent, and lets us limit their rate.
        self.counters.closed_port += 1;
        if !icmp::may_answer_with_error(eth.dst_addr, ip.src_addr, ip.dst_addr, self.cfg.prefix_len)
        {
            return;
        }
        if !self.icmp_errors.allow(now) {
            self.counters.port_unreachable_suppressed += 1;
            return;
        }
        // RFC 792: quote the IP header and at least 64 bits of data; RFC
        // 1122 §3.2.2: as much as fits in 576 bytes.
        let ip_bytes = raw.get(eth.buffer_len()..).unwrap_or(&[]);
        let total = Ipv4Packet::new_checked(ip_bytes).map_or(0, |p| usize::from(p.total_len()));
        let quote = total
            .min(ip_bytes.len())
            .min(icmp::MAX_ERROR_DATAGRAM - 20 - 8);
        let error = Icmpv4Repr::DstUnreachable {
            code: unreachable::PORT,
            next_hop_mtu: 0,
            invoking: &ip_bytes[..quote],
        };
        let frame = self.ip_frame(eth.src_addr, ip.src_addr, error);
        self.counters.port_unreachable_sent += 1;
        self.stage(&frame);
    }

    /// Send the staged frames the device has room for; the rest wait.
    fn transmit_control<D: Device>(&mut self, device: &mut D) -> bool {
        let mut sent = false;
        while let Some(((), frame)) = self.control.front() {
            if !device.transmit(|buf| {
                let n = frame.len().min(buf.len());
                buf[..n].copy_from_slice(&frame[..n]);
                n
            }) {
                self.counters.tx_no_buffer += 1;
                break;
            }
            self.control.pop();
            sent = true;
        }
        sent
    }

    /// One pass over the datagrams waiting for ARP: those whose next hop
    /// is resolved go, in order; the rest keep their order.
    fn release_pending<D: Device>(&mut self, device: &mut D) -> bool {
        let mut sent = false;
        let mut blocked = false;
        for _ in 0..self.pending.len() {
            let Some((p, _)) = self.pending.front() else {
                break;
            };
            let mac = if blocked {
                None
            } else {
                self.arp.get(p.next_hop)
            };
            let Some(mac) = mac else {
                self.pending.requeue_front();
                continue;
            };
            // The payload lives in the ring: borrow the parts one by one.
            let ok = {
                let Inner {
                    pending,
                    cfg,
                    counters,
                    ident,
                    ..
                } = self;
                let Some((p, payload)) = pending.front() else {
                    break;
                };
                send_datagram(device, cfg, ident, counters, mac, p, payload)
            };
            if ok {
                self.pending.pop();
                sent = true;
            } else {
                self.counters.tx_no_buffer += 1;
                blocked = true;
                self.pending.requeue_front();
            }
        }
        self.release = blocked;
        sent
    }

    /// ARP gave up on `addr`: drop what waits for it.
    fn drop_pending(&mut self, addr: Ipv4Addr) {
        for _ in 0..self.pending.len() {
            match self.pending.front() {
                Some((p, _)) if p.next_hop == addr => {
                    self.pending.pop();
                    self.counters.arp_failed += 1;
                }
                Some(_) => self.pending.requeue_front(),
                None => break,
            }
        }
    }
}

/// [`Inner::transmit_udp`] over borrowed parts, for a payload that lives in
/// the stack itself (the pending queue).
fn send_datagram<D: Device>(
    device: &mut D,
    cfg: &UdpConfig,
    ident: &mut u16,
    counters: &mut UdpCounters,
    mac: EthernetAddress,
    p: Pending,
    payload: &[u8],
) -> bool {
    *ident = ident.wrapping_add(1);
    let frame = Frame {
        ethernet: EthernetRepr {
            src_addr: cfg.mac,
            dst_addr: mac,
            vlan: None,
            ethertype: EtherType::IPV4,
        },
        network: Network::Ipv4(
            Ipv4Repr {
                src_addr: cfg.ip,
                dst_addr: *p.dst.ip(),
                protocol: IpProtocol::UDP,
                payload_len: HEADERS - 20 + payload.len(),
                ttl: cfg.ttl,
                tos: 0,
                ident: *ident,
                // RFC 6864 §4.1: with DF set the ID field has no meaning.
                dont_frag: true,
            },
            Transport::Udp(UdpRepr {
                src_port: p.src_port,
                dst_port: p.dst.port(),
                payload,
            }),
        ),
    };
    let len = frame.buffer_len();
    let mut wrote = false;
    let sent = device.transmit(|buf| {
        if buf.len() < len {
            return 0;
        }
        frame.emit(buf);
        wrote = true;
        len
    }) && wrote;
    if sent {
        counters.tx_datagrams += 1;
        counters.tx_bytes += payload.len() as u64;
    }
    sent
}
