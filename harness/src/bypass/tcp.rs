//! The bypass path for the TCP workloads (crr, rr, stream): the userspace
//! stack's TCP over an AF_XDP socket, serving on one thread, run to
//! completion, with the same application logic as the kernel server (raw
//! fixed-size messages or minimal HTTP/1.1; a verifying sink for stream).
//!
//! The stack's TCP interface has no ARP yet: the harness gives it the peer's
//! MAC, and gives the kernel peer a permanent neighbour entry for the
//! stack's address (`ip neigh replace ... nud permanent`), removed with the lab.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use stack::{Interface, InterfaceConfig, Readiness, SocketHandle};

use super::{
    iface_mac, stack_now, AttachInfo, BypassConfig, ClientSpec, ShardBase, ShardInfo, Shards,
    IDLE_ROUNDS,
};
use crate::app::{AppConn, ServerApp};
use crate::error::usage;
use crate::kernel::client::{ClientCounters, ClientReport, ClientThreadResult};
use crate::kernel::server::{ServerCounters, ServerReport, ServerThreadResult};
use crate::metrics::{Recorder, Window, WindowCpu};
use crate::workload::{self, Proto, Sizes, Workload};

#[derive(Clone, Debug)]
pub struct BypassTcpServerConfig {
    pub bypass: BypassConfig,
    /// The kernel peer's MAC (the stack sends every frame there).
    pub peer_mac: [u8; 6],
    pub port: u16,
    pub proto: Proto,
    pub sizes: Sizes,
    /// One shard per CPU (at most one per queue); none: one unpinned.
    pub cpus: Vec<usize>,
    pub window: Window,
}

pub struct BypassTcpServer {
    inner: Shards<ServerThreadResult>,
    pub attach: AttachInfo,
}

/// 256 bits from the kernel's random source (flow hash and ISN secrets).
fn secret() -> Result<[u64; 4]> {
    use std::io::Read;
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom")?;
    let mut out = [0u64; 4];
    for (o, c) in out.iter_mut().zip(b.chunks_exact(8)) {
        *o = u64::from_le_bytes(c.try_into().expect("8 bytes"));
    }
    Ok(out)
}

impl BypassTcpServer {
    pub fn start(cfg: BypassTcpServerConfig) -> Result<BypassTcpServer> {
        let mac = iface_mac(cfg.bypass.netns.as_deref(), &cfg.bypass.iface)?;
        let (flow_secret, isn_secret) = (secret()?, secret()?);
        let open_cfg = cfg.clone();
        let inner = Shards::spawn(
            "byp-tcp-srv",
            &cfg.bypass,
            &cfg.cpus,
            Arc::new(AtomicBool::new(false)),
            move |i, steering: Arc<xdp::Steering>, queue_ids: Vec<u32>| {
                let cfg = &open_cfg;
                let xsk = super::bind_queues(&cfg.bypass, &steering, &queue_ids)?;
                let mut icfg = InterfaceConfig::new(
                    stack::wire::EthernetAddress(mac),
                    cfg.bypass.addr,
                    stack::wire::EthernetAddress(cfg.peer_mac),
                    flow_secret,
                    isn_secret,
                );
                icfg.max_sockets = 16384;
                icfg.syn_backlog = 1024;
                if cfg.bypass.trust_checksums {
                    icfg.checksums = stack::wire::Checksums::Trust;
                }
                let mut shard = TcpShard::new(steering, i, Interface::new(xsk, icfg), cfg);
                shard.listen(cfg.port)?;
                Ok(shard)
            },
            |mut shard: TcpShard, stop: &AtomicBool| shard.serve(stop),
        )?;
        Ok(BypassTcpServer {
            attach: inner.attach.clone(),
            inner,
        })
    }

    pub fn stop(self) -> Result<ServerReport> {
        self.inner.server_report()
    }
}

struct TcpShard {
    addr: Ipv4Addr,
    busy_poll: bool,
    base: ShardBase,
    iface: Interface<super::queues::Queues>,
    rr: Option<SocketHandle>,
    sink: Option<SocketHandle>,
    conns: HashMap<SocketHandle, AppConn>,
    app: ServerApp,
    cpu_id: Option<usize>,
    counters: ServerCounters,
    recorder: Recorder,
    buf: Vec<u8>,
    window: Window,
}

impl ShardInfo for TcpShard {
    fn base(&self) -> &ShardBase {
        &self.base
    }
}

impl TcpShard {
    fn new(
        steering: Arc<xdp::Steering>,
        index: usize,
        iface: Interface<super::queues::Queues>,
        cfg: &BypassTcpServerConfig,
    ) -> TcpShard {
        TcpShard {
            addr: cfg.bypass.addr,
            busy_poll: cfg.bypass.busy_poll,
            base: ShardBase::new(steering, index, iface.device()),
            iface,
            rr: None,
            sink: None,
            conns: HashMap::new(),
            app: ServerApp::new(cfg.proto, cfg.sizes, cfg.window, 256 * 1024),
            cpu_id: cfg.cpus.get(index).copied(),
            counters: ServerCounters::default(),
            recorder: Recorder::new(cfg.window),
            buf: vec![0; 256 * 1024],
            window: cfg.window,
        }
    }

    fn listen(&mut self, port: u16) -> Result<()> {
        let addr = self.iface_addr();
        for (p, sink) in [(port, false), (port + 1, true)] {
            let h = self.iface.socket().map_err(|e| anyhow!("socket: {e:?}"))?;
            self.iface
                .bind(h, SocketAddrV4::new(addr, p))
                .map_err(|e| usage(format!("binding TCP port {p} on the stack: {e:?}")))?;
            self.iface
                .listen(h, 1024)
                .map_err(|e| anyhow!("listen on port {p}: {e:?}"))?;
            if sink {
                self.sink = Some(h);
            } else {
                self.rr = Some(h);
            }
        }
        Ok(())
    }

    fn iface_addr(&self) -> Ipv4Addr {
        self.addr
    }

    fn serve(&mut self, stop: &AtomicBool) -> Result<ServerThreadResult> {
        let mut cpu = WindowCpu::default();
        let mut work = Duration::ZERO;
        let mut work_at_t0: Option<Duration> = None;
        let mut work_in_window: Option<Duration> = None;
        let mut idle_rounds = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let start = Instant::now();
            cpu.tick(&self.window, start);
            if work_at_t0.is_none() && start >= self.window.t0 {
                work_at_t0 = Some(work);
            }
            if work_in_window.is_none() && start >= self.window.t_end {
                work_in_window = Some(work - work_at_t0.unwrap_or(work));
            }
            let mut did = self.iface.poll(stack_now(start));
            while let Some(ev) = self.iface.next_event() {
                did = true;
                self.event(ev.handle, ev.readiness);
            }
            if did {
                self.iface.poll_egress(stack_now(Instant::now()));
                work += start.elapsed();
                idle_rounds = 0;
            } else {
                idle_rounds += 1;
                if idle_rounds > IDLE_ROUNDS && !self.busy_poll {
                    // idle: sleep in poll() on the socket until frames come
                    // or the stack's next timer is due (bounded)
                    let wait_ms = self
                        .iface
                        .poll_at()
                        .map(|t| t.saturating_since(stack_now(Instant::now())).as_millis() as i32)
                        .unwrap_or(5)
                        .clamp(0, 5);
                    let _ = self.iface.device_mut().poll(wait_ms);
                    idle_rounds = 0;
                }
            }
        }
        cpu.finish();
        let work_in_window = work_in_window.unwrap_or(work - work_at_t0.unwrap_or(work));
        let mut extra = BTreeMap::new();
        extra.insert("work_us".to_string(), work_in_window.as_micros() as u64);
        super::xsk_and_xdp_counters(self.iface.device(), self.base.program(), &mut extra);
        extra.insert(
            "stack.unhandled_frames".into(),
            self.iface.unhandled_frames(),
        );
        tcp_counters(self.iface.tcp_stats(), &mut extra);
        Ok(ServerThreadResult {
            cpu_id: self.cpu_id,
            counters: self.counters.clone(),
            recorder: self.recorder.clone(),
            cpu: cpu.used,
            extra,
        })
    }

    fn event(&mut self, h: SocketHandle, r: Readiness) {
        if Some(h) == self.rr || Some(h) == self.sink {
            let sink = Some(h) == self.sink;
            while let Ok((c, _peer)) = self.iface.accept(h) {
                self.counters.accepted += 1;
                let kind = self.app.kind(sink);
                self.conns.insert(c, AppConn::new(kind));
                // data may have come with the handshake
                self.serve_conn(c);
            }
            return;
        }
        if !self.conns.contains_key(&h) {
            return;
        }
        if r.contains(Readiness::ERROR) {
            let reset = self.iface.error(h) == Ok(Some(stack::Error::ConnectionReset));
            self.counters.lost(reset);
            self.finish(h);
            return;
        }
        self.serve_conn(h);
    }

    fn finish(&mut self, h: SocketHandle) {
        if self.conns.remove(&h).is_some() {
            let _ = self.iface.close(h);
            self.counters.closed += 1;
        }
    }

    fn serve_conn(&mut self, h: SocketHandle) {
        let Some(c) = self.conns.get_mut(&h) else {
            return;
        };
        let mut eof = false;
        loop {
            match self.iface.recv(h, &mut self.buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    let (app, counters, recorder) =
                        (&self.app, &mut self.counters, &mut self.recorder);
                    c.input(app, &self.buf[..n], Instant::now(), counters, recorder);
                    if c.close_after() {
                        break;
                    }
                }
                Err(stack::Error::WouldBlock) => break,
                Err(e) => {
                    self.counters.lost(stack_reset(e));
                    self.finish(h);
                    return;
                }
            }
        }
        // write what is owed, as far as the send buffer takes it
        let mut flushed = true;
        while let Some(data) = c.pending(&self.app) {
            match self.iface.send(h, data) {
                Ok(0) | Err(stack::Error::WouldBlock) => {
                    flushed = false;
                    break;
                }
                Ok(n) => c.wrote(n, &mut self.counters),
                Err(e) => {
                    self.counters.lost(stack_reset(e));
                    self.finish(h);
                    return;
                }
            }
        }
        if eof || (c.close_after() && flushed) {
            self.finish(h);
        }
    }
}

/// A bypass TCP load generator (the client side under test, against a
/// kernel server): crr, rr or stream over the stack's TCP, closed loop, or
/// open loop at a rate (rr, crr), on one thread.
pub struct BypassTcpClient {
    inner: Shards<ClientThreadResult>,
    pub attach: AttachInfo,
}

impl BypassTcpClient {
    pub fn start(
        cfg: ClientSpec,
        peer_mac: [u8; 6],
        stop: Arc<AtomicBool>,
    ) -> Result<BypassTcpClient> {
        let mac = iface_mac(cfg.bypass.netns.as_deref(), &cfg.bypass.iface)?;
        let (flow_secret, isn_secret) = (secret()?, secret()?);
        let shards = super::shard_queues(&cfg.bypass, cfg.cpus.len().max(1))?.len();
        let open_cfg = cfg.clone();
        let work_cfg = cfg.clone();
        let inner = Shards::spawn(
            "byp-tcp-cli",
            &cfg.bypass,
            &cfg.cpus,
            stop,
            move |i, steering: Arc<xdp::Steering>, queue_ids: Vec<u32>| {
                let cfg = &open_cfg;
                let xsk = super::bind_queues(&cfg.bypass, &steering, &queue_ids)?;
                let mut icfg = InterfaceConfig::new(
                    stack::wire::EthernetAddress(mac),
                    cfg.bypass.addr,
                    stack::wire::EthernetAddress(peer_mac),
                    flow_secret,
                    isn_secret,
                );
                // crr leaves a TIME-WAIT per connection on this side (the
                // client closes first). The client gets what a kernel
                // client in its namespace gets, so that neither keeps less
                // state than the other:
                // - the ports of the lab's kernel client
                //   (ip_local_port_range 1024-65535), split between the
                //   shards so that no two open the same 4-tuple;
                // - a TIME-WAIT taken over by connect after the namespace's
                //   tcp_tw_reuse_delay (1 s where the kernel has none);
                // - room for as many TIME-WAITs as its tcp_max_tw_buckets:
                //   the table skips TIME-WAIT when three quarters full.
                icfg.ephemeral_ports = shard_ports(i, shards);
                if let Some(ms) = crate::sys::own_sysctl("net.ipv4.tcp_tw_reuse_delay") {
                    icfg.tcp.tw_reuse_delay = Duration::from_millis(ms);
                }
                let tw_buckets = crate::sys::own_sysctl("net.ipv4.tcp_max_tw_buckets")
                    .unwrap_or(65536)
                    .min(1 << 20) as usize;
                icfg.max_sockets = (tw_buckets * 4 / 3).max(65536) / shards;
                if cfg.workload != Workload::Stream {
                    icfg.tcp.rx_buffer = 16 * 1024;
                    icfg.tcp.tx_buffer = 16 * 1024;
                }
                if cfg.bypass.trust_checksums {
                    icfg.checksums = stack::wire::Checksums::Trust;
                }
                Ok(TcpGen {
                    base: ShardBase::new(steering, i, &xsk),
                    iface: Interface::new(xsk, icfg),
                })
            },
            move |mut g: TcpGen, stop: &AtomicBool| {
                let spec = work_cfg.for_shard(g.base.index, shards);
                g.generate(&spec, stop)
            },
        )?;
        Ok(BypassTcpClient {
            attach: inner.attach.clone(),
            inner,
        })
    }

    pub fn join(self) -> Result<ClientReport> {
        self.inner.client_report()
    }
}

struct TcpGen {
    base: ShardBase,
    iface: Interface<super::queues::Queues>,
}

/// Shard `i` of `n`'s share of the ports 1024-65535.
fn shard_ports(i: usize, n: usize) -> std::ops::RangeInclusive<u16> {
    let span = (65535 - 1024 + 1) / n.max(1) as u32;
    let first = 1024 + span * i as u32;
    let last = if i + 1 == n { 65535 } else { first + span - 1 };
    first as u16..=last as u16
}

impl ShardInfo for TcpGen {
    fn base(&self) -> &ShardBase {
        &self.base
    }
}

/// One connection slot of the generator.
struct Slot {
    h: Option<SocketHandle>,
    connected: bool,
    /// The operation in flight started (or was meant to start) here.
    intended: Instant,
    busy: bool,
    wpos: usize,
    got: usize,
    inbuf: Vec<u8>,
    next_at: Instant,
    offset: u64,
}

impl Slot {
    /// Starts an operation: intended now (closed loop) or at its scheduled
    /// time (open loop, the next one an interval later).
    fn begin(&mut self, now: Instant, interval: Option<Duration>) {
        self.intended = if interval.is_some() {
            self.next_at
        } else {
            now
        };
        if let Some(iv) = interval {
            self.next_at += iv;
        }
        self.busy = true;
        self.wpos = 0;
        self.got = 0;
        self.inbuf.clear();
    }
}

impl TcpGen {
    fn generate(&mut self, cfg: &ClientSpec, stop: &AtomicBool) -> Result<ClientThreadResult> {
        let w = cfg.window;
        let n = cfg.connections.max(1);
        let mut counters = ClientCounters::default();
        let mut recorder = Recorder::new(w);
        let mut cpu = WindowCpu::default();
        let request = match (cfg.workload, cfg.proto) {
            (Workload::Rr, Proto::Http) => {
                workload::http_request(&cfg.server.ip().to_string(), false)
            }
            (Workload::Crr, Proto::Http) => {
                workload::http_request(&cfg.server.ip().to_string(), true)
            }
            _ => vec![b'q'; cfg.sizes.req],
        };
        let pattern = workload::pattern_buffer(cfg.sizes.req);
        let mut buf = vec![0u8; 256 * 1024];
        let interval = cfg
            .rate
            .filter(|r| *r > 0.0 && cfg.workload != Workload::Stream)
            .map(|r| Duration::from_secs_f64(n as f64 / r));
        let mut slots: Vec<Slot> = (0..n)
            .map(|i| Slot {
                h: None,
                connected: false,
                intended: w.start,
                busy: false,
                wpos: 0,
                got: 0,
                inbuf: Vec::new(),
                next_at: w.start + interval.map_or(Duration::ZERO, |iv| iv * i as u32 / n as u32),
                offset: 0,
            })
            .collect();
        let mut by_handle: HashMap<SocketHandle, usize> = HashMap::new();
        while Instant::now() < w.start && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1));
        }
        loop {
            let t = Instant::now();
            cpu.tick(&w, t);
            if t >= w.t_end || stop.load(Ordering::Relaxed) {
                break;
            }
            self.iface.poll(stack_now(t));
            // connections that failed or closed
            while let Some(ev) = self.iface.next_event() {
                let Some(&i) = by_handle.get(&ev.handle) else {
                    continue;
                };
                if ev.readiness.contains(Readiness::ERROR) {
                    counters.connect_errors += u64::from(!slots[i].connected);
                    counters.io_errors += u64::from(slots[i].connected);
                    recorder.error(Instant::now());
                    self.drop_slot(&mut slots[i], &mut by_handle);
                    continue;
                }
                if ev.readiness.contains(Readiness::CONNECTED) && !slots[i].connected {
                    slots[i].connected = true;
                    counters.connects += 1;
                }
            }
            let now = Instant::now();
            for (i, s) in slots.iter_mut().enumerate() {
                // start what is due
                let due = now >= s.next_at;
                if s.h.is_none() && due {
                    match self.open(cfg) {
                        Ok(h) => {
                            by_handle.insert(h, i);
                            s.h = Some(h);
                            s.connected = false;
                            if cfg.workload == Workload::Crr {
                                s.begin(now, interval);
                            }
                        }
                        Err(stack::Error::AddrNotAvailable) => {
                            // every port is held (TIME-WAIT): wait for one
                            counters.ports_exhausted += 1;
                            s.next_at = s.next_at.max(now + Duration::from_micros(200));
                            continue;
                        }
                        Err(_) => {
                            counters.connect_errors += 1;
                            recorder.error(now);
                            continue;
                        }
                    }
                }
                let Some(h) = s.h else { continue };
                if !s.connected {
                    continue;
                }
                if cfg.workload == Workload::Stream {
                    // keep the send buffer full (bounded per round)
                    for _ in 0..16 {
                        let data = workload::pattern_at(&pattern, s.offset, cfg.sizes.req);
                        match self.iface.send(h, data) {
                            Ok(0) | Err(stack::Error::WouldBlock) => break,
                            Ok(k) => {
                                s.offset += k as u64;
                                counters.bytes_out += k as u64;
                                recorder.bytes(now, k as u64);
                            }
                            Err(_) => {
                                counters.io_errors += 1;
                                break;
                            }
                        }
                    }
                    continue;
                }
                if !s.busy && due && cfg.workload == Workload::Rr {
                    s.begin(now, interval);
                }
                if !s.busy {
                    continue;
                }
                // the request
                while s.wpos < request.len() {
                    match self.iface.send(h, &request[s.wpos..]) {
                        Ok(0) | Err(stack::Error::WouldBlock) => break,
                        Ok(k) => {
                            s.wpos += k;
                            counters.bytes_out += k as u64;
                            if s.wpos == request.len() {
                                counters.sent += 1;
                                if w.measuring(now) {
                                    counters.sent_measured += 1;
                                }
                            }
                        }
                        Err(_) => {
                            counters.io_errors += 1;
                            break;
                        }
                    }
                }
                // the answer
                let mut done = false;
                let mut failed = false;
                loop {
                    match self.iface.recv(h, &mut buf) {
                        Ok(0) => {
                            failed = true; // closed before the answer
                            break;
                        }
                        Ok(k) => {
                            counters.bytes_in += k as u64;
                            match cfg.proto {
                                Proto::Raw => {
                                    s.got += k;
                                    if s.got >= cfg.sizes.resp {
                                        done = true;
                                    }
                                }
                                Proto::Http => {
                                    s.inbuf.extend_from_slice(&buf[..k]);
                                    match workload::parse_http_response(&s.inbuf) {
                                        Ok(Some((head, body))) => {
                                            done = s.inbuf.len() >= head + body
                                        }
                                        Ok(None) => {}
                                        Err(_) => {
                                            counters.protocol_errors += 1;
                                            failed = true;
                                        }
                                    }
                                }
                            }
                            if done || failed {
                                break;
                            }
                        }
                        Err(stack::Error::WouldBlock) => break,
                        Err(_) => {
                            failed = true;
                            break;
                        }
                    }
                }
                let t = Instant::now();
                if failed {
                    counters.io_errors += 1;
                    recorder.error(t);
                    if let Some(h) = s.h.take() {
                        by_handle.remove(&h);
                        let _ = self.iface.close(h);
                    }
                    s.busy = false;
                    continue;
                }
                if done {
                    if w.measuring(t) {
                        recorder.op(
                            t,
                            Some(t.saturating_duration_since(s.intended)),
                            (request.len() + cfg.sizes.resp) as u64,
                        );
                    }
                    s.busy = false;
                    if cfg.workload == Workload::Crr {
                        if let Some(h) = s.h.take() {
                            by_handle.remove(&h);
                            let _ = self.iface.close(h);
                        }
                    }
                }
            }
            self.iface.poll_egress(stack_now(Instant::now()));
        }
        cpu.finish();
        for s in &mut slots {
            if let Some(h) = s.h.take() {
                let _ = self.iface.close(h);
            }
        }
        // let the closes leave
        self.iface.poll(stack_now(Instant::now()));
        let mut extra = BTreeMap::new();
        super::xsk_and_xdp_counters(self.iface.device(), self.base.program(), &mut extra);
        tcp_counters(self.iface.tcp_stats(), &mut extra);
        Ok(ClientThreadResult {
            cpu_id: cfg.cpus.first().copied(),
            counters,
            recorder,
            cpu: cpu.used,
            extra,
        })
    }

    fn open(&mut self, cfg: &ClientSpec) -> Result<SocketHandle, stack::Error> {
        let h = self.iface.socket()?;
        if let Err(e) = self.iface.connect(h, cfg.server) {
            let _ = self.iface.close(h);
            return Err(e);
        }
        Ok(h)
    }

    fn drop_slot(&mut self, s: &mut Slot, by_handle: &mut HashMap<SocketHandle, usize>) {
        if let Some(h) = s.h.take() {
            by_handle.remove(&h);
            let _ = self.iface.close(h);
        }
        s.busy = false;
        s.connected = false;
    }
}

/// Whether a socket call failed because the peer reset the connection.
fn stack_reset(e: stack::Error) -> bool {
    matches!(e, stack::Error::ConnectionReset | stack::Error::BrokenPipe)
}

/// The stack's TCP counters, as `stack.tcp.<name>`.
fn tcp_counters(t: &stack::tcp::TcpStats, extra: &mut BTreeMap<String, u64>) {
    for (k, v) in [
        ("retransmits", t.retransmits),
        ("rto_expiries", t.rto_expiries),
        ("fast_retransmits", t.fast_retransmits),
        ("out_of_order", t.out_of_order),
        ("out_of_order_dropped", t.out_of_order_dropped),
        ("accept_queue_overflows", t.accept_queue_overflows),
        ("syn_queue_overflows", t.syn_queue_overflows),
        ("resets_sent", t.resets_sent),
        ("timeouts", t.timeouts),
        ("challenge_acks", t.challenge_acks),
        ("time_wait_overflows", t.time_wait_overflows),
        ("time_wait_reused", t.time_wait_reused),
    ] {
        extra.insert(format!("stack.tcp.{k}"), v);
    }
}
