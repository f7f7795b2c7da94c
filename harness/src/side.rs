//! The side factory: (role, engine, workload spec, placement) -> a running
//! side. `bypass run`, `bypass agent` and `bypass serve` all start their
//! servers and load generators here, so a side is put together one way,
//! whichever command asks for it.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::bypass::{AttachInfo, BypassConfig, BypassServer};
use crate::datapath::{DataPath, KernelMode};
use crate::error::usage;
use crate::kernel::client::{ClientConfig, KernelClients};
use crate::kernel::server::{KernelServer, ServerConfig, Services};
use crate::metrics::Window;
use crate::outcome::{ClientReport, ServerReport};
use crate::workload::{Messages, WorkloadSpec};

/// Which data path a side runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// The kernel's sockets (epoll), configured so.
    Kernel(KernelMode),
    /// The userspace stack over AF_XDP.
    Bypass,
}

impl Engine {
    /// The server side's engine on `path`.
    pub fn server_of(path: DataPath) -> Engine {
        Engine::side(path.server_bypass(), path)
    }

    /// The client side's engine on `path`.
    pub fn client_of(path: DataPath) -> Engine {
        Engine::side(path.client_bypass(), path)
    }

    /// A side on the bypass path, or on the kernel's as `path` configures
    /// it (the kernel side of a bypass path: at the defaults).
    pub fn side(bypass: bool, path: DataPath) -> Engine {
        if bypass {
            Engine::Bypass
        } else {
            Engine::Kernel(path.kernel_mode().unwrap_or_default())
        }
    }
}

/// Where a side runs.
#[derive(Clone, Debug)]
pub struct Placement {
    pub netns: Option<String>,
    pub iface: String,
    /// The kernel's address there: a kernel server binds it, a kernel
    /// client sends from it (`None`: any).
    pub kernel_addr: Option<IpAddr>,
    /// The stack's address and its subnet's prefix (the bypass path).
    pub stack: Option<(Ipv4Addr, u8)>,
    /// More addresses of the stack there (the lab client's, for `--hold`).
    pub aliases: Option<std::ops::RangeInclusive<Ipv4Addr>>,
    pub cpus: Vec<usize>,
    /// Frames from a veth peer may carry partial checksums (the lab).
    pub trust_checksums: bool,
}

/// How the bypass path attaches and polls.
#[derive(Clone, Copy, Debug)]
pub struct BypassOptions {
    pub xdp_mode: xdp::XdpMode,
    pub xsk_bind: xdp::BindMode,
    pub force: bool,
    /// Bypass servers spin instead of sleeping when idle.
    pub busy_poll: bool,
    /// Connections a bypass server shard holds at most.
    pub max_connections: usize,
}

impl Placement {
    fn bypass(&self, opts: &BypassOptions, busy_poll: bool) -> Result<BypassConfig> {
        let (addr, prefix_len) = self.stack.ok_or_else(|| {
            usage("the bypass path needs an address for the stack (--stack-addr, or the lab's)")
        })?;
        Ok(BypassConfig {
            netns: self.netns.clone(),
            iface: self.iface.clone(),
            addr,
            prefix_len,
            xdp_mode: opts.xdp_mode,
            xsk_bind: opts.xsk_bind,
            force: opts.force,
            trust_checksums: self.trust_checksums,
            busy_poll,
            max_connections: opts.max_connections,
            aliases: self.aliases.clone(),
        })
    }

    fn thread_cpus(&self) -> Vec<Option<usize>> {
        self.cpus.iter().map(|c| Some(*c)).collect()
    }
}

/// A running server, over either path.
pub enum Server {
    Kernel(KernelServer),
    Bypass(BypassServer),
}

impl Server {
    pub fn stop(self) -> Result<ServerReport> {
        match self {
            Server::Kernel(s) => s.stop(),
            Server::Bypass(s) => s.stop(),
        }
    }
}

/// A running load generator, over either path.
pub enum Clients {
    Kernel(KernelClients),
    Bypass(crate::bypass::Client),
}

impl Clients {
    pub fn join(self) -> Result<ClientReport> {
        match self {
            Clients::Kernel(c) => c.join(),
            Clients::Bypass(c) => c.join(),
        }
    }
}

/// Starts a server: the kernel's serves `services`, the stack's serves
/// every workload at once. Returns how the bypass path attached.
pub fn start_server(
    engine: Engine,
    messages: &Messages,
    services: Services,
    place: &Placement,
    opts: &BypassOptions,
    window: Window,
    idle_timeout: Option<Duration>,
) -> Result<(Server, Option<AttachInfo>)> {
    Ok(match engine {
        Engine::Kernel(mode) => (
            Server::Kernel(KernelServer::start(ServerConfig {
                busy: mode == KernelMode::Busy,
                napi_iface: Some(place.iface.clone()),
                uring: mode == KernelMode::Uring,
                bind: place
                    .kernel_addr
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                messages: *messages,
                services,
                cpus: place.thread_cpus(),
                netns: place.netns.clone(),
                window,
                idle_timeout,
            })?),
            None,
        ),
        Engine::Bypass => {
            let s = BypassServer::start(crate::bypass::ServerSpec {
                bypass: place.bypass(opts, opts.busy_poll)?,
                messages: *messages,
                cpus: place.cpus.clone(),
                window,
                idle_timeout,
            })?;
            let a = s.attach.clone();
            (Server::Bypass(s), Some(a))
        }
    })
}

/// Starts a load generator against `server`. The bypass generator runs
/// one shard per CPU when `multi_shard` (against the stack's server: on a
/// veth a reply comes back on the queue its request left by) or when the
/// NIC has RSS (each shard picks ports whose replies hash to its queue),
/// else one (a kernel server on a veth picks the queue of its replies by
/// its own flow hash).
#[allow(clippy::too_many_arguments)]
pub fn start_clients(
    engine: Engine,
    spec: &WorkloadSpec,
    server: IpAddr,
    multi_shard: bool,
    place: &Placement,
    opts: &BypassOptions,
    window: Window,
    stop: Arc<AtomicBool>,
) -> Result<(Clients, Option<AttachInfo>)> {
    Ok(match engine {
        Engine::Kernel(mode) => (
            Clients::Kernel(KernelClients::start(
                &ClientConfig {
                    busy: mode == KernelMode::Busy,
                    napi_iface: Some(place.iface.clone()),
                    uring: mode == KernelMode::Uring,
                    load: *spec,
                    server,
                    bind: place.kernel_addr,
                    cpus: place.thread_cpus(),
                    netns: place.netns.clone(),
                    window,
                },
                stop,
            )?),
            None,
        ),
        Engine::Bypass => {
            let IpAddr::V4(server) = server else {
                return Err(usage("the bypass path speaks IPv4 only"));
            };
            let c = crate::bypass::Client::start(
                crate::bypass::ClientSpec {
                    bypass: place.bypass(opts, false)?,
                    load: *spec,
                    server: SocketAddrV4::new(server, spec.workload.port(spec.messages.port)),
                    cpus: if multi_shard
                        || crate::bypass::rss::read(place.netns.as_deref(), &place.iface).is_some()
                    {
                        place.cpus.clone()
                    } else {
                        place.cpus.iter().copied().take(1).collect()
                    },
                    window,
                },
                stop,
            )?;
            let a = c.attach().clone();
            (Clients::Bypass(c), Some(a))
        }
    })
}
