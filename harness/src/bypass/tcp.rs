//! The bypass load generator for the TCP workloads (crr, rr, stream): the
//! userspace stack's TCP over AF_XDP, closed loop or open loop at a rate
//! (rr, crr), one shard per core; the stack resolves the server by ARP.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use stack::{Readiness, SocketHandle};

use super::hold::Hold;
use super::shard::{Shard, ShardSetup};
use super::{AttachInfo, ClientSpec, Shards};
use crate::metrics::{Recorder, WindowCpu};
use crate::outcome::{ClientCounters, ClientReport, ClientThreadResult};
use crate::workload::{self, Proto, Workload};

/// At most this long to close `--hold`'s connections at the end.
const HOLD_DRAIN: Duration = Duration::from_secs(3);
/// ... or until nothing came or left for this long.
const HOLD_QUIET: Duration = Duration::from_millis(100);

/// A bypass TCP load generator (the client side under test, against a
/// kernel server): crr, rr or stream over the stack's TCP, closed loop, or
/// open loop at a rate (rr, crr), on one thread.
pub struct BypassTcpClient {
    inner: Shards<ClientThreadResult>,
    pub attach: AttachInfo,
}

impl BypassTcpClient {
    pub fn start(cfg: ClientSpec, stop: Arc<AtomicBool>) -> Result<BypassTcpClient> {
        let setup = ShardSetup::read(&cfg.bypass)?;
        // on a NIC with RSS each shard connects from ports whose replies
        // come back to its own queue
        let nic_rss = super::rss::read(cfg.bypass.netns.as_deref(), &cfg.bypass.iface);
        let shards = super::shard_queues(&cfg.bypass, cfg.cpus.len().max(1))?.len();
        let open_cfg = cfg.clone();
        let work_cfg = cfg.clone();
        let inner = Shards::spawn(
            "byp-tcp-cli",
            &cfg.bypass,
            &cfg.cpus,
            stop,
            move |parts| {
                let cfg = &open_cfg;
                let i = parts.index;
                let rss = match (&nic_rss, parts.queue_ids.as_slice()) {
                    (Some(r), [q]) => Some(r.for_queue(*q)),
                    _ => None,
                };
                let shard = Shard::open(&cfg.bypass, &setup, parts, |icfg| {
                    icfg.rss = rss;
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
                    // and room for its share of the held connections
                    icfg.max_sockets =
                        (tw_buckets * 4 / 3).max(65536) / shards + cfg.load.share(i, shards).hold;
                    if cfg.load.workload != Workload::Stream {
                        icfg.tcp.rx_buffer = 16 * 1024;
                        icfg.tcp.tx_buffer = 16 * 1024;
                    }
                })?;
                Ok(TcpGen { shard })
            },
            move |mut g: TcpGen, stop: &AtomicBool| {
                let spec = work_cfg.for_shard(g.shard.base.index, shards);
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
    shard: Shard,
}

/// Shard `i` of `n`'s share of the ports 1024-65535.
fn shard_ports(i: usize, n: usize) -> std::ops::RangeInclusive<u16> {
    let span = (65535 - 1024 + 1) / n.max(1) as u32;
    let first = 1024 + span * i as u32;
    let last = if i + 1 == n { 65535 } else { first + span - 1 };
    first as u16..=last as u16
}

impl super::ShardInfo for TcpGen {
    fn base(&self) -> &super::ShardBase {
        &self.shard.base
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
        let n = cfg.load.connections.max(1);
        let mut counters = ClientCounters::default();
        let mut recorder = Recorder::new(w);
        let mut cpu = WindowCpu::default();
        let request = match (cfg.load.workload, cfg.load.messages.proto) {
            (Workload::Rr, Proto::Http) => {
                workload::http_request(&cfg.server.ip().to_string(), false)
            }
            (Workload::Crr, Proto::Http) => {
                workload::http_request(&cfg.server.ip().to_string(), true)
            }
            _ => vec![b'q'; cfg.load.messages.sizes.req],
        };
        let pattern = workload::pattern_buffer(cfg.load.messages.sizes.req);
        let mut buf = vec![0u8; 256 * 1024];
        let interval = cfg
            .load
            .rate
            .filter(|r| *r > 0.0 && cfg.load.workload != Workload::Stream)
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
        let mut hold = Hold::new(cfg.load.hold, cfg.bypass.aliases.as_ref());
        while self.shard.next_round(&w, &mut cpu, stop).is_some() {
            hold.open_more(&mut self.shard.iface, cfg.server);
            hold.tick(&w, Instant::now());
            // connections that failed or closed
            while let Some(ev) = self.shard.iface.next_event() {
                if hold.on_event(&mut self.shard.iface, &ev) {
                    continue;
                }
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
                            if cfg.load.workload == Workload::Crr {
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
                if cfg.load.workload == Workload::Stream {
                    // keep the send buffer full (bounded per round), the
                    // pattern written into the send ring in place
                    for _ in 0..16 {
                        let (offset, size) = (s.offset, cfg.load.messages.sizes.req);
                        let wrote = self.shard.iface.send_with(h, |room| {
                            let n = room.len().min(size);
                            room[..n].copy_from_slice(workload::pattern_at(&pattern, offset, n));
                            n
                        });
                        match wrote {
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
                if !s.busy && due && cfg.load.workload == Workload::Rr {
                    s.begin(now, interval);
                }
                if !s.busy {
                    continue;
                }
                // the request
                while s.wpos < request.len() {
                    match self.shard.iface.send(h, &request[s.wpos..]) {
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
                    match self.shard.iface.recv(h, &mut buf) {
                        Ok(0) => {
                            failed = true; // closed before the answer
                            break;
                        }
                        Ok(k) => {
                            counters.bytes_in += k as u64;
                            match cfg.load.messages.proto {
                                Proto::Raw | Proto::Echo | Proto::Discard | Proto::Sockperf => {
                                    s.got += k;
                                    if s.got >= cfg.load.messages.sizes.resp {
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
                        let _ = self.shard.iface.close(h);
                    }
                    s.busy = false;
                    continue;
                }
                if done {
                    if w.measuring(t) {
                        recorder.op(
                            t,
                            Some(t.saturating_duration_since(s.intended)),
                            (request.len() + cfg.load.messages.sizes.resp) as u64,
                        );
                    }
                    s.busy = false;
                    if cfg.load.workload == Workload::Crr {
                        if let Some(h) = s.h.take() {
                            by_handle.remove(&h);
                            let _ = self.shard.iface.close(h);
                        }
                    }
                }
            }
            self.shard
                .iface
                .poll_egress(super::stack_now(Instant::now()));
        }
        cpu.finish();
        hold.report(&mut counters);
        hold.close_all(&mut self.shard.iface);
        for s in &mut slots {
            if let Some(h) = s.h.take() {
                let _ = self.shard.iface.close(h);
            }
        }
        // let the closes leave; the held connections' resets too, all of
        // them, so that a server does not keep connections to addresses
        // whose stack is gone (a later path's client would answer their
        // retransmissions with resets), bounded in time
        self.shard.poll(Instant::now());
        if cfg.load.hold > 0 {
            let until = Instant::now() + HOLD_DRAIN;
            let mut quiet_since = Instant::now();
            while Instant::now() < until && Instant::now().duration_since(quiet_since) < HOLD_QUIET
            {
                while self.shard.iface.next_event().is_some() {}
                if self.shard.poll(Instant::now()) || self.shard.iface.owes() {
                    quiet_since = Instant::now();
                }
            }
        }
        let extra = self.shard.counters();
        Ok(ClientThreadResult {
            cpu_id: cfg.cpus.first().copied(),
            counters,
            recorder,
            cpu: cpu.used,
            extra,
        })
    }

    fn open(&mut self, cfg: &ClientSpec) -> Result<SocketHandle, stack::Error> {
        let h = self.shard.iface.socket()?;
        if let Err(e) = self.shard.iface.connect(h, cfg.server) {
            let _ = self.shard.iface.close(h);
            return Err(e);
        }
        Ok(h)
    }

    fn drop_slot(&mut self, s: &mut Slot, by_handle: &mut HashMap<SocketHandle, usize>) {
        if let Some(h) = s.h.take() {
            by_handle.remove(&h);
            let _ = self.shard.iface.close(h);
        }
        s.busy = false;
        s.connected = false;
    }
}
