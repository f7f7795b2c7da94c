//! The kernel path's load generator: one epoll loop (mio) per thread, each
//! driving its share of the connections. Closed loop by default (a connection
//! sends its next request when the previous answer is in); with a rate, open
//! loop: every connection has a schedule of intended send times and latency is
//! measured from the intended time, so a stalled server cannot hide its stall
//! (coordinated omission corrected, as wrk2 does).

use std::io::{ErrorKind, IoSlice, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use mio::net::{TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use nix::sys::socket::{sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage};
use socket2::{Domain, Protocol, Socket, Type};

use crate::metrics::{Recorder, Window, WindowCpu};
use crate::outcome::{ClientCounters, ClientReport, ClientThreadResult};
use crate::workload::{self, Proto, Workload, WorkloadSpec, UDP_HEADER};

#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The workload; its connections (TCP) or sockets (UDP) and its rate
    /// (operations, or datagrams for udp-stream, per second) are over all
    /// threads.
    pub load: WorkloadSpec,
    pub server: IpAddr,
    /// Local address to bind (hardware mode), else the kernel chooses.
    pub bind: Option<IpAddr>,
    pub cpus: Vec<Option<usize>>,
    pub netns: Option<String>,
    pub window: Window,
    /// Busy polling (`kernel-busy`): every socket and the epoll instance
    /// busy-poll, the loop spins, and `napi_iface`'s NAPI is set for it.
    pub busy: bool,
    pub napi_iface: Option<String>,
    /// Generate over io_uring (`kernel-uring`; TCP only) instead of epoll.
    pub uring: bool,
}

/// Running load-generator threads.
pub struct KernelClients {
    threads: Vec<JoinHandle<Result<ClientThreadResult>>>,
    /// A busy generator's interface settings, restored when it is dropped.
    _napi: Option<super::napi::NapiTuning>,
}

impl KernelClients {
    /// Starts the threads; they run until the window ends or `stop` is set.
    pub fn start(cfg: &ClientConfig, stop: Arc<AtomicBool>) -> Result<KernelClients> {
        let n = cfg.cpus.len().min(cfg.load.connections).max(1);
        let napi = match (&cfg.napi_iface, cfg.busy) {
            (Some(i), true) => Some(super::napi::NapiTuning::apply(cfg.netns.as_deref(), i)?),
            _ => None,
        };
        let mut threads = Vec::new();
        for i in 0..n {
            let part = cfg.load.share(i, n);
            let (conns, rate) = (part.connections, part.rate);
            let cfg = cfg.clone();
            let cpu = cfg.cpus[i];
            let stop = stop.clone();
            let h = std::thread::Builder::new()
                .name(format!("cli-{i}"))
                .spawn(move || -> Result<ClientThreadResult> {
                    crate::lab::place_thread(cpu, cfg.netns.as_deref())?;
                    if cfg.uring {
                        let mut t = super::uring_client::UringClient::new(cfg, cpu, conns, rate)?;
                        return t.run(&stop);
                    }
                    let mut t = ClientThread::new(cfg, cpu, conns, rate);
                    t.run(&stop)
                })
                .context("spawning a client thread")?;
            threads.push(h);
        }
        Ok(KernelClients {
            threads,
            _napi: napi,
        })
    }

    pub fn join(mut self) -> Result<ClientReport> {
        let mut threads = Vec::new();
        let mut counters = ClientCounters::default();
        let mut first_err = None;
        for h in self.threads.drain(..) {
            match h.join() {
                Ok(Ok(r)) => {
                    counters.add(&r.counters);
                    threads.push(r);
                }
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(anyhow!("a client thread panicked"));
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(ClientReport { threads, counters }),
        }
    }
}

/// Open loop: the time between two operations of one of `conns`
/// connections that share `rate` (None: closed loop).
pub(super) fn op_interval(conns: usize, rate: Option<f64>) -> Option<Duration> {
    rate.filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(conns.max(1) as f64 / r))
}

/// How far connection `i` of `conns` starts into the first interval: the
/// schedules are staggered over one interval.
pub(super) fn stagger(interval: Option<Duration>, i: usize, conns: usize) -> Duration {
    interval.map_or(Duration::ZERO, |iv| iv * i as u32 / conns.max(1) as u32)
}

/// What a connection sends per operation: the HTTP request (rr
/// keep-alive, crr `Connection: close`) or `req` bytes (at least a UDP
/// header's worth).
pub(super) fn request_bytes(cfg: &ClientConfig) -> Vec<u8> {
    let host = cfg.server.to_string();
    match (cfg.load.workload, cfg.load.messages.proto) {
        (Workload::Rr, Proto::Http) => workload::http_request(&host, false),
        (Workload::Crr, Proto::Http) => workload::http_request(&host, true),
        _ => vec![b'q'; cfg.load.messages.sizes.req.max(UDP_HEADER)],
    }
}

/// An answer of `got` bytes to a request intended at `intended` is
/// complete at `now`: records its latency (inside the window), and a
/// protocol error when more came than one answer.
pub(super) fn record_answer(
    cfg: &ClientConfig,
    request_len: usize,
    (got, intended, now): (usize, Instant, Instant),
    counters: &mut ClientCounters,
    recorder: &mut Recorder,
) {
    let m = &cfg.load.messages;
    if got > m.sizes.resp && m.proto == Proto::Raw {
        // more bytes than one answer: the peer does not speak our protocol
        counters.protocol_errors += 1;
    }
    let latency = now.saturating_duration_since(intended);
    let bytes = (request_len + m.sizes.resp) as u64;
    if cfg.window.measuring(now) {
        recorder.op(now, Some(latency), bytes);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    /// No socket (crr between connections, or after an error).
    Closed,
    Connecting,
    /// Connected, waiting for the next send time.
    Idle,
    /// Request (partly) written, answer not complete.
    Busy,
}

struct TConn {
    tcp: Option<TcpStream>,
    udp: Option<UdpSocket>,
    st: St,
    /// When this operation was meant to start (latency is measured from here).
    intended: Instant,
    /// Open loop: when the next operation is due.
    next_at: Instant,
    /// Request bytes written so far.
    wpos: usize,
    /// Answer bytes received so far (raw) / buffered answer (http).
    got: usize,
    inbuf: Vec<u8>,
    /// Stream: offset of the next byte; udp: next sequence number.
    offset: u64,
    /// udp-rr: sequence number awaited and its deadline.
    deadline: Instant,
    /// Earliest time to retry after a connect error.
    retry_at: Instant,
}

/// Open loop: how long before a due send the loop stops sleeping.
const SPIN: Duration = Duration::from_micros(100);

/// Token of the open-loop timer (connections use their index).
const TIMER: Token = Token(usize::MAX - 1);

struct ClientThread {
    cfg: ClientConfig,
    /// Open loop: a timerfd wakes the loop when the next send is due, with
    /// µs precision, where epoll's own timeout only has milliseconds. A
    /// spinning generator would steal the CPU that the veth's softirq needs.
    timer: Option<nix::sys::timerfd::TimerFd>,
    cpu_id: Option<usize>,
    poll: Poll,
    conns: Vec<TConn>,
    /// Open loop: time between two operations of one connection.
    interval: Option<Duration>,
    rate: Option<f64>,
    counters: ClientCounters,
    recorder: Recorder,
    cpu: WindowCpu,
    request: Vec<u8>,
    buf: Vec<u8>,
    pattern: Vec<u8>,
    addr: SocketAddr,
    /// Sockets that took the busy-poll options (kernel-busy), and whether
    /// the epoll instance did.
    busy_sockets: std::cell::Cell<u64>,
    busy_epoll: bool,
}

impl ClientThread {
    fn new(
        cfg: ClientConfig,
        cpu_id: Option<usize>,
        conns: usize,
        rate: Option<f64>,
    ) -> ClientThread {
        let w = cfg.window;
        let interval = op_interval(conns, rate);
        let request = request_bytes(&cfg);
        let addr = SocketAddr::new(cfg.server, cfg.load.workload.port(cfg.load.messages.port));
        let conns = (0..conns)
            .map(|i| {
                let stagger = stagger(interval, i, conns);
                TConn {
                    tcp: None,
                    udp: None,
                    st: St::Closed,
                    intended: w.start,
                    next_at: w.start + stagger,
                    wpos: 0,
                    got: 0,
                    inbuf: Vec::new(),
                    offset: 0,
                    deadline: w.start,
                    retry_at: w.start,
                }
            })
            .collect();
        let buf_len = if cfg.load.workload == Workload::Stream {
            cfg.load.messages.sizes.req
        } else {
            256 * 1024
        };
        let poll = Poll::new().expect("epoll_create");
        let busy_epoll = cfg.busy
            && xdp::busy::set_epoll(std::os::fd::AsFd::as_fd(poll.registry()), super::BUSY)
                .unwrap_or(false);
        let timer = interval.and_then(|_| {
            use nix::sys::timerfd::{ClockId, TimerFd, TimerFlags};
            let t = TimerFd::new(
                ClockId::CLOCK_MONOTONIC,
                TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
            )
            .ok()?;
            let fd = std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(&t));
            poll.registry()
                .register(&mut mio::unix::SourceFd(&fd), TIMER, Interest::READABLE)
                .ok()?;
            Some(t)
        });
        ClientThread {
            poll,
            timer,
            cpu_id,
            conns,
            interval,
            rate,
            counters: ClientCounters::default(),
            recorder: Recorder::new(w),
            cpu: WindowCpu::default(),
            request,
            buf: vec![0; 256 * 1024],
            pattern: workload::pattern_buffer(buf_len),
            addr,
            cfg,
            busy_sockets: std::cell::Cell::new(0),
            busy_epoll,
        }
    }

    fn run(&mut self, stop: &AtomicBool) -> Result<ClientThreadResult> {
        let w = self.cfg.window;
        // wait for the start line (servers are up, every thread starts together)
        while Instant::now() < w.start && !stop.load(Ordering::Relaxed) {
            std::thread::sleep((w.start - Instant::now()).min(Duration::from_millis(10)));
        }
        let result = match self.cfg.load.workload {
            Workload::UdpStream => self.run_udp_stream(stop),
            _ => self.run_events(stop),
        };
        self.cpu.finish();
        result?;
        let mut extra = std::collections::BTreeMap::new();
        if self.cfg.busy {
            extra.insert("busy_poll_sockets".to_string(), self.busy_sockets.get());
            extra.insert("busy_poll_epolls".to_string(), u64::from(self.busy_epoll));
        }
        Ok(ClientThreadResult {
            cpu_id: self.cpu_id,
            counters: self.counters.clone(),
            recorder: self.recorder.clone(),
            cpu: self.cpu.used,
            extra,
        })
    }

    // ------------------------------------------------------------ event loop

    fn run_events(&mut self, stop: &AtomicBool) -> Result<()> {
        let mut events = Events::with_capacity(1024);
        let now = Instant::now();
        for i in 0..self.conns.len() {
            self.kick(i, now);
        }
        loop {
            let now = Instant::now();
            self.cpu.tick(&self.cfg.window, now);
            if now >= self.cfg.window.t_end || stop.load(Ordering::Relaxed) {
                break;
            }
            let timeout = self.timers(now);
            // a busy generator never sleeps (each epoll_wait busy-polls once)
            let timeout = if self.cfg.busy {
                Duration::ZERO
            } else {
                timeout
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("epoll_wait"),
            }
            for ev in events.iter() {
                if ev.token() == TIMER {
                    if let Some(t) = &self.timer {
                        let _ = t.wait(); // clears it (nonblocking)
                    }
                    continue;
                }
                let i = ev.token().0;
                if i >= self.conns.len() {
                    continue;
                }
                let now = Instant::now();
                if self.cfg.load.workload == Workload::UdpRr {
                    self.udp_rr_readable(i, now);
                    continue;
                }
                if self.conns[i].st == St::Connecting && (ev.is_writable() || ev.is_error()) {
                    self.connected(i, now);
                }
                if self.cfg.load.workload == Workload::Stream {
                    self.stream_write(i, now);
                    continue;
                }
                if self.conns[i].st == St::Busy {
                    if ev.is_writable() && self.conns[i].wpos < self.request.len() {
                        self.write_request(i, now);
                    }
                    if ev.is_readable() || ev.is_read_closed() {
                        self.read_answer(i, now);
                    }
                }
            }
            // drop the sockets of finished crr connections after the batch
        }
        // leave sockets to close on drop
        self.conns.iter_mut().for_each(|c| {
            c.tcp = None;
            c.udp = None;
        });
        Ok(())
    }

    /// Handles timers: open-loop sends that are due, connect retries, udp
    /// timeouts. Returns how long poll may sleep.
    fn timers(&mut self, now: Instant) -> Duration {
        let mut wake = self.cfg.window.t_end;
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            match c.st {
                St::Idle | St::Closed => {
                    let due = if c.st == St::Closed { c.retry_at } else { now };
                    let due = match self.interval {
                        Some(_) => due.max(c.next_at),
                        None => due,
                    };
                    if due <= now {
                        self.kick(i, now);
                    } else {
                        wake = wake.min(due);
                    }
                }
                St::Busy if self.cfg.load.workload == Workload::UdpRr => {
                    if c.deadline <= now {
                        // a lost datagram is loss, not an error
                        self.counters.udp_timeouts += 1;
                        self.conns[i].st = St::Idle;
                        self.kick(i, now);
                    } else {
                        wake = wake.min(c.deadline);
                    }
                }
                _ => {}
            }
        }
        let wait = wake.saturating_duration_since(now);
        match &self.timer {
            // open loop: the timer wakes epoll shortly before the send is
            // due and the loop polls without sleeping for the rest: waking a
            // halted vCPU takes tens of µs or more, which would be counted
            // as latency; spinning all the time would make the generator
            // look (and be) saturated
            Some(t) if wait > SPIN && wait < Duration::from_millis(10) => {
                use nix::sys::time::TimeSpec;
                use nix::sys::timerfd::{Expiration, TimerSetTimeFlags};
                let _ = t.set(
                    Expiration::OneShot(TimeSpec::from_duration(wait - SPIN)),
                    TimerSetTimeFlags::empty(),
                );
                Duration::from_millis(10)
            }
            Some(_) if wait <= SPIN => Duration::ZERO,
            _ => wait.min(Duration::from_millis(10)),
        }
    }

    /// Starts connection `i`'s next operation if it may start now.
    fn kick(&mut self, i: usize, now: Instant) {
        let closed_loop = self.interval.is_none();
        let c = &mut self.conns[i];
        if !closed_loop && c.next_at > now {
            return;
        }
        match c.st {
            St::Closed => {
                if c.retry_at > now {
                    return;
                }
                if self.cfg.load.workload == Workload::Crr {
                    // the connect is part of the operation
                    c.intended = if closed_loop { now } else { c.next_at };
                    if let Some(iv) = self.interval {
                        c.next_at += iv;
                    }
                }
                self.open(i, now);
            }
            St::Idle => {
                c.intended = if closed_loop { now } else { c.next_at };
                if let Some(iv) = self.interval {
                    c.next_at += iv;
                }
                match self.cfg.load.workload {
                    Workload::UdpRr => self.udp_rr_send(i, now),
                    Workload::Stream => self.stream_write(i, now),
                    _ => {
                        let c = &mut self.conns[i];
                        c.st = St::Busy;
                        c.wpos = 0;
                        c.got = 0;
                        c.inbuf.clear();
                        self.write_request(i, now);
                    }
                }
            }
            _ => {}
        }
    }

    /// Opens connection `i`'s socket (TCP connect in progress, or UDP connected).
    fn open(&mut self, i: usize, now: Instant) {
        let token = Token(i);
        let res = if self.cfg.load.workload.is_udp() {
            self.udp_socket()
                .and_then(|mut u| {
                    self.poll
                        .registry()
                        .register(&mut u, token, Interest::READABLE)?;
                    Ok(u)
                })
                .map(|u| {
                    self.conns[i].udp = Some(u);
                    self.conns[i].st = St::Idle;
                })
        } else {
            self.tcp_connect()
                .and_then(|mut s| {
                    self.poll.registry().register(
                        &mut s,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    Ok(s)
                })
                .map(|s| {
                    self.conns[i].tcp = Some(s);
                    self.conns[i].st = St::Connecting;
                })
        };
        if let Err(e) = res {
            self.connect_failed(i, now, &e);
        } else if self.cfg.load.workload.is_udp() {
            self.kick(i, now);
        }
    }

    fn connect_failed(&mut self, i: usize, now: Instant, e: &anyhow::Error) {
        tracing::debug!("connect: {e:#}");
        self.counters.connect_errors += 1;
        self.recorder.error(now);
        let c = &mut self.conns[i];
        c.tcp = None;
        c.udp = None;
        c.st = St::Closed;
        // back off a little: a refused or port-starved connect retried at
        // once would spin
        c.retry_at = now + Duration::from_millis(10);
    }

    /// A busy generator's socket busy-polls.
    fn busy(&self, s: &Socket) {
        if self.cfg.busy && super::busy_socket(std::os::fd::AsFd::as_fd(s)) {
            self.busy_sockets.set(self.busy_sockets.get() + 1);
        }
    }

    fn tcp_connect(&self) -> Result<TcpStream> {
        let s = Socket::new(
            Domain::for_address(self.addr),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        s.set_nonblocking(true)?;
        s.set_nodelay(true)?;
        self.busy(&s);
        if let Some(b) = self.cfg.bind {
            // Choose the port at connect(), per 4-tuple and with TIME-WAIT
            // reuse, as an unbound socket gets: a bind to port 0 would
            // reserve a port alone, and with crr's TIME-WAITs holding most
            // of the range each bind scans it (milliseconds per connect).
            // (IPv4 only; an IPv6 socket keeps the bind's choice)
            let _ = nix::sys::socket::setsockopt(
                &s,
                nix::sys::socket::sockopt::IpBindAddressNoPort,
                &true,
            );
            s.bind(&SocketAddr::new(b, 0).into())?;
        }
        match s.connect(&self.addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::EINPROGRESS) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(TcpStream::from_std(s.into()))
    }

    fn udp_socket(&self) -> Result<UdpSocket> {
        let s = Socket::new(
            Domain::for_address(self.addr),
            Type::DGRAM,
            Some(Protocol::UDP),
        )?;
        s.set_nonblocking(true)?;
        self.busy(&s);
        let _ = s.set_send_buffer_size(4 << 20);
        let local = SocketAddr::new(
            self.cfg.bind.unwrap_or(match self.addr {
                SocketAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                SocketAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            }),
            0,
        );
        s.bind(&local.into())?;
        s.connect(&self.addr.into())?;
        Ok(UdpSocket::from_std(s.into()))
    }

    fn connected(&mut self, i: usize, now: Instant) {
        let Some(s) = self.conns[i].tcp.as_ref() else {
            return;
        };
        let err = match s.take_error() {
            Ok(Some(e)) => Some(anyhow!(e)),
            Err(e) => Some(anyhow!(e)),
            Ok(None) => match s.peer_addr() {
                Ok(_) => None,
                Err(e) if e.kind() == ErrorKind::NotConnected => return, // not yet
                Err(e) => Some(anyhow!(e)),
            },
        };
        if let Some(e) = err {
            self.connect_failed(i, now, &e);
            return;
        }
        self.counters.connects += 1;
        self.conns[i].st = St::Idle;
        if self.cfg.load.workload == Workload::Crr {
            // the operation started at connect: send the request now
            let c = &mut self.conns[i];
            c.st = St::Busy;
            c.wpos = 0;
            c.got = 0;
            c.inbuf.clear();
            self.write_request(i, now);
        } else {
            self.kick(i, now);
        }
    }

    fn write_request(&mut self, i: usize, now: Instant) {
        let c = &mut self.conns[i];
        let Some(s) = c.tcp.as_mut() else { return };
        while c.wpos < self.request.len() {
            match s.write(&self.request[c.wpos..]) {
                Ok(n) => {
                    c.wpos += n;
                    self.counters.bytes_out += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.io_failed(i, now);
                    return;
                }
            }
        }
        self.counters.sent += 1;
        if self.cfg.window.measuring(now) {
            self.counters.sent_measured += 1;
        }
    }

    fn io_failed(&mut self, i: usize, now: Instant) {
        self.counters.io_errors += 1;
        self.recorder.error(now);
        let c = &mut self.conns[i];
        if let Some(mut s) = c.tcp.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        c.st = St::Closed;
        c.retry_at = now + Duration::from_millis(10);
    }

    fn read_answer(&mut self, i: usize, now: Instant) {
        loop {
            let c = &mut self.conns[i];
            let Some(s) = c.tcp.as_mut() else { return };
            match s.read(&mut self.buf) {
                Ok(0) => {
                    // the server closed before answering in full
                    self.counters.protocol_errors += 1;
                    self.io_failed(i, now);
                    return;
                }
                Ok(n) => {
                    self.counters.bytes_in += n as u64;
                    let done = match self.cfg.load.messages.proto {
                        Proto::Raw | Proto::Echo | Proto::Discard | Proto::Sockperf => {
                            c.got += n;
                            c.got >= self.cfg.load.messages.sizes.resp
                        }
                        Proto::Http => {
                            c.inbuf.extend_from_slice(&self.buf[..n]);
                            match workload::parse_http_response(&c.inbuf) {
                                Ok(Some((head, body))) => c.inbuf.len() >= head + body,
                                Ok(None) => false,
                                Err(_) => {
                                    self.counters.protocol_errors += 1;
                                    self.io_failed(i, now);
                                    return;
                                }
                            }
                        }
                    };
                    if done {
                        self.complete(i, Instant::now());
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.io_failed(i, now);
                    return;
                }
            }
        }
    }

    /// An answer is complete: record it and start the next operation.
    fn complete(&mut self, i: usize, now: Instant) {
        let c = &mut self.conns[i];
        record_answer(
            &self.cfg,
            self.request.len(),
            (c.got, c.intended, now),
            &mut self.counters,
            &mut self.recorder,
        );
        if self.cfg.load.workload == Workload::Crr {
            if let Some(mut s) = c.tcp.take() {
                let _ = self.poll.registry().deregister(&mut s);
            }
            c.st = St::Closed;
            c.retry_at = now;
        } else {
            c.st = St::Idle;
        }
        self.kick(i, now);
    }

    // ------------------------------------------------------------ stream

    fn stream_write(&mut self, i: usize, now: Instant) {
        let size = self.cfg.load.messages.sizes.req;
        let c = &mut self.conns[i];
        if c.st == St::Idle {
            c.st = St::Busy;
        }
        let Some(s) = c.tcp.as_mut() else { return };
        if c.st != St::Busy {
            return;
        }
        // bounded: yield to the event loop after 64 writes
        for _ in 0..64 {
            let data = workload::pattern_at(&self.pattern, c.offset, size);
            match s.write(data) {
                Ok(n) => {
                    c.offset += n as u64;
                    self.counters.bytes_out += n as u64;
                    self.recorder.bytes(now, n as u64);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.io_failed(i, now);
                    return;
                }
            }
        }
        // more to write: ask to be woken again at once
        let _ =
            self.poll
                .registry()
                .reregister(s, Token(i), Interest::READABLE | Interest::WRITABLE);
    }

    // ------------------------------------------------------------ udp-rr

    fn udp_rr_send(&mut self, i: usize, now: Instant) {
        let c = &mut self.conns[i];
        let Some(u) = c.udp.as_ref() else { return };
        c.offset += 1;
        workload::udp_put_header(&mut self.request, c.offset, self.cfg.window.measuring(now));
        match u.send(&self.request) {
            Ok(n) => {
                self.counters.sent += 1;
                self.counters.bytes_out += n as u64;
                if self.cfg.window.measuring(now) {
                    self.counters.sent_measured += 1;
                }
                c.st = St::Busy;
                c.deadline = now + self.cfg.load.udp_timeout;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                c.st = St::Idle;
                c.retry_at = now;
            }
            Err(_) => {
                self.counters.io_errors += 1;
                self.recorder.error(now);
            }
        }
    }

    fn udp_rr_readable(&mut self, i: usize, now: Instant) {
        loop {
            let c = &mut self.conns[i];
            let Some(u) = c.udp.as_ref() else { return };
            match u.recv(&mut self.buf) {
                Ok(n) => {
                    self.counters.bytes_in += n as u64;
                    match workload::udp_header(&self.buf[..n]) {
                        Some((seq, _)) if seq == c.offset && c.st == St::Busy => {
                            if n != self.cfg.load.messages.sizes.resp {
                                self.counters.protocol_errors += 1;
                            }
                            self.complete(i, Instant::now());
                        }
                        Some(_) => self.counters.udp_late += 1,
                        None => self.counters.protocol_errors += 1,
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    // ECONNREFUSED: nobody listens on the port (ICMP unreachable)
                    self.counters.io_errors += 1;
                    self.recorder.error(now);
                    return;
                }
            }
        }
    }

    // ------------------------------------------------------------ udp-stream

    fn run_udp_stream(&mut self, stop: &AtomicBool) -> Result<()> {
        const BATCH: usize = 32;
        let w = self.cfg.window;
        let socks: Vec<UdpSocket> = (0..self.conns.len().max(1))
            .map(|_| self.udp_socket())
            .collect::<Result<_>>()?;
        let rate = self.rate.unwrap_or(100_000.0);
        let len = self.cfg.load.messages.sizes.req;
        let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![b'u'; len]).collect();
        let mut seqs = vec![0u64; socks.len()];
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let no_addrs: Vec<Option<SockaddrStorage>> = vec![None; BATCH];
        let mut sent_total: u64 = 0;
        let mut turn = 0usize;
        loop {
            let now = Instant::now();
            self.cpu.tick(&w, now);
            if now >= w.t_end || stop.load(Ordering::Relaxed) {
                break;
            }
            let target = (now.duration_since(w.start).as_secs_f64() * rate) as u64;
            let due = target.saturating_sub(sent_total) as usize;
            if due == 0 {
                std::thread::sleep(Duration::from_micros(50));
                continue;
            }
            let k = due.min(BATCH);
            let s = turn % socks.len();
            turn += 1;
            let measured = w.measuring(now);
            for (j, b) in bufs.iter_mut().take(k).enumerate() {
                workload::udp_put_header(b, seqs[s] + j as u64, measured);
            }
            let slices: Vec<[IoSlice; 1]> = bufs[..k].iter().map(|b| [IoSlice::new(b)]).collect();
            let no_cmsgs: [ControlMessage; 0] = [];
            match sendmmsg(
                socks[s].as_raw_fd(),
                &mut headers,
                &slices,
                &no_addrs[..k],
                no_cmsgs,
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(r) => {
                    let n = r.count() as u64;
                    seqs[s] += n;
                    sent_total += n;
                    self.counters.sent += n;
                    self.counters.bytes_out += n * len as u64;
                    if measured {
                        self.counters.sent_measured += n;
                        // the sender's count: the figure when the receiver is remote
                        self.recorder.ops(now, n, n * len as u64);
                    }
                    if (n as usize) < k {
                        // the rest did not fit: they count against the target
                        sent_total += (k - n as usize) as u64;
                        self.counters.send_refused += (k - n as usize) as u64;
                    }
                }
                Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::ENOBUFS) => {
                    self.counters.send_refused += k as u64;
                    sent_total += k as u64;
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => {
                    self.counters.io_errors += 1;
                    self.recorder.error(now);
                    sent_total += k as u64;
                }
            }
        }
        Ok(())
    }
}
