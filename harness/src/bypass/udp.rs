//! udp-rr and udp-stream on the stack's UDP: an echo and sink server, and a
//! load generator (the client side under test).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

use super::{
    bind_queues, iface_mac, iface_mtu, stack_now, xsk_and_xdp_counters, AttachInfo, BypassConfig,
    ShardBase, ShardInfo, Shards, IDLE_ROUNDS,
};
use crate::error::usage;
use crate::kernel::client::{ClientCounters, ClientReport, ClientThreadResult};
use crate::kernel::server::{ServerCounters, ServerReport, ServerThreadResult};
use crate::metrics::{Recorder, Window, WindowCpu};
use crate::workload::{self, Sizes, Workload, UDP_HEADER};

/// A bypass UDP server: one shard per CPU over its share of the queues,
/// echo on the base port (udp-rr) and sink on the next (udp-stream), until
/// stopped.
pub struct BypassUdpServer {
    inner: Shards<ServerThreadResult>,
    pub attach: AttachInfo,
}

#[derive(Clone, Debug)]
pub struct BypassServerConfig {
    pub bypass: BypassConfig,
    pub port: u16,
    pub sizes: Sizes,
    /// One shard per CPU (at most one per queue); none: one unpinned.
    pub cpus: Vec<usize>,
    pub window: Window,
    /// Peers every shard knows the MAC of without ARP (an ARP reply
    /// reaches only the shard whose queue it lands on).
    pub neighbours: Vec<(std::net::Ipv4Addr, [u8; 6])>,
}

impl BypassUdpServer {
    pub fn start(cfg: BypassServerConfig) -> Result<BypassUdpServer> {
        let mac = iface_mac(cfg.bypass.netns.as_deref(), &cfg.bypass.iface)?;
        let mtu = iface_mtu(cfg.bypass.netns.as_deref(), &cfg.bypass.iface)?;
        let open_cfg = cfg.bypass.clone();
        let work_cfg = cfg.clone();
        let neighbours = cfg.neighbours.clone();
        let inner = Shards::spawn(
            "byp-udp-srv",
            &cfg.bypass,
            &cfg.cpus,
            Arc::new(AtomicBool::new(false)),
            move |i, steering, queue_ids| {
                let mut shard = Shard::open(&open_cfg, steering, &queue_ids, i, mac, mtu)?;
                for (ip, mac) in &neighbours {
                    shard
                        .stack
                        .set_permanent_neighbour(*ip, stack::wire::EthernetAddress(*mac));
                }
                Ok(shard)
            },
            move |mut shard: Shard, stop: &AtomicBool| shard.serve(&work_cfg, stop),
        )?;
        Ok(BypassUdpServer {
            attach: inner.attach.clone(),
            inner,
        })
    }

    pub fn stop(self) -> Result<ServerReport> {
        self.inner.server_report()
    }
}

/// One shard: its sockets and stack on one thread, and the program it
/// shares with the other shards of the interface.
struct Shard {
    base: ShardBase,
    stack: stack::udp::UdpStack<super::queues::Queues>,
}

impl ShardInfo for Shard {
    fn base(&self) -> &ShardBase {
        &self.base
    }
}

impl Shard {
    fn open(
        cfg: &BypassConfig,
        steering: Arc<xdp::Steering>,
        queue_ids: &[u32],
        index: usize,
        mac: [u8; 6],
        mtu: usize,
    ) -> Result<Shard> {
        let xsk = bind_queues(cfg, &steering, queue_ids)?;
        let base = ShardBase::new(steering, index, &xsk);
        let checksums = if cfg.trust_checksums {
            stack::wire::Checksums::Trust
        } else {
            stack::wire::Checksums::Verify
        };
        let mut ucfg =
            stack::udp::UdpConfig::new(stack::wire::EthernetAddress(mac), cfg.addr, cfg.prefix_len);
        ucfg.checksums = checksums;
        // a flood's burst must not overflow the socket before the loop reads it
        ucfg.rx_queue = 4096;
        // the socket's frames hold more than the link carries
        ucfg.mtu = Some(mtu);
        let stack = stack::udp::UdpStack::new(xsk, ucfg);
        Ok(Shard { base, stack })
    }

    /// The run-to-completion loop: poll the stack; answer (echo) or count
    /// (sink) what arrived. When nothing arrives for a while the thread
    /// sleeps in poll() on the socket, so an idle server costs nothing and
    /// the time of its loop that did work is reported beside its CPU time.
    fn serve(&mut self, cfg: &BypassServerConfig, stop: &AtomicBool) -> Result<ServerThreadResult> {
        // echo (udp-rr) on the base port, sink (udp-stream) on the next,
        // as the kernel server does
        let mut bind = |port: u16| {
            self.stack
                .bind(port)
                .map_err(|e| usage(format!("binding UDP port {port} on the stack: {e:?}")))
        };
        let echo_h = bind(Workload::UdpRr.port(cfg.port))?;
        let sink_h = bind(Workload::UdpStream.port(cfg.port))?;
        let mut counters = ServerCounters::default();
        let mut recorder = Recorder::new(cfg.window);
        let mut cpu = WindowCpu::default();
        let mut buf = vec![0u8; 65536];
        let resp_len = cfg.sizes.resp.clamp(UDP_HEADER, workload::MAX_UDP_PAYLOAD);
        let mut resp = vec![0u8; resp_len];
        let mut work = Duration::ZERO;
        let mut work_at_t0: Option<Duration> = None;
        let mut work_in_window = Duration::ZERO;
        let mut idle_rounds = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let start = Instant::now();
            cpu.tick(&cfg.window, start);
            if work_at_t0.is_none() && start >= cfg.window.t0 {
                work_at_t0 = Some(work);
            }
            if start >= cfg.window.t_end && work_in_window == Duration::ZERO {
                work_in_window = work - work_at_t0.unwrap_or(work);
            }
            let now = stack_now(start);
            let mut did = self.stack.poll(now);
            for (h, echo) in [(echo_h, true), (sink_h, false)] {
                while let Some((n, src)) = self.stack.recv_from(h, &mut buf) {
                    did = true;
                    counters.udp_in += 1;
                    counters.bytes_in += n as u64;
                    let Some((_, measured)) = workload::udp_header(&buf[..n]) else {
                        counters.udp_runts += 1;
                        continue;
                    };
                    if echo {
                        resp[..UDP_HEADER].copy_from_slice(&buf[..UDP_HEADER]);
                        match self.stack.send_to(h, src, &resp, now) {
                            Ok(()) => {
                                counters.udp_out += 1;
                                counters.bytes_out += resp.len() as u64;
                            }
                            Err(_) => counters.io_errors += 1,
                        }
                    } else if measured {
                        counters.udp_measured_in += 1;
                        recorder.op(Instant::now(), None, n as u64);
                    }
                }
            }
            if did {
                work += start.elapsed();
                idle_rounds = 0;
            } else {
                idle_rounds += 1;
                if idle_rounds > IDLE_ROUNDS && !cfg.bypass.busy_poll {
                    // nothing for a while: sleep until the socket has frames
                    // (bounded, so `stop` is seen)
                    let _ = self.stack.device_mut().poll(5);
                    idle_rounds = 0;
                }
            }
        }
        cpu.finish();
        if work_in_window == Duration::ZERO {
            work_in_window = work - work_at_t0.unwrap_or(work);
        }
        let mut extra = BTreeMap::new();
        extra.insert("work_us".to_string(), work_in_window.as_micros() as u64);
        xsk_and_xdp_counters(self.stack.device(), self.base.program(), &mut extra);
        udp_counters(self.stack.counters(), &mut extra);
        Ok(ServerThreadResult {
            cpu_id: cfg.cpus.get(self.base.index).copied(),
            counters,
            recorder,
            cpu: cpu.used,
            extra,
        })
    }
}

/// The stack's counters that explain a UDP run, for its `counters`.
fn udp_counters(c: &stack::udp::UdpCounters, extra: &mut BTreeMap<String, u64>) {
    for (k, v) in [
        ("rx_frames", c.rx_frames),
        ("rx_datagrams", c.rx_datagrams),
        ("tx_datagrams", c.tx_datagrams),
        ("socket_queue_full", c.socket_queue_full),
        ("too_big", c.too_big),
        ("closed_port", c.closed_port),
        ("not_for_us", c.not_for_us),
        ("unhandled", c.unhandled),
        ("arp_requests_sent", c.arp_requests_sent),
        ("arp_replies_sent", c.arp_replies_sent),
        ("arp_failed", c.arp_failed),
        ("tx_no_buffer", c.tx_no_buffer),
        ("control_dropped", c.control_dropped),
        ("parse_dropped", c.parse.dropped()),
    ] {
        extra.insert(format!("stack.udp.{k}"), v);
    }
}

/// A bypass UDP load generator (the client side under test): one shard
/// (on the first of its CPUs), `connections` stack sockets.
pub struct BypassUdpClient {
    inner: Shards<ClientThreadResult>,
}

pub type BypassClientConfig = super::ClientSpec;

impl BypassUdpClient {
    pub fn start(cfg: BypassClientConfig, stop: Arc<AtomicBool>) -> Result<BypassUdpClient> {
        if !cfg.workload.is_udp() {
            return Err(usage(format!(
                "{} with the client on the bypass path needs the stack's TCP in the harness, which is not in yet",
                cfg.workload
            )));
        }
        let mac = iface_mac(cfg.bypass.netns.as_deref(), &cfg.bypass.iface)?;
        let mtu = iface_mtu(cfg.bypass.netns.as_deref(), &cfg.bypass.iface)?;
        let open_cfg = cfg.bypass.clone();
        let cpus: Vec<usize> = cfg.cpus.first().copied().into_iter().collect();
        let work_cfg = cfg.for_shard(0, 1);
        let inner = Shards::spawn(
            "byp-udp-cli",
            &cfg.bypass,
            &cpus,
            stop,
            move |i, steering, queue_ids| Shard::open(&open_cfg, steering, &queue_ids, i, mac, mtu),
            move |mut shard: Shard, stop: &AtomicBool| shard.generate(&work_cfg, stop),
        )?;
        Ok(BypassUdpClient { inner })
    }

    pub fn attach(&self) -> &AttachInfo {
        &self.inner.attach
    }

    pub fn join(self) -> Result<ClientReport> {
        self.inner.client_report()
    }
}

/// One udp-rr exchange in flight.
#[derive(Clone, Copy)]
struct Pending {
    seq: u64,
    intended: Instant,
    deadline: Instant,
}

impl Shard {
    /// The load generator's loop: udp-rr closed or open loop, or a
    /// udp-stream at its rate, over the stack's sockets.
    fn generate(
        &mut self,
        cfg: &BypassClientConfig,
        stop: &AtomicBool,
    ) -> Result<ClientThreadResult> {
        let w = cfg.window;
        let n = cfg.connections.max(1);
        let mut socks = Vec::with_capacity(n);
        for _ in 0..n {
            socks.push(
                self.stack
                    .bind(0)
                    .map_err(|e| anyhow!("binding an ephemeral UDP port on the stack: {e:?}"))?,
            );
        }
        let mut counters = ClientCounters::default();
        let mut recorder = Recorder::new(w);
        let mut cpu = WindowCpu::default();
        let mut req = vec![b'q'; cfg.sizes.req.max(UDP_HEADER)];
        let mut buf = vec![0u8; 65536];
        let mut pending: Vec<Option<Pending>> = vec![None; n];
        let mut seqs = vec![0u64; n];
        let interval = cfg
            .rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(n as f64 / r));
        let mut next_at: Vec<Instant> = (0..n)
            .map(|i| w.start + interval.map_or(Duration::ZERO, |iv| iv * i as u32 / n as u32))
            .collect();
        let stream_rate = cfg.rate.unwrap_or(100_000.0);
        let mut sent_total = 0u64;
        let mut turn = 0usize;
        while Instant::now() < w.start && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1));
        }
        loop {
            let t = Instant::now();
            cpu.tick(&w, t);
            if t >= w.t_end || stop.load(Ordering::Relaxed) {
                break;
            }
            let now = stack_now(t);
            self.stack.poll(now);
            let measuring = w.measuring(t);
            match cfg.workload {
                Workload::UdpRr => {
                    for i in 0..n {
                        // answers
                        while let Some((len, _src)) = self.stack.recv_from(socks[i], &mut buf) {
                            counters.bytes_in += len as u64;
                            match (workload::udp_header(&buf[..len]), pending[i]) {
                                (Some((seq, _)), Some(p)) if seq == p.seq => {
                                    let done = Instant::now();
                                    if len != cfg.sizes.resp {
                                        counters.protocol_errors += 1;
                                    }
                                    if w.measuring(done) {
                                        recorder.op(
                                            done,
                                            Some(done.saturating_duration_since(p.intended)),
                                            (req.len() + len) as u64,
                                        );
                                    }
                                    pending[i] = None;
                                }
                                (Some(_), _) => counters.udp_late += 1,
                                (None, _) => counters.protocol_errors += 1,
                            }
                        }
                        let t = Instant::now();
                        if let Some(p) = pending[i] {
                            if t >= p.deadline {
                                counters.udp_timeouts += 1;
                                pending[i] = None;
                            }
                        }
                        if pending[i].is_none() && (interval.is_none() || t >= next_at[i]) {
                            let intended = if interval.is_some() { next_at[i] } else { t };
                            if let Some(iv) = interval {
                                next_at[i] += iv;
                            }
                            seqs[i] += 1;
                            workload::udp_put_header(&mut req, seqs[i], w.measuring(t));
                            match self.stack.send_to(socks[i], cfg.server, &req, stack_now(t)) {
                                Ok(()) => {
                                    counters.sent += 1;
                                    counters.bytes_out += req.len() as u64;
                                    if w.measuring(t) {
                                        counters.sent_measured += 1;
                                    }
                                    pending[i] = Some(Pending {
                                        seq: seqs[i],
                                        intended,
                                        deadline: t + cfg.udp_timeout,
                                    });
                                }
                                Err(_) => counters.send_refused += 1,
                            }
                        }
                    }
                }
                _ => {
                    // udp-stream: what the schedule says is due, in batches
                    let target = (t.duration_since(w.start).as_secs_f64() * stream_rate) as u64;
                    let due = target.saturating_sub(sent_total).min(32);
                    for _ in 0..due {
                        let i = turn % n;
                        turn += 1;
                        workload::udp_put_header(&mut req, seqs[i], measuring);
                        seqs[i] += 1;
                        sent_total += 1;
                        match self.stack.send_to(socks[i], cfg.server, &req, now) {
                            Ok(()) => {
                                counters.sent += 1;
                                counters.bytes_out += req.len() as u64;
                                if measuring {
                                    counters.sent_measured += 1;
                                    recorder.ops(t, 1, req.len() as u64);
                                }
                            }
                            Err(_) => counters.send_refused += 1,
                        }
                    }
                }
            }
        }
        cpu.finish();
        let mut extra = BTreeMap::new();
        xsk_and_xdp_counters(self.stack.device(), self.base.program(), &mut extra);
        udp_counters(self.stack.counters(), &mut extra);
        Ok(ClientThreadResult {
            cpu_id: cfg.cpus.get(self.base.index).copied(),
            counters,
            recorder,
            cpu: cpu.used,
            extra,
        })
    }
}
