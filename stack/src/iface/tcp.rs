//! TCP on the interface: the stream socket verbs (listen, accept,
//! connect, send, recv, shutdown), the input of a received segment — to
//! its connection by 5-tuple, else to its listener, else a reset (RFC 9293
//! §3.10.7) — SYN cookies, TCP's timers and what connections send.

use core::net::{IpAddr, Ipv4Addr, SocketAddrV4};

use super::egress::Sent;
use super::socket::{Kind, Listener, Socket};
use super::{slot, slot_mut, Inner, Interface, Shutdown, SocketHandle, MAX_PENDING_RESETS};
use crate::error::Error;
use crate::flow::{FlowKey, RssQueue};
use crate::frame::Transport;
use crate::phy::Device;
use crate::storage::StoragePool;
use crate::tcp::{CookieOptions, Endpoints, Reaction, SeqNumber, State, Tcb};
use crate::wire::{IpProtocol, TcpFlags, TcpOptions, TcpRepr};

/// A segment sent on behalf of no connection: a reset (RFC 9293
/// §3.10.7.1) or a SYN cookie's SYN-ACK, from this interface's address.
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingSegment {
    /// Our address it leaves from (the one the segment it answers came to).
    local: Ipv4Addr,
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
        PendingSegment {
            local: *local.ip(),
            remote,
            seg,
        }
    }
}

impl<D: Device> Interface<D> {
    /// `socket(AF_INET, SOCK_STREAM)`: a new unbound TCP socket.
    pub fn socket(&mut self) -> Result<SocketHandle, Error> {
        self.inner.alloc(Socket::new(Kind::Idle, true))
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
        let addr = self.inner.cfg.addr;
        self.connect_from(h, addr, remote)
    }

    /// `connect` from `local_ip`, this interface's address or one of its
    /// [aliases](crate::InterfaceConfig::aliases), with an ephemeral port
    /// of that address (Linux's `bind(ip, 0)` under
    /// `IP_BIND_ADDRESS_NO_PORT`, then `connect`): each address has the
    /// whole port range to each server. EADDRNOTAVAIL for an address not
    /// ours; a socket bound to a port connects from the interface's address.
    pub fn connect_from(
        &mut self,
        h: SocketHandle,
        local_ip: Ipv4Addr,
        remote: SocketAddrV4,
    ) -> Result<(), Error> {
        let inner = &mut self.inner;
        if !inner.cfg.owns(local_ip) {
            return Err(Error::AddrNotAvailable);
        }
        let s = inner.socket(h)?;
        if s.bound.is_some() && local_ip != inner.cfg.addr {
            return Err(Error::InvalidInput);
        }
        match &s.kind {
            Kind::Idle => {}
            Kind::Tcb(t) if t.state() == State::SynSent => return Err(Error::AlreadyInProgress),
            Kind::Tcb(_) => return Err(Error::AlreadyConnected),
            Kind::Listener(_) | Kind::Udp(_) => return Err(Error::InvalidInput),
        }
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
        let (t, pool) = self.inner.tcb_and_pool(h)?;
        // the send ring's storage, from the pool if it gave it back
        t.provide_storage(pool);
        let n = t.send(data)?;
        self.inner.touch(h);
        Ok(n)
    }

    /// `send` in place: `f` writes into the send ring's longest free run
    /// and returns how many bytes it wrote, which are queued (no copy
    /// from a caller's buffer). EAGAIN when the ring is full.
    pub fn send_with(
        &mut self,
        h: SocketHandle,
        f: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, Error> {
        let (t, pool) = self.inner.tcb_and_pool(h)?;
        t.provide_storage(pool);
        let n = t.send_with(f)?;
        self.inner.touch(h);
        Ok(n)
    }

    /// `recv` in place: `f` reads the longest run of received bytes in
    /// the receive ring and returns how many it consumed (no copy into a
    /// caller's buffer). `Ok(0)` is the end of the stream. (A UDP socket's
    /// is [`recv_with`](Self::recv_with).)
    pub fn recv_stream_with(
        &mut self,
        h: SocketHandle,
        f: impl FnOnce(&[u8]) -> usize,
    ) -> Result<usize, Error> {
        let n = self.inner.tcb_mut(h)?.recv_with(f)?;
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
    /// `SO_ERROR`: the error the connection failed with, if any.
    pub fn error(&self, h: SocketHandle) -> Result<Option<Error>, Error> {
        let s = self.inner.socket(h)?;
        Ok(s.tcb().and_then(|t| t.error()))
    }

    /// The state of a socket: a listener is LISTEN, an unconnected socket
    /// (or a UDP one) CLOSED.
    pub fn state(&self, h: SocketHandle) -> Result<State, Error> {
        let s = self.inner.socket(h)?;
        Ok(match &s.kind {
            Kind::Idle | Kind::Udp(_) => State::Closed,
            Kind::Listener(_) => State::Listen,
            Kind::Tcb(t) => t.state(),
        })
    }

    /// The connection behind a handle (for inspection: RTO, MSS, what was
    /// negotiated).
    pub fn tcb(&self, h: SocketHandle) -> Result<&Tcb, Error> {
        self.inner.socket(h)?.tcb().ok_or(Error::NotConnected)
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
    /// `bind` of a TCP socket: port 0 is refused (a listener needs a
    /// port, and `connect` picks one).
    pub(super) fn bind_tcp(&mut self, h: SocketHandle, addr: SocketAddrV4) -> Result<(), Error> {
        if addr.port() == 0 {
            return Err(Error::InvalidInput);
        }
        self.bind_port(h, IpProtocol::TCP, addr)
    }

    /// What a socket's end takes from the tables: a connection its flow
    /// entry, an embryo its place in its listener's SYN queue.
    pub(super) fn forget_connection(&mut self, h: SocketHandle, s: &Socket) {
        let Some(t) = s.tcb() else { return };
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

    /// The connection of a handle its user holds.
    fn tcb_mut(&mut self, h: SocketHandle) -> Result<&mut Tcb, Error> {
        self.tcb_and_pool(h).map(|(t, _)| t)
    }

    /// The connection of a handle, and the pool of ring storage beside it.
    fn tcb_and_pool(&mut self, h: SocketHandle) -> Result<(&mut Tcb, &mut StoragePool), Error> {
        let s = slot_mut(&mut self.slots, h).ok_or(Error::BadHandle)?;
        match &mut s.kind {
            Kind::Tcb(t) => Ok((t, &mut self.storage)),
            _ => Err(Error::NotConnected),
        }
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

    /// A segment to this interface's address.
    pub(super) fn tcp_input(&mut self, src: Ipv4Addr, dst: Ipv4Addr, seg: &TcpRepr<'_>) {
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
        self.stats.no_connection += 1;
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
        if !seg.payload.is_empty() {
            // the receive ring's storage, from the pool if it gave it back
            tcb.provide_storage(&mut self.storage);
        }
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
        // its rings take storage with their first byte
        let tcb = Tcb::accept_syn(&self.cfg.tcp, ep, seg);
        if self.adopt(l, key, tcb).is_none() {
            self.stats.table_full += 1;
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
        self.queue_reset(PendingSegment {
            local: *local.ip(),
            remote,
            seg,
        });
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
            self.stats.table_full += 1;
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

    pub(super) fn run_tcp_timers(&mut self) {
        let now = self.now;
        while let Some((h, at)) = self.timers.pop_due(now) {
            let Some(s) = slot_mut(&mut self.slots, h) else {
                continue; // its socket is gone
            };
            if s.timer_at == Some(at) {
                s.timer_at = None;
            }
            let Kind::Tcb(t) = &mut s.kind else { continue };
            if t.poll_at().is_some_and(|d| d <= now) {
                t.on_timer(now, &mut self.stats);
                if !s.touched {
                    s.touched = true;
                    self.touched.push(h.index() as u32);
                }
            }
            if let Some(d) = t.poll_at() {
                self.timers.schedule_later(h, d, &mut s.timer_at);
            }
        }
        self.timers.finish();
    }

    // ---- transmit ----

    /// Resets and cookie SYN-ACKs owed, then what each touched connection
    /// has to send, until the device is full.
    pub(super) fn tcp_egress<D: Device>(&mut self, device: &mut D) {
        let now = self.now;
        while let Some(r) = self.resets.front().copied() {
            let sent = self.egress.send_ip(
                device,
                &mut self.counters,
                now,
                (r.local, *r.remote.ip()),
                Transport::Tcp(r.seg),
                true,
            );
            if sent == Sent::DeviceFull {
                return;
            }
            if r.seg.flags.contains(TcpFlags::RST) {
                self.stats.resets_sent += 1;
            }
            self.resets.pop_front();
        }
        let mut i = 0;
        while i < self.touched.len() {
            let index = self.touched[i];
            i += 1;
            let Some(h) = self.handle_at(index) else {
                continue;
            };
            let Inner {
                slots,
                egress,
                counters,
                stats,
                timers,
                ..
            } = self;
            let Some(s) = slot_mut(slots, h) else {
                continue;
            };
            let Kind::Tcb(t) = &mut s.kind else { continue };
            let route = (*t.local().ip(), *t.remote().ip());
            let done = t.dispatch(now, stats, |seg| {
                egress.send_ip(device, counters, now, route, Transport::Tcp(*seg), true)
                    != Sent::DeviceFull
            });
            if let Some(d) = t.poll_at() {
                timers.schedule(h, d, &mut s.timer_at);
            }
            if !done {
                // The device is full: the rest waits for the next poll.
                self.unfinished = Some(i - 1);
                break;
            }
        }
    }

    /// A touched socket after a poll: a connection nobody holds skips
    /// TIME-WAIT when the table is pressed, a connection gives back its
    /// rings and, once closed, its flow entry, and a closed socket nobody
    /// holds its slot. Returns whether a user still holds the socket (its
    /// readiness is to be reported).
    pub(super) fn settle_connection(&mut self, h: SocketHandle) -> bool {
        let pressed = (self.slots.len() - self.free.len()) * 4 >= self.cfg.max_sockets * 3;
        let Some(s) = slot_mut(&mut self.slots, h) else {
            return false;
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
            // A connection done with its rings gives them back, and an
            // open one those it has emptied.
            if !t.reclaim_storage(&mut self.storage) {
                t.reclaim_idle_storage(&mut self.storage);
            }
        }
        if overflow {
            self.stats.time_wait_overflows += 1;
        }
        let Some(s) = self.socket_mut(h) else {
            return false;
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
            return false;
        };
        if !s.user {
            if closed {
                self.release(h);
            }
            return false;
        }
        true
    }

    /// `close` of a listener: the connections it had not handed out are
    /// reset (Linux does the same).
    pub(super) fn close_listener(&mut self, h: SocketHandle) {
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

    /// `close` of a connection: FIN after the queued data (a reset with
    /// unread data); it lives on until done.
    pub(super) fn close_connection(&mut self, h: SocketHandle) {
        let now = self.now;
        if let Some(t) = self.socket_mut(h).and_then(|s| s.tcb_mut()) {
            t.close(now);
        }
        self.touch(h);
    }
}
