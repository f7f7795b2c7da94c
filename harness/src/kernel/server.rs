//! The kernel path's server: one epoll loop (mio) per thread, each with its
//! own `SO_REUSEPORT` listener and UDP socket, nonblocking sockets,
//! `TCP_NODELAY`, `recvmmsg`/`sendmmsg` for UDP: the shape an expert would
//! give an ordinary kernel server, so the baseline is a fair one.
//!
//! Services, by port (see [`Workload::port`]): `port` serves request/response
//! over TCP (raw or HTTP: rr and crr) and UDP echo (udp-rr); `port + 1` is a
//! TCP sink that verifies the stream payload and a UDP sink that counts
//! datagrams (stream, udp-stream).

use std::io::{self, ErrorKind, IoSlice, IoSliceMut, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use nix::sys::socket::{
    recvmmsg, sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage,
};
use socket2::{Domain, Protocol, Socket, Type};

use crate::app::{AppConn, IdleSweep, ServerApp, UdpAnswer};
use crate::error::usage;
use crate::metrics::{Recorder, Window, WindowCpu};
use crate::outcome::{ServerCounters, ServerReport, ServerThreadResult};
use crate::workload::{self, Messages, UDP_HEADER};

/// Which services a server runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Services {
    pub tcp_rr: bool,
    pub tcp_sink: bool,
    pub udp_echo: bool,
    pub udp_sink: bool,
}

impl Services {
    /// What a run of `w` needs served.
    pub fn for_workload(w: crate::workload::Workload) -> Services {
        use crate::workload::Workload;
        Services {
            tcp_rr: matches!(w, Workload::Rr | Workload::Crr),
            tcp_sink: w == Workload::Stream,
            udp_echo: w == Workload::UdpRr,
            udp_sink: w == Workload::UdpStream,
        }
    }

    pub const ALL: Services = Services {
        tcp_rr: true,
        tcp_sink: true,
        udp_echo: true,
        udp_sink: true,
    };
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub bind: IpAddr,
    pub messages: Messages,
    pub services: Services,
    /// One thread per entry, pinned to that CPU when given.
    pub cpus: Vec<Option<usize>>,
    pub netns: Option<String>,
    pub window: Window,
    /// Busy polling (`kernel-busy`): every socket and the epoll instance
    /// busy-poll, the loop spins, and `napi_iface`'s NAPI is set for it.
    pub busy: bool,
    /// The interface whose NAPI a busy server sets (and restores).
    pub napi_iface: Option<String>,
    /// Serve over io_uring (`kernel-uring`; TCP only) instead of epoll.
    pub uring: bool,
    /// Close connections whose peer sent nothing for this long (epoll
    /// only: `serve` never uses io_uring).
    pub idle_timeout: Option<Duration>,
}

/// Whether a socket error means the peer reset the connection.
fn reset_by_peer(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
    )
}

/// A server thread's loop: epoll, or io_uring.
enum Loop {
    Epoll(Box<ServerThread>),
    Uring(Box<super::uring::UringThread>),
}

/// A running server. `stop` ends it; dropping it stops it too.
pub struct KernelServer {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Result<ServerThreadResult>>>,
    /// A busy server's interface settings, restored when it is dropped.
    _napi: Option<super::napi::NapiTuning>,
}

impl KernelServer {
    /// Starts the threads and returns once every one of them has bound its
    /// sockets (or with the first bind error, e.g. a port in use).
    pub fn start(cfg: ServerConfig) -> Result<KernelServer> {
        if cfg.cpus.is_empty() {
            return Err(anyhow!("server needs at least one thread"));
        }
        // SO_REUSEPORT would silently share a port with another process's
        // SO_REUSEPORT socket: probe with an exclusive bind first.
        crate::lab::in_ns_opt(cfg.netns.as_deref(), || probe_ports(&cfg))??;
        let napi = match (&cfg.napi_iface, cfg.busy) {
            (Some(i), true) => Some(super::napi::NapiTuning::apply(cfg.netns.as_deref(), i)?),
            _ => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = crossbeam_channel::unbounded::<Result<()>>();
        let mut threads = Vec::new();
        for (i, cpu) in cfg.cpus.iter().copied().enumerate() {
            let cfg = cfg.clone();
            let stop = stop.clone();
            let ready = ready_tx.clone();
            let h = std::thread::Builder::new()
                .name(format!("srv-{i}"))
                .spawn(move || -> Result<ServerThreadResult> {
                    let setup = (|| -> Result<Loop> {
                        crate::lab::place_thread(cpu, cfg.netns.as_deref())?;
                        Ok(if cfg.uring {
                            Loop::Uring(Box::new(super::uring::UringThread::new(&cfg, cpu)?))
                        } else {
                            Loop::Epoll(Box::new(ServerThread::new(&cfg, cpu)?))
                        })
                    })();
                    match setup {
                        Ok(mut t) => {
                            let _ = ready.send(Ok(()));
                            match &mut t {
                                Loop::Epoll(t) => t.run(&stop),
                                Loop::Uring(t) => t.run(&stop),
                            }
                        }
                        Err(e) => {
                            let msg = format!("{e:#}");
                            let _ = ready.send(Err(e));
                            Err(anyhow!(msg))
                        }
                    }
                })
                .context("spawning a server thread")?;
            threads.push(h);
        }
        drop(ready_tx);
        let server = KernelServer {
            stop,
            threads,
            _napi: napi,
        };
        for _ in 0..cfg.cpus.len() {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(anyhow!("a server thread died while starting")),
            }
        }
        Ok(server)
    }

    /// Stops the threads and collects what they measured.
    pub fn stop(mut self) -> Result<ServerReport> {
        self.stop.store(true, Ordering::Relaxed);
        let mut threads = Vec::new();
        let mut counters = ServerCounters::default();
        for h in self.threads.drain(..) {
            let r = h
                .join()
                .map_err(|_| anyhow!("a server thread panicked"))??;
            counters.add(&r.counters);
            threads.push(r);
        }
        Ok(ServerReport { threads, counters })
    }
}

impl Drop for KernelServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

fn probe_ports(cfg: &ServerConfig) -> Result<()> {
    let probes = [
        (cfg.services.tcp_rr, cfg.messages.port, Type::STREAM),
        (cfg.services.tcp_sink, cfg.messages.port + 1, Type::STREAM),
        (cfg.services.udp_echo, cfg.messages.port, Type::DGRAM),
        (cfg.services.udp_sink, cfg.messages.port + 1, Type::DGRAM),
    ];
    for (on, port, ty) in probes {
        if !on {
            continue;
        }
        let addr = SocketAddr::new(cfg.bind, port);
        // a listener an io_uring held (the previous kernel-uring run) is
        // released by the ring's teardown, which the kernel finishes in a
        // worker shortly after: give it a moment before calling the port taken
        let until = std::time::Instant::now() + Duration::from_secs(1);
        loop {
            let s = Socket::new(Domain::for_address(addr), ty, None)?;
            s.set_reuse_address(true)?;
            match s.bind(&addr.into()) {
                Ok(()) => break,
                Err(e) if e.kind() == ErrorKind::AddrInUse && std::time::Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    let proto = if ty == Type::STREAM { "TCP" } else { "UDP" };
                    return Err(bind_error(e, proto, addr));
                }
            }
        }
    }
    Ok(())
}

fn bind_error(e: io::Error, proto: &str, addr: SocketAddr) -> anyhow::Error {
    match e.kind() {
        ErrorKind::AddrInUse => usage(format!(
            "{proto} port {} is in use on {}: stop what holds it or choose another base port with --port",
            addr.port(),
            addr.ip()
        )),
        ErrorKind::AddrNotAvailable => usage(format!(
            "cannot bind {proto} {addr}: the address is not on any interface here (check --addr)"
        )),
        _ => anyhow!("binding {proto} {addr}: {e}"),
    }
}

pub(super) fn tcp_listener(addr: SocketAddr) -> Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())
        .map_err(|e| bind_error(e, "TCP", addr))?;
    s.listen(4096)?;
    Ok(TcpListener::from_std(s.into()))
}

fn udp_socket(addr: SocketAddr) -> Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    // a larger receive buffer absorbs bursts of a datagram flood
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&addr.into())
        .map_err(|e| bind_error(e, "UDP", addr))?;
    Ok(UdpSocket::from_std(s.into()))
}

const LISTEN_RR: Token = Token(0);
const LISTEN_SINK: Token = Token(1);
const UDP_ECHO: Token = Token(2);
const UDP_SINK: Token = Token(3);
const FIRST_CONN: usize = 16;
/// Datagrams per recvmmsg/sendmmsg call.
const BATCH: usize = 32;
/// Read buffer of a thread (stream reads use all of it).
const READ_BUF: usize = 256 * 1024;

struct Conn {
    s: TcpStream,
    app: AppConn,
    want_write: bool,
}

struct ServerThread {
    cpu_id: Option<usize>,
    busy: bool,
    /// Sockets that took the busy-poll options (kernel-busy), and whether
    /// the epoll instance did.
    busy_sockets: u64,
    busy_epoll: bool,
    poll: Poll,
    rr: Option<TcpListener>,
    sink: Option<TcpListener>,
    echo: Option<UdpSocket>,
    usink: Option<UdpSocket>,
    conns: slab::Slab<Conn>,
    app: ServerApp,
    window: Window,
    counters: ServerCounters,
    recorder: Recorder,
    cpu: WindowCpu,
    buf: Vec<u8>,
    udp_bufs: Vec<Vec<u8>>,
    udp_out: Vec<Vec<u8>>,
    /// `--idle-timeout`, and when connections are next looked at for it.
    idle: Option<IdleSweep>,
}

impl ServerThread {
    fn new(cfg: &ServerConfig, cpu_id: Option<usize>) -> Result<ServerThread> {
        let poll = Poll::new()?;
        let mut rr = None;
        let mut sink = None;
        let mut echo = None;
        let mut usink = None;
        if cfg.services.tcp_rr {
            let mut l = tcp_listener(SocketAddr::new(cfg.bind, cfg.messages.port))?;
            poll.registry()
                .register(&mut l, LISTEN_RR, Interest::READABLE)?;
            rr = Some(l);
        }
        if cfg.services.tcp_sink {
            let mut l = tcp_listener(SocketAddr::new(cfg.bind, cfg.messages.port + 1))?;
            poll.registry()
                .register(&mut l, LISTEN_SINK, Interest::READABLE)?;
            sink = Some(l);
        }
        if cfg.services.udp_echo {
            let mut u = udp_socket(SocketAddr::new(cfg.bind, cfg.messages.port))?;
            poll.registry()
                .register(&mut u, UDP_ECHO, Interest::READABLE)?;
            echo = Some(u);
        }
        if cfg.services.udp_sink {
            let mut u = udp_socket(SocketAddr::new(cfg.bind, cfg.messages.port + 1))?;
            poll.registry()
                .register(&mut u, UDP_SINK, Interest::READABLE)?;
            usink = Some(u);
        }
        let (mut busy_sockets, mut busy_epoll) = (0, false);
        if cfg.busy {
            use std::os::fd::AsFd;
            let fds = [
                rr.as_ref().map(|s| s.as_fd()),
                sink.as_ref().map(|s| s.as_fd()),
                echo.as_ref().map(|s| s.as_fd()),
                usink.as_ref().map(|s| s.as_fd()),
            ];
            // accepted connections inherit the listener's options
            busy_sockets = fds
                .into_iter()
                .flatten()
                .filter(|fd| super::busy_socket(*fd))
                .count() as u64;
            busy_epoll =
                xdp::busy::set_epoll(poll.registry().as_fd(), super::BUSY).unwrap_or(false);
        }
        let udp_resp = cfg
            .messages
            .sizes
            .resp
            .clamp(UDP_HEADER, workload::MAX_UDP_PAYLOAD);
        Ok(ServerThread {
            cpu_id,
            busy: cfg.busy,
            busy_sockets,
            busy_epoll,
            poll,
            rr,
            sink,
            echo,
            usink,
            conns: slab::Slab::with_capacity(1024),
            app: ServerApp::new(cfg.messages.proto, cfg.messages.sizes, cfg.window, READ_BUF),
            window: cfg.window,
            counters: ServerCounters::default(),
            recorder: Recorder::new(cfg.window),
            cpu: WindowCpu::default(),
            buf: vec![0; READ_BUF],
            udp_bufs: (0..BATCH).map(|_| vec![0; 65536]).collect(),
            udp_out: (0..BATCH).map(|_| vec![0; udp_resp]).collect(),
            idle: cfg.idle_timeout.map(IdleSweep::new),
        })
    }

    fn run(&mut self, stop: &AtomicBool) -> Result<ServerThreadResult> {
        let mut events = Events::with_capacity(1024);
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            self.cpu.tick(&self.window, now);
            // a busy server never sleeps (each epoll_wait busy-polls once)
            let cap = if self.busy {
                Duration::ZERO
            } else {
                Duration::from_millis(20)
            };
            let timeout = self.window.wait_at_most(now, cap);
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("epoll_wait"),
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTEN_RR => self.accept(false),
                    LISTEN_SINK => self.accept(true),
                    UDP_ECHO => self.udp(true),
                    UDP_SINK => self.udp(false),
                    Token(t) => self.conn_event(t - FIRST_CONN),
                }
            }
            self.close_idle(now);
        }
        self.cpu.finish();
        let mut extra = std::collections::BTreeMap::new();
        if self.busy {
            extra.insert("busy_poll_sockets".to_string(), self.busy_sockets);
            extra.insert("busy_poll_epolls".to_string(), u64::from(self.busy_epoll));
        }
        Ok(ServerThreadResult {
            cpu_id: self.cpu_id,
            counters: self.counters.clone(),
            recorder: self.recorder.clone(),
            cpu: self.cpu.used,
            extra,
        })
    }

    fn accept(&mut self, sink: bool) {
        let listener = if sink { &self.sink } else { &self.rr };
        let Some(l) = listener else { return };
        loop {
            match l.accept() {
                Ok((mut s, _)) => {
                    let _ = s.set_nodelay(true);
                    let kind = self.app.kind(sink);
                    let entry = self.conns.vacant_entry();
                    let token = Token(entry.key() + FIRST_CONN);
                    if self
                        .poll
                        .registry()
                        .register(&mut s, token, Interest::READABLE)
                        .is_err()
                    {
                        self.counters.io_errors += 1;
                        continue;
                    }
                    entry.insert(Conn {
                        s,
                        app: AppConn::new(kind),
                        want_write: false,
                    });
                    self.counters.accepted += 1;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    // ECONNABORTED, EMFILE, ...: count and go on
                    self.counters.io_errors += 1;
                    break;
                }
            }
        }
    }

    /// Closes the connections idle past `--idle-timeout` (at most every
    /// [`IdleSweep::EVERY`]).
    fn close_idle(&mut self, now: Instant) {
        let Some(idle) = &mut self.idle else { return };
        let conns = &self.conns;
        let idle_keys = idle.due(now, conns.iter().map(|(k, c)| (k, &c.app)));
        for key in idle_keys {
            if let Some(mut c) = self.conns.try_remove(key) {
                let _ = self.poll.registry().deregister(&mut c.s);
                self.counters.closed += 1;
                self.counters.idle_timeouts += 1;
            }
        }
    }

    fn conn_event(&mut self, key: usize) {
        let alive = self.serve_conn(key);
        if !alive {
            if let Some(mut c) = self.conns.try_remove(key) {
                let _ = self.poll.registry().deregister(&mut c.s);
                self.counters.closed += 1;
            }
        }
    }

    /// Reads what is there, answers it, writes what it can. Returns false
    /// when the connection is finished.
    fn serve_conn(&mut self, key: usize) -> bool {
        let Some(c) = self.conns.get_mut(key) else {
            return false;
        };
        let mut eof = false;
        // read while the connection owes less than its limit, writing as
        // it goes (back-pressure: what is not read waits in the socket,
        // and the peer's window closes); come back when it is writable
        let flushed = loop {
            let mut got = false;
            if c.app.wants_input() && !eof {
                match c.s.read(&mut self.buf) {
                    Ok(0) => eof = true,
                    Ok(n) => {
                        let (app, counters, recorder) =
                            (&self.app, &mut self.counters, &mut self.recorder);
                        c.app
                            .input(app, &self.buf[..n], Instant::now(), counters, recorder);
                        got = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.counters.lost(reset_by_peer(&e));
                        return false;
                    }
                }
            }
            let flushed = match flush(c, &self.app, &mut self.counters) {
                Ok(f) => f,
                Err(e) => {
                    self.counters.lost(reset_by_peer(&e));
                    return false;
                }
            };
            if !got {
                break flushed;
            }
        };
        if eof || (c.app.close_after() && flushed) {
            return false;
        }
        let want_write = !flushed;
        if want_write != c.want_write {
            c.want_write = want_write;
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let token = Token(key + FIRST_CONN);
            if self
                .poll
                .registry()
                .reregister(&mut c.s, token, interest)
                .is_err()
            {
                return false;
            }
        }
        true
    }

    fn udp(&mut self, echo: bool) {
        let sock = if echo { &self.echo } else { &self.usink };
        let Some(sock) = sock else { return };
        let fd = sock.as_raw_fd();
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut send_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut got: Vec<(usize, Option<SockaddrStorage>)> = Vec::with_capacity(BATCH);
        // bounded: at most 64 batches per readiness event, then back to epoll
        for _ in 0..64 {
            got.clear();
            {
                let mut iovs: Vec<[IoSliceMut; 1]> = self
                    .udp_bufs
                    .iter_mut()
                    .map(|b| [IoSliceMut::new(&mut b[..])])
                    .collect();
                match recvmmsg(
                    fd,
                    &mut headers,
                    iovs.iter_mut(),
                    MsgFlags::MSG_DONTWAIT,
                    None,
                ) {
                    Ok(msgs) => got.extend(msgs.map(|m| (m.bytes, m.address))),
                    Err(nix::errno::Errno::EAGAIN) => break,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => {
                        self.counters.io_errors += 1;
                        break;
                    }
                }
            }
            if got.is_empty() {
                break;
            }
            let now = Instant::now();
            let answer = if echo {
                self.app.udp_answer()
            } else {
                UdpAnswer::Discard
            };
            let mut replies = 0;
            let mut addrs: Vec<Option<SockaddrStorage>> = Vec::with_capacity(got.len());
            // RFC 862 echo and sockperf: the datagrams themselves go back
            // (sockperf's: their first `len` bytes, changed in place)
            let mut whole: Vec<(usize, usize)> = Vec::new();
            for (i, (len, addr)) in got.iter().enumerate() {
                self.counters.udp_in += 1;
                self.counters.bytes_in += *len as u64;
                let back = match answer {
                    UdpAnswer::Echo => Some(*len),
                    UdpAnswer::Sockperf => crate::app::sockperf_datagram(
                        &mut self.udp_bufs[i][..*len],
                        &mut self.counters,
                    ),
                    _ => None,
                };
                if let Some(n) = back {
                    whole.push((i, n));
                    addrs.push(*addr);
                    replies += 1;
                    continue;
                }
                if matches!(answer, UdpAnswer::Echo | UdpAnswer::Sockperf) {
                    continue;
                }
                if echo && answer == UdpAnswer::Discard {
                    continue; // RFC 863: counted and dropped
                }
                let Some((_, measured)) = workload::udp_header(&self.udp_bufs[i][..*len]) else {
                    self.counters.udp_runts += 1;
                    continue;
                };
                if answer == UdpAnswer::Workload {
                    self.udp_out[replies][..UDP_HEADER]
                        .copy_from_slice(&self.udp_bufs[i][..UDP_HEADER]);
                    addrs.push(*addr);
                    replies += 1;
                } else if measured {
                    self.counters.udp_measured_in += 1;
                    self.recorder.op(now, None, *len as u64);
                }
            }
            if replies > 0 {
                let slices: Vec<[IoSlice; 1]> =
                    if matches!(answer, UdpAnswer::Echo | UdpAnswer::Sockperf) {
                        whole
                            .iter()
                            .map(|&(i, n)| [IoSlice::new(&self.udp_bufs[i][..n])])
                            .collect()
                    } else {
                        self.udp_out[..replies]
                            .iter()
                            .map(|b| [IoSlice::new(&b[..])])
                            .collect()
                    };
                let no_cmsgs: [ControlMessage; 0] = [];
                match sendmmsg(
                    fd,
                    &mut send_headers,
                    &slices,
                    &addrs,
                    no_cmsgs,
                    MsgFlags::MSG_DONTWAIT,
                ) {
                    Ok(sent) => {
                        let n = sent.count();
                        self.counters.udp_out += n as u64;
                        let bytes: usize = slices[..n].iter().map(|s| s[0].len()).sum();
                        self.counters.bytes_out += bytes as u64;
                    }
                    Err(_) => self.counters.io_errors += 1,
                }
            }
            if got.len() < BATCH {
                break;
            }
        }
    }
}

/// Writes pending output. Ok(true): nothing left to write.
fn flush(c: &mut Conn, app: &ServerApp, counters: &mut ServerCounters) -> io::Result<bool> {
    loop {
        let Some(data) = c.app.pending(app, counters) else {
            return Ok(true);
        };
        match c.s.write(data) {
            Ok(0) => return Err(io::Error::new(ErrorKind::WriteZero, "write returned 0")),
            Ok(n) => c.app.wrote(n, counters),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}
