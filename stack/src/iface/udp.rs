//! UDP on the interface (RFC 768): the datagram socket verbs (bind,
//! send_to, recv_from), which keep message boundaries — one call, one
//! datagram — and the input of a received datagram: to the socket bound to
//! its port, else an ICMP port unreachable (rate-limited).
//!
//! The data path does not allocate: each socket's receive queue is a ring
//! of fixed-size slots made at `bind`; a datagram to a resolved peer is
//! written straight into the device's transmit buffer (a UMEM frame over
//! AF_XDP), and a datagram received is copied once, from the device's frame
//! into its socket's slot. Not here (yet): IP fragmentation and reassembly
//! (a datagram is at most the MTU less 28 bytes; received fragments are
//! dropped and counted), broadcast and multicast sockets, ICMP errors
//! delivered to sockets (they are counted).

use core::net::{IpAddr, SocketAddrV4};

use super::egress::Sent;
use super::socket::{Kind, Socket, UdpSocket};
use super::{port_taken, slot_mut, Inner, Interface, SocketHandle};
use crate::error::Error;
use crate::flow::ListenKey;
use crate::frame::Transport;
use crate::phy::Device;
use crate::storage::SlotRing;
use crate::wire::{EthernetRepr, IpProtocol, Ipv4Repr, UdpRepr};

impl<D: Device> Interface<D> {
    /// `socket(AF_INET, SOCK_DGRAM)`: a new unbound UDP socket.
    pub fn udp_socket(&mut self) -> Result<SocketHandle, Error> {
        self.inner.alloc(Socket::new(Kind::Udp(None), true))
    }

    /// A UDP socket bound to `port` of this interface's address (0: an
    /// ephemeral port): `socket` and `bind` in one call.
    pub fn udp_bind(&mut self, port: u16) -> Result<SocketHandle, Error> {
        let h = self.udp_socket()?;
        let addr = SocketAddrV4::new(self.inner.cfg.addr, port);
        if let Err(e) = self.bind(h, addr) {
            self.inner.release(h);
            return Err(e);
        }
        Ok(h)
    }

    /// The longest payload a datagram may carry: the MTU (the device's, or
    /// [`InterfaceConfig::mtu`](super::InterfaceConfig::mtu) if lower)
    /// less 28.
    pub fn max_payload(&self) -> usize {
        self.inner.max_payload
    }

    /// `sendto`: one datagram from UDP socket `h` (bound to an ephemeral
    /// port first if it is not bound) to `dst`.
    ///
    /// To a peer whose MAC is known, the frame is written into a transmit
    /// buffer of the device at once and leaves at the next
    /// [`poll`](Self::poll) (which flushes the device). To one that is not,
    /// the datagram waits (copied into a bounded queue) while ARP resolves
    /// the next hop, and is sent by the poll that learns its MAC; datagrams
    /// to one hop never overtake each other.
    ///
    /// Errors: EMSGSIZE (longer than [`max_payload`](Self::max_payload):
    /// no fragmentation), EINVAL (port 0, or not a single remote host),
    /// ENETUNREACH (off the subnet, no gateway), EHOSTUNREACH (ARP failed
    /// lately), ENOBUFS (too many frames wait for ARP), EAGAIN (the device
    /// has no free buffer: poll, then send again).
    pub fn send_to(
        &mut self,
        h: SocketHandle,
        dst: SocketAddrV4,
        payload: &[u8],
    ) -> Result<(), Error> {
        let s = self.inner.socket(h)?;
        let src_port = match (&s.kind, s.bound) {
            (Kind::Udp(Some(_)), Some(key)) => key.port,
            (Kind::Udp(None), _) => {
                self.bind(h, SocketAddrV4::new(self.inner.cfg.addr, 0))?;
                self.local_addr(h)?.port()
            }
            _ => return Err(Error::InvalidInput),
        };
        let Interface { device, inner } = self;
        if payload.len() > inner.max_payload {
            return Err(Error::MessageTooLong);
        }
        let ip = *dst.ip();
        if dst.port() == 0
            || ip.is_unspecified()
            || ip.is_loopback()
            || ip.is_broadcast()
            || ip.is_multicast()
            || inner.cfg.owns(ip)
        {
            return Err(Error::InvalidInput);
        }
        let udp = UdpRepr {
            src_port,
            dst_port: dst.port(),
            payload,
        };
        // RFC 6864 §4.1: with DF set the ID field has no meaning.
        let sent = inner.egress.send_ip(
            device,
            &mut inner.counters,
            inner.now,
            (inner.cfg.addr, ip),
            Transport::Udp(udp),
            true,
        );
        match sent {
            Sent::Out | Sent::Queued => {
                inner.counters.tx_datagrams += 1;
                inner.counters.tx_bytes += payload.len() as u64;
                Ok(())
            }
            Sent::DeviceFull => Err(Error::WouldBlock),
            Sent::Failed(e) => Err(e),
        }
    }

    /// `recvfrom`: the oldest datagram of UDP socket `h`, copied into
    /// `buf`: its length and sender. A datagram longer than `buf` is cut to
    /// fit (the rest is lost, as with `recv` without `MSG_TRUNC`). EAGAIN:
    /// nothing queued.
    pub fn recv_from(
        &mut self,
        h: SocketHandle,
        buf: &mut [u8],
    ) -> Result<(usize, SocketAddrV4), Error> {
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
        h: SocketHandle,
        f: impl FnOnce(&[u8], SocketAddrV4) -> R,
    ) -> Result<R, Error> {
        let s = slot_mut(&mut self.inner.slots, h).ok_or(Error::BadHandle)?;
        let Kind::Udp(u) = &mut s.kind else {
            return Err(Error::InvalidInput);
        };
        let Some(u) = u.as_mut() else {
            return Err(Error::WouldBlock);
        };
        let (from, payload) = u.rx.front().ok_or(Error::WouldBlock)?;
        let r = f(payload, from);
        u.rx.pop();
        if u.rx.len() == 0 {
            // The user has seen the queue run dry: the next datagram is
            // news (an event), as on an edge-triggered epoll.
            s.reported = s.readiness();
        }
        Ok(r)
    }

    /// Datagrams waiting in a UDP socket's receive queue.
    pub fn rx_queued(&self, h: SocketHandle) -> usize {
        match self.inner.socket(h).map(|s| &s.kind) {
            Ok(Kind::Udp(Some(u))) => u.rx.len(),
            _ => 0,
        }
    }

    /// Datagrams a UDP socket lost because its receive queue was full.
    pub fn socket_drops(&self, h: SocketHandle) -> u64 {
        match self.inner.socket(h).map(|s| &s.kind) {
            Ok(Kind::Udp(Some(u))) => u.drops,
            _ => 0,
        }
    }
}

impl Inner {
    /// `bind` of a UDP socket: port 0 picks a free ephemeral one; the
    /// receive queue is allocated now.
    pub(super) fn bind_udp(&mut self, h: SocketHandle, addr: SocketAddrV4) -> Result<(), Error> {
        let mut addr = addr;
        if addr.port() == 0 {
            let (ports, ip) = (&self.ports, self.cfg.addr);
            let port = self
                .ephemeral
                .allocate_local(|p| port_taken(ports, IpProtocol::UDP, ip, p))
                .ok_or(Error::AddrNotAvailable)?;
            addr.set_port(port);
        }
        self.bind_port(h, IpProtocol::UDP, addr)?;
        let rx = SlotRing::new(self.cfg.udp_rx_queue, self.max_payload);
        if let Some(s) = self.socket_mut(h) {
            s.kind = Kind::Udp(Some(UdpSocket { rx, drops: 0 }));
        }
        Ok(())
    }

    /// A datagram to this interface's address.
    pub(super) fn udp_input(
        &mut self,
        raw: &[u8],
        eth: EthernetRepr,
        ip: Ipv4Repr,
        udp: UdpRepr<'_>,
    ) {
        let key = ListenKey {
            protocol: IpProtocol::UDP,
            addr: IpAddr::V4(ip.dst_addr),
            port: udp.dst_port,
        };
        if let Some(&h) = self.ports.lookup(&key) {
            let max = self.max_payload;
            if let Some(u) = slot_mut(&mut self.slots, h).and_then(|s| s.udp_mut()) {
                let from = SocketAddrV4::new(ip.src_addr, udp.src_port);
                if udp.payload.len() > max {
                    self.counters.too_big += 1;
                } else if u.rx.push(from, udp.payload) {
                    self.counters.rx_datagrams += 1;
                    self.counters.rx_bytes += udp.payload.len() as u64;
                    // readable is news only when the queue was empty (the
                    // user drains it until EAGAIN, as on edge-triggered
                    // epoll)
                    if u.rx.len() == 1 {
                        self.touch(h);
                    }
                } else {
                    u.drops += 1;
                    self.counters.socket_queue_full += 1;
                }
                return;
            }
        }
        // RFC 1122 §4.1.3.1: a datagram to a port with no socket SHOULD
        // get an ICMP port unreachable.
        self.counters.closed_port += 1;
        self.port_unreachable(raw, eth, ip);
    }
}
