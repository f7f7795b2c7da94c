//! The bypass load generator for udp-rr and udp-stream: the stack's UDP
//! sockets over AF_XDP, on one shard; the stack resolves the server by ARP.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

use super::shard::{Shard, ShardSetup};
use super::{AttachInfo, Shards};
use crate::metrics::{Recorder, WindowCpu};
use crate::outcome::{ClientCounters, ClientReport, ClientThreadResult};
use crate::workload::{self, Workload, UDP_HEADER};

/// A bypass UDP load generator (the client side under test): one shard
/// (on the first of its CPUs), `connections` stack sockets.
pub struct BypassUdpClient {
    inner: Shards<ClientThreadResult>,
}

pub type BypassClientConfig = super::ClientSpec;

impl BypassUdpClient {
    pub fn start(cfg: BypassClientConfig, stop: Arc<AtomicBool>) -> Result<BypassUdpClient> {
        let setup = ShardSetup::read(&cfg.bypass)?;
        let open_cfg = cfg.bypass.clone();
        let cpus: Vec<usize> = cfg.cpus.first().copied().into_iter().collect();
        let work_cfg = cfg.for_shard(0, 1);
        let inner = Shards::spawn(
            "byp-udp-cli",
            &cfg.bypass,
            &cpus,
            stop,
            move |parts| {
                Ok(UdpGen {
                    shard: Shard::open(&open_cfg, &setup, parts, |_| {})?,
                })
            },
            move |mut g: UdpGen, stop: &AtomicBool| g.generate(&work_cfg, stop),
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

/// The generator's shard.
struct UdpGen {
    shard: Shard,
}

impl super::ShardInfo for UdpGen {
    fn base(&self) -> &super::ShardBase {
        &self.shard.base
    }
}

impl UdpGen {
    /// The load generator's loop: udp-rr closed or open loop, or a
    /// udp-stream at its rate, over the stack's sockets.
    fn generate(
        &mut self,
        cfg: &BypassClientConfig,
        stop: &AtomicBool,
    ) -> Result<ClientThreadResult> {
        let w = cfg.window;
        let n = cfg.load.connections.max(1);
        let mut socks = Vec::with_capacity(n);
        for _ in 0..n {
            socks.push(
                self.shard
                    .iface
                    .udp_bind(0)
                    .map_err(|e| anyhow!("binding an ephemeral UDP port on the stack: {e:?}"))?,
            );
        }
        let mut counters = ClientCounters::default();
        let mut recorder = Recorder::new(w);
        let mut cpu = WindowCpu::default();
        let mut req = vec![b'q'; cfg.load.messages.sizes.req.max(UDP_HEADER)];
        let mut buf = vec![0u8; 65536];
        let mut pending: Vec<Option<Pending>> = vec![None; n];
        let mut seqs = vec![0u64; n];
        let interval = cfg
            .load
            .rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(n as f64 / r));
        let mut next_at: Vec<Instant> = (0..n)
            .map(|i| w.start + interval.map_or(Duration::ZERO, |iv| iv * i as u32 / n as u32))
            .collect();
        let stream_rate = cfg.load.rate.unwrap_or(100_000.0);
        let mut sent_total = 0u64;
        let mut turn = 0usize;
        while let Some(t) = self.shard.next_round(&w, &mut cpu, stop) {
            let measuring = w.measuring(t);
            match cfg.load.workload {
                Workload::UdpRr => {
                    for i in 0..n {
                        // answers
                        while let Ok((len, _src)) = self.shard.iface.recv_from(socks[i], &mut buf) {
                            counters.bytes_in += len as u64;
                            match (workload::udp_header(&buf[..len]), pending[i]) {
                                (Some((seq, _)), Some(p)) if seq == p.seq => {
                                    let done = Instant::now();
                                    if len != cfg.load.messages.sizes.resp {
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
                            match self.shard.iface.send_to(socks[i], cfg.server, &req) {
                                Ok(()) => {
                                    counters.sent += 1;
                                    counters.bytes_out += req.len() as u64;
                                    if w.measuring(t) {
                                        counters.sent_measured += 1;
                                    }
                                    pending[i] = Some(Pending {
                                        seq: seqs[i],
                                        intended,
                                        deadline: t + cfg.load.udp_timeout,
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
                        match self.shard.iface.send_to(socks[i], cfg.server, &req) {
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
        let extra = self.shard.counters();
        Ok(ClientThreadResult {
            cpu_id: cfg.cpus.get(self.shard.base.index).copied(),
            counters,
            recorder,
            cpu: cpu.used,
            extra,
        })
    }
}
