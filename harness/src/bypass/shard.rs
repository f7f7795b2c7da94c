//! One shard of the bypass path, whichever side it serves: its AF_XDP
//! sockets (one per queue it takes), the stack's one interface over them
//! (Ethernet, ARP, IPv4, ICMP, TCP and UDP), its end of the neighbour relay,
//! and the XDP program it shares with the other shards of the interface.
//! The server and both generators run on it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use stack::wire::{Checksums, EthernetAddress};
use stack::{Interface, InterfaceConfig};

use super::queues::Queues;
use super::relay::NeighbourRelay;
use super::{bind_queues, iface_mac, iface_mtu, stack_now, xsk_and_xdp_counters, BypassConfig};
use super::{ShardBase, ShardInfo};
use crate::metrics::{Window, WindowCpu};

/// What the shards of one side share when they open: the interface's MAC
/// and MTU, and the secrets of the flow hash and the ISNs.
#[derive(Clone, Debug)]
pub struct ShardSetup {
    mac: [u8; 6],
    mtu: usize,
    flow_secret: [u64; 4],
    isn_secret: [u64; 4],
}

impl ShardSetup {
    /// Reads the interface (in its namespace) and draws the secrets.
    pub fn read(cfg: &BypassConfig) -> Result<ShardSetup> {
        Ok(ShardSetup {
            mac: iface_mac(cfg.netns.as_deref(), &cfg.iface)?,
            mtu: iface_mtu(cfg.netns.as_deref(), &cfg.iface)?,
            flow_secret: secret()?,
            isn_secret: secret()?,
        })
    }
}

/// What a shard is given when its thread opens it.
pub struct ShardParts {
    pub index: usize,
    pub steering: Arc<xdp::Steering>,
    pub queue_ids: Vec<u32>,
    pub relay: NeighbourRelay,
}

/// A shard's sockets, interface and relay.
pub struct Shard {
    pub base: ShardBase,
    pub iface: Interface<Queues>,
    relay: NeighbourRelay,
}

impl ShardInfo for Shard {
    fn base(&self) -> &ShardBase {
        &self.base
    }
}

impl Shard {
    /// Binds the shard's queues, puts their sockets in the program's map
    /// and makes the interface, with `tune` applied to its configuration.
    /// Call it on the shard's thread, inside the interface's namespace.
    pub fn open(
        cfg: &BypassConfig,
        setup: &ShardSetup,
        parts: ShardParts,
        tune: impl FnOnce(&mut InterfaceConfig),
    ) -> Result<Shard> {
        let xsk = bind_queues(cfg, &parts.steering, &parts.queue_ids)?;
        let base = ShardBase::new(parts.steering, parts.index, &xsk);
        let mut icfg = InterfaceConfig::new(
            EthernetAddress(setup.mac),
            cfg.addr,
            cfg.prefix_len,
            setup.flow_secret,
            setup.isn_secret,
        );
        // the sockets' frames hold more than the link carries
        icfg.mtu = Some(setup.mtu);
        icfg.aliases = cfg.aliases.clone();
        if cfg.trust_checksums {
            icfg.checksums = Checksums::Trust;
        }
        tune(&mut icfg);
        Ok(Shard {
            base,
            iface: Interface::new(xsk, icfg),
            relay: parts.relay,
        })
    }

    /// One round of the stack at `now` (receive a batch, run the timers,
    /// send), then the neighbours exchanged with the sibling shards.
    /// Returns whether anything was received or sent.
    pub fn poll(&mut self, now: Instant) -> bool {
        let did = self.iface.poll(stack_now(now));
        self.relay.exchange(&mut self.iface, now);
        did
    }

    /// The next round of a generator's loop: the time now, once the
    /// window has started, with the CPU window ticked and the stack polled;
    /// `None` when the window has ended or a stop came.
    pub fn next_round(
        &mut self,
        w: &Window,
        cpu: &mut WindowCpu,
        stop: &AtomicBool,
    ) -> Option<Instant> {
        while Instant::now() < w.start && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let t = Instant::now();
        cpu.tick(w, t);
        if t >= w.t_end || stop.load(Ordering::Relaxed) {
            return None;
        }
        self.poll(t);
        Some(t)
    }

    /// Sleeps in poll(2) on the sockets until frames come or the stack's
    /// next timer is due, at most 5 ms (so that a stop is seen).
    pub fn sleep(&mut self) {
        let wait_ms = self
            .iface
            .poll_at()
            .map(|t| t.saturating_since(stack_now(Instant::now())).as_millis() as i32)
            .unwrap_or(5)
            .clamp(0, 5);
        let _ = self.iface.device_mut().poll(wait_ms);
    }

    /// The shard's counters for a run's `counters`: its sockets' and (shard
    /// 0) the program's, the interface's as `stack.<name>`, each parse
    /// drop that happened by reason as `stack.drop.<reason>`, TCP's as
    /// `stack.tcp.<name>`.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let mut extra = BTreeMap::new();
        xsk_and_xdp_counters(self.iface.device(), self.base.program(), &mut extra);
        let c = self.iface.counters();
        for (k, v) in c.named() {
            extra.insert(format!("stack.{k}"), v);
        }
        for (reason, n) in c.parse.iter().filter(|(_, n)| *n > 0) {
            extra.insert(format!("stack.drop.{}", reason.name()), n);
        }
        for (k, v) in self.iface.tcp_stats().named() {
            extra.insert(format!("stack.tcp.{k}"), v);
        }
        extra
    }
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
