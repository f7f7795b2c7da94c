//! The bypass path: the XDP program steers the stack's frames into an AF_XDP
//! socket, and the userspace stack serves them on the same thread, run to
//! completion: receive a batch, answer it, transmit, repeat. `shard`: one
//! shard's sockets and interface (every protocol), on which `server` serves
//! every workload at once, and the generators run: `tcp` (crr, rr, stream)
//! and `udp` (udp-rr, udp-stream). `relay`: what one shard learns by ARP,
//! passed to its siblings.
//!
//! In the lab the stack has an address of its own on the server's veth
//! (own-address steering: ARP for it and IPv4 to it go to the socket, the
//! kernel keeps everything else), so the kernel's traffic on the same
//! interface is untouched.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use serde::Serialize;

use crate::error::usage;

/// Where the stack lives and how the program is attached.
#[derive(Clone, Debug)]
pub struct BypassConfig {
    pub netns: Option<String>,
    pub iface: String,
    /// The stack's own IPv4 address (steered to it) and its subnet's prefix.
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    pub xdp_mode: xdp::XdpMode,
    /// How the AF_XDP sockets bind (`--xsk-bind`).
    pub xsk_bind: xdp::BindMode,
    pub force: bool,
    /// Trust the TCP/UDP checksums of received frames (a veth peer with
    /// TX checksum offload on sends partial ones; the IPv4 header checksum
    /// is verified anyway, and the stack counts what it trusted as
    /// `stack.checksums_trusted`).
    pub trust_checksums: bool,
    /// A server shard never sleeps in poll(2): it spins on its rings, a
    /// core per shard for the lowest latency (DPDK's way). Off: after
    /// [`IDLE_ROUNDS`] empty polls it sleeps until frames come.
    pub busy_poll: bool,
    /// A server shard's socket table (`--max-connections`).
    pub max_connections: usize,
    /// More addresses of the stack, steered to it and answered for as
    /// `addr` is (the client's, for the connections `--hold` keeps open).
    pub aliases: Option<std::ops::RangeInclusive<Ipv4Addr>>,
}

/// What the attach produced, for the result's env.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct AttachInfo {
    pub xdp_mode: String,
    pub zero_copy: bool,
    pub native_error: Option<String>,
}

impl AttachInfo {
    /// Of an attached program.
    pub fn of(steering: &xdp::Steering, zero_copy: bool) -> AttachInfo {
        AttachInfo {
            xdp_mode: steering
                .mode()
                .map_or("not attached", |m| m.as_str())
                .to_string(),
            zero_copy,
            native_error: steering.native_error().map(|e| e.to_string()),
        }
    }
}

/// Empty polls in a row after which a shard sleeps in poll() on its socket
/// until frames come: a loop that spins on an empty ring burns a core for
/// nothing, one that sleeps at once pays a wake-up per batch.
pub const IDLE_ROUNDS: u32 = 8;

/// The interface's MTU, read with `ip` in its namespace.
pub fn iface_mtu(netns: Option<&str>, iface: &str) -> Result<usize> {
    let mut args = vec![];
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    args.extend(["-j", "link", "show", "dev", iface]);
    let v: serde_json::Value = serde_json::from_str(&crate::sys::sh("ip", &args)?)?;
    v[0]["mtu"]
        .as_u64()
        .map(|m| m as usize)
        .ok_or_else(|| anyhow!("`ip link show dev {iface}` gave no MTU"))
}

/// The interface's MAC address, read with `ip` in its namespace.
pub fn iface_mac(netns: Option<&str>, iface: &str) -> Result<[u8; 6]> {
    let mut args = vec![];
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    args.extend(["-j", "link", "show", "dev", iface]);
    let out = crate::sys::sh("ip", &args)?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let s = v[0]["address"]
        .as_str()
        .ok_or_else(|| anyhow!("`ip link show dev {iface}` gave no address"))?;
    parse_mac(s).ok_or_else(|| anyhow!("{iface}: unexpected MAC address `{s}`"))
}

/// Loads the steering program (own-address mode) for the interface, in its
/// namespace, without attaching it. The shards that serve the interface's
/// queues share it: each puts its own sockets in the program's map, and
/// [`Shards::spawn`] attaches it once every queue has its socket.
pub fn load_program(cfg: &BypassConfig) -> Result<Arc<xdp::Steering>> {
    if cfg.force {
        crate::lab::in_ns_opt(cfg.netns.as_deref(), || may_force(cfg))??;
    }
    let multi_buffer = xsk_config(cfg)?.multi_buffer;
    let load = || {
        xdp::Steering::load(
            cfg.iface.as_str(),
            cfg.xdp_mode,
            &xdp::SteerConfig {
                addr: cfg.addr,
                aliases: cfg.aliases.clone(),
                steer: xdp::Steer::OwnAddress,
                multi_buffer,
            },
            cfg.force,
        )
        .map_err(|e| match e {
            xdp::Error::Busy { .. } => usage(in_namespace(&e.to_string(), cfg.netns.as_deref())),
            other => anyhow!(other),
        })
    };
    let steering = crate::lab::in_ns_opt(cfg.netns.as_deref(), load)??;
    Ok(Arc::new(steering))
}

/// Advice to run `ip` names the namespace the interface is in.
fn in_namespace(msg: &str, netns: Option<&str>) -> String {
    match netns {
        Some(ns) => msg.replace("`ip link set", &format!("`ip -n {ns} link set")),
        None => msg.to_string(),
    }
}

/// Whether `--force` may replace what is on the interface (in the calling
/// thread's namespace): never the program of a live bypass process (that
/// would leave it running blind and nothing serving). That every queue
/// takes our socket is known before anything is detached: the shards bind
/// them before the program is attached.
fn may_force(cfg: &BypassConfig) -> Result<()> {
    let Some(e) = xdp::existing_program(cfg.iface.as_str())? else {
        return Ok(());
    };
    let me = std::process::id();
    let live_bypass: Vec<u32> = e
        .link_id
        .map(xdp::link_holders)
        .unwrap_or_default()
        .into_iter()
        .filter(|&p| p != me && crate::sys::is_bypass_process(p))
        .collect();
    if let Some(pid) = live_bypass.first() {
        return Err(usage(format!(
            "interface {}: its XDP program (id {}) belongs to bypass process {pid}, which is running; --force replaces only programs whose owner is gone or is not bypass, since detaching a live server's leaves nothing serving: stop it first (`kill {pid}`), then start this one",
            cfg.iface, e.prog_id
        )));
    }
    Ok(())
}

/// Binds an AF_XDP socket to each of `queue_ids` and puts it in the
/// program's map: one shard's device. Call it on the shard's thread,
/// inside the interface's namespace.
pub fn bind_queues(
    cfg: &BypassConfig,
    steering: &xdp::Steering,
    queue_ids: &[u32],
) -> Result<queues::Queues> {
    let mut socks = Vec::with_capacity(queue_ids.len());
    for &q in queue_ids {
        let xsk = bind_queue(cfg, q)?;
        steering.insert_socket(q, std::os::fd::AsFd::as_fd(&xsk))?;
        socks.push(xsk);
    }
    queues::Queues::new(socks)
}

/// The interface's receive queues split over at most `shards` shards: shard
/// `i` takes the queues `q` with `q % shards == i` (fewer shards when the
/// interface has fewer queues).
pub fn shard_queues(cfg: &BypassConfig, shards: usize) -> Result<Vec<Vec<u32>>> {
    let n = rx_queues(cfg.netns.as_deref(), &cfg.iface)?;
    let shards = shards.clamp(1, n as usize);
    Ok((0..shards)
        .map(|i| (0..n).filter(|q| *q as usize % shards == i).collect())
        .collect())
}

/// Binds an AF_XDP socket to one queue. The kernel releases a closed
/// socket's queue a little later (deferred work): a run right after another
/// may find it still taken, so a busy queue is retried for a while.
fn bind_queue(cfg: &BypassConfig, q: u32) -> Result<xdp::Xsk> {
    let deadline = Instant::now() + std::time::Duration::from_secs(3);
    let xsk = xsk_config(cfg)?;
    loop {
        match xdp::Xsk::bind(cfg.iface.as_str(), q, &xsk) {
            Ok(x) => return Ok(x),
            Err(xdp::Error::Syscall { ref source, .. })
                if source.raw_os_error() == Some(nix::libc::EBUSY) =>
            {
                if Instant::now() >= deadline {
                    return Err(usage(format!(
                        "interface {} queue {q} is taken by another AF_XDP socket (another server on this interface?); nothing on the interface was changed: stop that server first",
                        cfg.iface
                    )));
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(xdp::Error::Syscall { ref source, .. })
                if source.raw_os_error() == Some(nix::libc::EOPNOTSUPP)
                    && cfg.xsk_bind == xdp::BindMode::ZeroCopy =>
            {
                return Err(usage(format!(
                    "--xsk-bind zero-copy: {} ({}) has no zero-copy AF_XDP on this kernel (the kernel said: {source}); nothing on the interface was changed: use --xsk-bind auto or copy, or a driver with xsk-zerocopy (`bypass doctor` says)",
                    cfg.iface,
                    crate::sys::driver(None, &cfg.iface)
                )));
            }
            Err(e) => {
                return Err(anyhow!(e)).with_context(|| {
                    format!("binding an AF_XDP socket to {} queue {q}", cfg.iface)
                })
            }
        }
    }
}

/// The sockets' configuration: `--xsk-bind`, frames for the interface's
/// MTU (multi-buffer where a frame outgrows 4 KiB), and TCP/UDP transmit
/// checksums left to a device that offers to complete them
/// (`xsk.tx_checksum_offload` says whether one did; in copy mode on veth
/// leaving them to the kernel measured worse, see `xdp::TxChecksum`).
fn xsk_config(cfg: &BypassConfig) -> Result<xdp::XskConfig> {
    let mtu = iface_mtu(cfg.netns.as_deref(), &cfg.iface)?;
    Ok(xdp::XskConfig {
        bind: cfg.xsk_bind,
        tx_checksum: xdp::TxChecksum::Offered,
        ..Default::default()
    }
    .for_mtu(u32::try_from(mtu).unwrap_or(u32::MAX)))
}

/// The interface's receive queues (at most the program's map size).
fn rx_queues(netns: Option<&str>, iface: &str) -> Result<u32> {
    let n = match netns {
        Some(ns) => crate::lab::link_queues(ns, iface)?.0,
        None => {
            let out = crate::sys::sh("ip", &["-d", "-j", "link", "show", "dev", iface])?;
            let v: serde_json::Value = serde_json::from_str(&out)?;
            v[0]["num_rx_queues"].as_u64().unwrap_or(1)
        }
    };
    // the channels in use, where fewer than the queues
    let n = crate::sys::rx_channels(netns, iface).map_or(n, |c| c.min(n));
    Ok((n as u32).clamp(1, xdp::MAX_QUEUES))
}

/// The sockets' counters, and the program's when `steering` is given (one
/// shard reports them: they count for the whole interface), for a run's
/// `counters`.
pub fn xsk_and_xdp_counters(
    queues: &queues::Queues,
    steering: Option<&xdp::Steering>,
    extra: &mut BTreeMap<String, u64>,
) {
    extra.insert("xsk.queues".into(), queues.sockets().len() as u64);
    for s in queues.sockets().iter().filter_map(|x| x.statistics().ok()) {
        for (k, v) in [
            ("xsk.rx_dropped", s.rx_dropped),
            ("xsk.rx_ring_full", s.rx_ring_full),
            ("xsk.fill_ring_empty", s.fill_ring_empty),
            ("xsk.rx_invalid_descs", s.rx_invalid_descs),
            ("xsk.tx_invalid_descs", s.tx_invalid_descs),
            ("xsk.tx_ring_empty", s.tx_ring_empty),
        ] {
            *extra.entry(k.into()).or_insert(0) += v;
        }
    }
    for x in queues.sockets() {
        let j = x.join_stats();
        *extra.entry("xsk.multi_buffer".into()).or_insert(0) |= u64::from(x.multi_buffer());
        *extra.entry("xsk.tx_checksum_offload".into()).or_insert(0) |=
            u64::from(x.tx_checksum_offload());
        *extra.entry("xsk.rx_joined".into()).or_insert(0) += j.joined;
        *extra.entry("xsk.rx_join_dropped".into()).or_insert(0) += j.dropped;
    }
    if let Some(Ok(c)) = steering.map(xdp::Steering::counters) {
        extra.insert("xdp.steered".into(), c.steered);
        extra.insert("xdp.passed".into(), c.passed);
        extra.insert("xdp.no_socket".into(), c.no_socket);
    }
}

/// The stack's clock from the harness's: the stack takes time as an
/// injected value.
pub fn stack_now(t: Instant) -> stack::time::Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    stack::time::Instant::from_micros(t.saturating_duration_since(base).as_micros() as u64)
}

pub mod hold;
pub mod queues;
pub mod relay;
pub mod rss;
pub mod server;
pub mod shard;
pub mod tcp;
pub mod udp;

pub use server::{BypassServer, ServerSpec};

/// What a shard reports once it is attached.
pub trait ShardInfo {
    fn base(&self) -> &ShardBase;
}

/// What every shard of a side holds alike: the program it shares with the
/// others, its index among them, and whether its sockets run zero-copy.
pub struct ShardBase {
    pub steering: Arc<xdp::Steering>,
    pub index: usize,
    pub zero_copy: bool,
}

impl ShardBase {
    pub fn new(steering: Arc<xdp::Steering>, index: usize, device: &queues::Queues) -> ShardBase {
        ShardBase {
            steering,
            index,
            zero_copy: device.zero_copy(),
        }
    }

    /// The program, for shard 0 only: its counters cover every queue, so
    /// one shard reports them.
    pub fn program(&self) -> Option<&xdp::Steering> {
        (self.index == 0).then_some(&*self.steering)
    }
}

/// A shard's thread: it pins itself and enters the namespace, opens its
/// sockets (in the program's map) and stack (`open`), reports whether its
/// sockets run zero-copy, waits for [`ShardThread::go`] (the program is
/// attached), then runs `work` until `stop` is set (or its own end).
/// Dropping it stops it.
pub struct ShardThread<R> {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<R>>>,
    go: Option<crossbeam_channel::Sender<()>>,
    pub zero_copy: bool,
}

impl<R: Send + 'static> ShardThread<R> {
    pub fn spawn<S, O, W>(
        name: &str,
        cpu: Option<usize>,
        netns: Option<String>,
        stop: Arc<AtomicBool>,
        open: O,
        work: W,
    ) -> Result<ShardThread<R>>
    where
        S: ShardInfo,
        O: FnOnce() -> Result<S> + Send + 'static,
        W: FnOnce(S, &AtomicBool) -> Result<R> + Send + 'static,
    {
        let (tx, rx) = crossbeam_channel::bounded::<Result<bool>>(1);
        let (go, go_rx) = crossbeam_channel::bounded::<()>(1);
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || -> Result<R> {
                let setup = crate::lab::place_thread(cpu, netns.as_deref()).and_then(|()| open());
                let shard = match setup {
                    Ok(s) => s,
                    Err(e) => {
                        let msg = format!("{e:#}");
                        let _ = tx.send(Err(e));
                        return Err(anyhow!(msg));
                    }
                };
                let _ = tx.send(Ok(shard.base().zero_copy));
                if go_rx.recv().is_err() {
                    return Err(anyhow!("the start was abandoned"));
                }
                work(shard, &stop2)
            })
            .with_context(|| format!("spawning the {name} thread"))?;
        let zero_copy = match rx.recv() {
            Ok(Ok(z)) => z,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => return Err(anyhow!("the {name} thread died while starting")),
        };
        Ok(ShardThread {
            stop,
            thread: Some(thread),
            go: Some(go),
            zero_copy,
        })
    }

    /// Lets the thread run its work.
    pub fn go(&mut self) {
        if let Some(g) = self.go.take() {
            let _ = g.send(());
        }
    }

    /// Waits for the thread's own end.
    pub fn join(mut self) -> Result<R> {
        self.go = None;
        self.thread
            .take()
            .expect("joined once")
            .join()
            .map_err(|_| anyhow!("a bypass shard thread panicked"))?
    }

    /// Stops the thread and collects its result.
    pub fn finish(self) -> Result<R> {
        self.stop.store(true, Ordering::Relaxed);
        self.join()
    }
}

/// The shards of one side: one thread per core, each over its own queues
/// of the interface, with its own sockets, stack, flow table and
/// connections; they share only the program (its map takes every shard's
/// sockets). Their results come back over a crossbeam channel.
pub struct Shards<R> {
    threads: Vec<ShardThread<R>>,
    /// How the first shard attached (all attach alike).
    pub attach: AttachInfo,
}

impl<R: Send + 'static> Shards<R> {
    /// Loads the program, spawns one shard per entry of `cpus` (at most one
    /// per queue; one unpinned shard when `cpus` is empty) and attaches the
    /// program once every shard has its sockets in its map: shard `i` runs
    /// `open` with its index, the program, its queues and its end of the
    /// neighbour relay, then `work`. From the moment the program is on the
    /// interface, every queue's frames reach a socket; a queue that cannot
    /// take one fails the start before anything on the interface changed.
    pub fn spawn<S, O, W>(
        name: &str,
        cfg: &BypassConfig,
        cpus: &[usize],
        stop: Arc<AtomicBool>,
        open: O,
        work: W,
    ) -> Result<Shards<R>>
    where
        S: ShardInfo,
        O: Fn(shard::ShardParts) -> Result<S> + Clone + Send + 'static,
        W: Fn(S, &AtomicBool) -> Result<R> + Clone + Send + 'static,
    {
        let steering = load_program(cfg)?;
        let parts = shard_queues(cfg, cpus.len().max(1))?;
        let relays = relay::NeighbourRelay::mesh(parts.len());
        let mut threads = Vec::with_capacity(parts.len());
        for (i, (queue_ids, relay)) in parts.into_iter().zip(relays).enumerate() {
            let (open, work, steering) = (open.clone(), work.clone(), steering.clone());
            threads.push(ShardThread::spawn(
                &format!("{name}-{i}"),
                cpus.get(i).copied(),
                cfg.netns.clone(),
                stop.clone(),
                move || {
                    open(shard::ShardParts {
                        index: i,
                        steering,
                        queue_ids,
                        relay,
                    })
                },
                move |s, stop: &AtomicBool| work(s, stop),
            )?);
        }
        // an error here drops the threads, which stops them
        crate::lab::in_ns_opt(cfg.netns.as_deref(), || steering.attach_loaded())?.map_err(|e| {
            match e {
                xdp::Error::Busy { .. } => {
                    usage(in_namespace(&e.to_string(), cfg.netns.as_deref()))
                }
                other => anyhow!(other),
            }
        })?;
        let attach = AttachInfo::of(&steering, threads[0].zero_copy);
        for t in &mut threads {
            t.go();
        }
        Ok(Shards { threads, attach })
    }

    /// Stops (with `stop`) or waits for every shard, and collects what each
    /// sends back.
    fn collect(self, stop: bool) -> Result<Vec<R>> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let n = self.threads.len();
        for (i, t) in self.threads.into_iter().enumerate() {
            let r = if stop { t.finish() } else { t.join() };
            tx.send((i, r)).expect("the receiver is here");
        }
        let mut out: Vec<(usize, Result<R>)> = rx.try_iter().take(n).collect();
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, r)| r).collect()
    }
}

impl Shards<crate::outcome::ServerThreadResult> {
    /// Stops the server's shards: their report, per shard and in total.
    pub fn server_report(self) -> Result<crate::outcome::ServerReport> {
        let threads = self.collect(true)?;
        let mut counters = crate::outcome::ServerCounters::default();
        for t in &threads {
            counters.add(&t.counters);
        }
        Ok(crate::outcome::ServerReport { threads, counters })
    }
}

impl Shards<crate::outcome::ClientThreadResult> {
    /// Waits for the generator's shards: their report, per shard and in
    /// total.
    pub fn client_report(self) -> Result<crate::outcome::ClientReport> {
        let threads = self.collect(false)?;
        let mut counters = crate::outcome::ClientCounters::default();
        for t in &threads {
            counters.add(&t.counters);
        }
        Ok(crate::outcome::ClientReport { threads, counters })
    }
}

impl<R> Drop for ShardThread<R> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // a thread still waiting to go ends at once
        self.go = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `aa:bb:cc:dd:ee:ff` -> bytes.
fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}

/// What a bypass load generator of a run needs.
#[derive(Clone, Debug)]
pub struct ClientSpec {
    pub bypass: BypassConfig,
    pub load: crate::workload::WorkloadSpec,
    /// The server's address and the workload's port there.
    pub server: std::net::SocketAddrV4,
    /// One shard per CPU (at most one per queue; the UDP generator runs one).
    pub cpus: Vec<usize>,
    pub window: crate::metrics::Window,
}

impl ClientSpec {
    /// Shard `i` of `n`'s part: its CPU, its share of the connections (at
    /// least one) and of the rate.
    pub fn for_shard(&self, i: usize, n: usize) -> ClientSpec {
        ClientSpec {
            load: self.load.share(i, n),
            cpus: self.cpus.get(i).copied().into_iter().collect(),
            ..self.clone()
        }
    }
}

/// A bypass load generator (the client side under test).
pub enum Client {
    Udp(udp::BypassUdpClient),
    Tcp(tcp::BypassTcpClient),
}

impl Client {
    pub fn start(spec: ClientSpec, stop: Arc<AtomicBool>) -> Result<Client> {
        if spec.load.workload.is_udp() {
            Ok(Client::Udp(udp::BypassUdpClient::start(spec, stop)?))
        } else {
            Ok(Client::Tcp(tcp::BypassTcpClient::start(spec, stop)?))
        }
    }

    pub fn attach(&self) -> &AttachInfo {
        match self {
            Client::Udp(c) => c.attach(),
            Client::Tcp(c) => &c.attach,
        }
    }

    pub fn join(self) -> Result<crate::outcome::ClientReport> {
        match self {
            Client::Udp(c) => c.join(),
            Client::Tcp(c) => c.join(),
        }
    }
}
