//! `bypass agent`: one machine's side of a run across hosts. It waits for a
//! controller on the management network, authenticates it (see
//! [`crate::remote`]), tells it what the host is, then runs the server or
//! client sides it is asked for, one at a time, and reports each.
//!
//! It never touches an interface it was not allowed (`--allow-iface`), and
//! whatever ends a side (its end, an `Abort`, a lost controller, SIGTERM)
//! stops it the same way: the side is dropped, which detaches its XDP
//! program (a bpf_link) and closes its sockets.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::error::usage;
use crate::kernel::server::Services;
use crate::metrics::Window;
use crate::metrics::{Sampler, SideSample};
use crate::remote::{
    self, HostInfo, IfaceInfo, Reply, Request, Role, Secret, SideReport, SideSpec,
};
use crate::side::{self, BypassOptions, Clients, Engine, Placement, Server};

/// How the agent was started.
pub struct AgentConfig {
    pub listen: SocketAddr,
    pub secret: Secret,
    pub allow_ifaces: Vec<String>,
    pub stack_addr: Option<Ipv4Addr>,
    /// Serve one controller, then exit (how `--ssh` starts agents).
    pub once: bool,
}

/// The sysctls a result records per host.
const SYSCTLS: &[&str] = &[
    "net.core.somaxconn",
    "net.core.busy_poll",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.tcp_tw_reuse_delay",
    "net.ipv4.tcp_max_syn_backlog",
];

/// One line of the agent's log (stderr), stamped with the UTC time.
///
/// The line goes out in one `write`: `eprintln!` writes its pieces one by
/// one, and agents that share a stderr (started over ssh by one controller)
/// would interleave them mid-line.
fn log(msg: impl std::fmt::Display) {
    use std::io::Write;
    let line = format!(
        "{} bypass agent: {msg}\n",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    // a log line that cannot be written (stderr closed) is not worth failing for
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Checks the configuration against this host and describes it.
pub fn host_info(cfg: &AgentConfig) -> Result<HostInfo> {
    if cfg.allow_ifaces.is_empty() {
        return Err(usage(
            "name the data interface(s) the agent may use with --allow-iface IF",
        ));
    }
    let mut ifaces = Vec::new();
    for name in &cfg.allow_ifaces {
        if !std::path::Path::new("/sys/class/net").join(name).exists() {
            return Err(usage(format!(
                "--allow-iface {name}: no such interface on this host (list them with `ip link`)"
            )));
        }
        let addrs = crate::sys::iface_addrs(name)?;
        let v4 = addrs.iter().find_map(|(a, p)| match a {
            IpAddr::V4(a) => Some((*a, *p)),
            IpAddr::V6(_) => None,
        });
        if addrs.iter().any(|(a, _)| *a == cfg.listen.ip()) {
            return Err(usage(format!(
                "--listen {}: that address is on {name}, a data interface; the control connection belongs on the management network (give --listen an address of another interface)",
                cfg.listen
            )));
        }
        let queues = std::fs::read_dir(format!("/sys/class/net/{name}/queues"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                    .count() as u32
            })
            .unwrap_or(1);
        ifaces.push(IfaceInfo {
            name: name.clone(),
            driver: crate::sys::driver(None, name),
            addr: v4.map(|x| x.0),
            prefix_len: v4.map_or(0, |x| x.1),
            queues,
        });
    }
    if cfg.listen.ip().is_unspecified() {
        return Err(usage(format!(
            "--listen {}: give the management address to listen on, not a wildcard (the control connection must stay off the data path)",
            cfg.listen
        )));
    }
    if let Some(a) = cfg.stack_addr {
        if !cfg
            .allow_ifaces
            .iter()
            .any(|i| crate::sys::check_stack_addr(i, a, "--stack-addr").is_ok())
        {
            // the error of the first interface says what is wrong
            crate::sys::check_stack_addr(&cfg.allow_ifaces[0], a, "--stack-addr")?;
        }
    }
    let mut sysctls = std::collections::BTreeMap::new();
    for k in SYSCTLS {
        if let Ok(v) = crate::sys::read_sysctl(k) {
            sysctls.insert(k.to_string(), v);
        }
    }
    // the preflight of the first interface, for the CPU a side of one
    // core takes by default (the last)
    let cpus = crate::sys::cpus();
    let preflight = crate::doctor::check(&crate::doctor::Target {
        netns: None,
        iface: &cfg.allow_ifaces[0],
        cpus: &cpus[cpus.len() - 1..],
        other_cpus: &[],
    });
    Ok(HostInfo {
        preflight: Some(preflight),
        hostname: crate::sys::hostname(),
        kernel: crate::sys::kernel(),
        cpu_model: crate::sys::cpu_model(),
        cpus: crate::sys::cpus(),
        git_revision: crate::sys::git_revision(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        ifaces,
        stack_addr: cfg.stack_addr,
        sysctls,
    })
}

/// Listens and serves controllers, one at a time, until SIGINT/SIGTERM (or
/// after the first with `once`).
pub fn run(cfg: AgentConfig, interrupt: Arc<AtomicBool>) -> Result<()> {
    let host = host_info(&cfg)?;
    let listener =
        TcpListener::bind(cfg.listen).with_context(|| format!("listening on {}", cfg.listen))?;
    listener.set_nonblocking(true)?;
    log(format_args!(
        "listening on {} (protocol {} v{}); interfaces allowed: {}; stack address: {}",
        cfg.listen,
        remote::PROTOCOL,
        remote::PROTOCOL_VERSION,
        cfg.allow_ifaces.join(", "),
        cfg.stack_addr
            .map_or("none (no bypass path)".into(), |a| a.to_string())
    ));
    while !interrupt.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((s, peer)) => {
                s.set_nonblocking(false)?;
                let busy = Busy {
                    listener: &listener,
                    peer,
                };
                if let Err(e) = session(&cfg, &host, s, &busy, &interrupt) {
                    log(format_args!("{e:#}"));
                }
                if cfg.once {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e).context("accepting a control connection"),
        }
    }
    log("stopped");
    Ok(())
}

/// Keepalive on a control connection, so that a host that vanishes
/// without a FIN is noticed within seconds.
pub fn control_socket(s: &TcpStream) -> Result<()> {
    s.set_nodelay(true)?;
    let ka = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(5))
        .with_interval(Duration::from_secs(1))
        .with_retries(3);
    socket2::SockRef::from(s).set_tcp_keepalive(&ka)?;
    Ok(())
}

/// The controller being served, and the listener on which others wait.
struct Busy<'a> {
    listener: &'a TcpListener,
    peer: SocketAddr,
}

impl Busy<'_> {
    /// Refuses, with the reason, every other controller that connected
    /// meanwhile: one controller at a time.
    fn turn_away(&self) {
        while let Ok((mut s, other)) = self.listener.accept() {
            let _ = s.set_nonblocking(false);
            let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
            let reason = format!(
                "busy: this agent serves the controller at {} (one at a time); try again when its run is over",
                self.peer
            );
            let _ = remote::write_frame(&mut s, &remote::Handshake::Refused { reason });
            log(format_args!(
                "turned the controller at {other} away: busy with {}",
                self.peer
            ));
        }
    }
}

/// What the reader thread of a control connection passes on.
type Incoming = Result<Request>;

fn session(
    cfg: &AgentConfig,
    host: &HostInfo,
    mut s: TcpStream,
    busy: &Busy,
    interrupt: &AtomicBool,
) -> Result<()> {
    let peer = busy.peer;
    control_socket(&s)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    remote::agent_handshake(&mut s, &cfg.secret, &peer.to_string())?;
    s.set_read_timeout(None)?;
    log(format_args!("controller {peer} connected"));
    remote::write_frame(
        &mut s,
        &Reply::Hello {
            host: Box::new(host.clone()),
        },
    )?;
    let (tx, rx) = crossbeam_channel::unbounded::<Incoming>();
    let mut rd = s.try_clone()?;
    std::thread::Builder::new()
        .name("agent-ctl".into())
        .spawn(move || loop {
            let m = remote::read_frame_max::<_, Request>(&mut rd, remote::MAX_SESSION_FRAME);
            let end = m.is_err();
            if tx.send(m).is_err() || end {
                break;
            }
        })?;
    loop {
        busy.turn_away();
        let m = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => {
                if interrupt.load(Ordering::Relaxed) {
                    let _ = s.shutdown(std::net::Shutdown::Both);
                    return Ok(());
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        match m {
            Err(e) => {
                log(format_args!("controller {peer} is gone: {e:#}"));
                return Ok(());
            }
            Ok(Request::Bye) => {
                log(format_args!("controller {peer} is done"));
                return Ok(());
            }
            Ok(Request::Abort { .. }) => remote::write_frame(&mut s, &Reply::Aborted)?,
            Ok(Request::Stop) => remote::write_frame(
                &mut s,
                &Reply::Error {
                    message: "nothing runs: Stop without Start".into(),
                },
            )?,
            Ok(Request::Start { spec }) => {
                if !run_side(cfg, host, &spec, &mut s, &rx, interrupt, busy)? {
                    return Ok(());
                }
            }
        }
    }
}

/// Refuses what the agent was not configured to allow.
pub fn check_spec(cfg: &AgentConfig, host: &HostInfo, spec: &SideSpec) -> Result<()> {
    if !cfg.allow_ifaces.contains(&spec.iface) {
        return Err(anyhow!(
            "interface {} is not allowed on this agent (it allows: {}; see its --allow-iface)",
            spec.iface,
            cfg.allow_ifaces.join(", ")
        ));
    }
    if spec.bypass && cfg.stack_addr.is_none() {
        return Err(anyhow!(
            "the bypass path needs an address for the stack: start the agent with --stack-addr"
        ));
    }
    if let Some(c) = spec.cpus.iter().find(|c| !host.cpus.contains(c)) {
        return Err(anyhow!(
            "CPU {c} is not available on this host (it has {:?})",
            host.cpus
        ));
    }
    Ok(())
}

/// A side that runs.
enum Side {
    Server(Server),
    Client(Clients),
}

fn start_side(
    cfg: &AgentConfig,
    host: &HostInfo,
    spec: &SideSpec,
    window: Window,
    stop: Arc<AtomicBool>,
) -> Result<(Side, Option<crate::bypass::AttachInfo>)> {
    check_spec(cfg, host, spec)?;
    let iface = host
        .ifaces
        .iter()
        .find(|i| i.name == spec.iface)
        .expect("checked: an allowed interface");
    let kernel_addr = iface.addr.ok_or_else(|| {
        anyhow!(
            "{} has no IPv4 address: give it the data address",
            iface.name
        )
    })?;
    let stack = match (spec.bypass, cfg.stack_addr) {
        (true, Some(a)) => Some((
            a,
            crate::sys::check_stack_addr(&spec.iface, a, "--stack-addr")?,
        )),
        _ => None,
    };
    let place = Placement {
        netns: None,
        iface: spec.iface.clone(),
        kernel_addr: Some(IpAddr::V4(kernel_addr)),
        stack,
        aliases: None,
        cpus: spec.cpus.clone(),
        // frames from another host carry their checksums
        trust_checksums: false,
    };
    let opts = BypassOptions {
        xdp_mode: spec.xdp_mode.mode(),
        xsk_bind: spec.xsk_bind.mode(),
        force: spec.force,
        busy_poll: spec.busy_poll,
        max_connections: spec.max_connections,
    };
    let engine = if spec.bypass {
        Engine::Bypass
    } else {
        Engine::Kernel(spec.kernel)
    };
    Ok(match spec.role {
        Role::Server => {
            let services = Services::for_workload(spec.load.workload);
            let (s, a) = side::start_server(
                engine,
                &spec.load.messages,
                services,
                &place,
                &opts,
                window,
                None,
            )?;
            (Side::Server(s), a)
        }
        Role::Client => {
            let server = IpAddr::V4(spec.server);
            let (c, a) = side::start_clients(
                engine,
                &spec.load,
                server,
                spec.multi_shard,
                &place,
                &opts,
                window,
                stop,
            )?;
            (Side::Client(c), a)
        }
    })
}

/// Runs one side to its end. Returns false when the session is over (the
/// controller is gone, or this agent was interrupted).
#[allow(clippy::too_many_arguments)]
fn run_side(
    cfg: &AgentConfig,
    host: &HostInfo,
    spec: &SideSpec,
    s: &mut TcpStream,
    rx: &Receiver<Incoming>,
    interrupt: &AtomicBool,
    busy: &Busy,
) -> Result<bool> {
    let peer = busy.peer;
    let ms = Duration::from_millis;
    let window = Window::new(ms(spec.settle_ms), ms(spec.warmup_ms), ms(spec.duration_ms));
    let stop = Arc::new(AtomicBool::new(false));
    let what = format!(
        "{} side of {} over the {} path on {}",
        spec.role.name(),
        spec.load.workload,
        if spec.bypass { "bypass" } else { "kernel" },
        spec.iface
    );
    let (side, attach) = match start_side(cfg, host, spec, window, stop.clone()) {
        Ok(x) => x,
        Err(e) => {
            log(format_args!("cannot start the {what}: {e:#}"));
            remote::write_frame(
                s,
                &Reply::Error {
                    message: format!("cannot start the {what}: {e:#}"),
                },
            )?;
            return Ok(true);
        }
    };
    log(format_args!("started the {what}"));
    remote::write_frame(s, &Reply::Started { attach })?;
    let mut sampler = None;
    let mut sample: Option<SideSample> = None;
    let mut end = None;
    loop {
        let now = Instant::now();
        if sampler.is_none() && sample.is_none() && now >= window.t0 {
            sampler = Some(Sampler::begin(&spec.cpus, None)?);
        }
        if now >= window.t_end && sample.is_none() {
            sample = Some(match sampler.take() {
                Some(sm) => sm.end()?,
                None => SideSample::default(),
            });
            end = Some(window.t_end);
            if spec.role == Role::Client {
                break;
            }
        }
        let abort = |why: &str| {
            log(format_args!("ending the {what}: {why}"));
            stop.store(true, Ordering::Relaxed);
        };
        busy.turn_away();
        match rx.recv_timeout(ms(20)) {
            Ok(Ok(Request::Stop)) if spec.role == Role::Server => {
                if sample.is_none() {
                    // stopped before the window's end: what was measured
                    sample = Some(match sampler.take() {
                        Some(sm) => sm.end()?,
                        None => SideSample::default(),
                    });
                    end = Some(Instant::now().max(window.t0));
                }
                break;
            }
            Ok(Ok(Request::Abort { reason })) => {
                abort(&format!("the controller aborts ({reason})"));
                drop(side);
                remote::write_frame(s, &Reply::Aborted)?;
                return Ok(true);
            }
            Ok(Ok(Request::Bye)) | Ok(Err(_)) | Err(RecvTimeoutError::Disconnected) => {
                abort(&format!("controller {peer} is gone"));
                drop(side);
                return Ok(false);
            }
            Ok(Ok(other)) => remote::write_frame(
                s,
                &Reply::Error {
                    message: format!("a side runs: {other:?} is not expected now"),
                },
            )?,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if interrupt.load(Ordering::Relaxed) {
            abort("the agent was interrupted");
            drop(side);
            let _ = remote::write_frame(
                s,
                &Reply::Error {
                    message: format!("agent on {} was interrupted", host.hostname),
                },
            );
            return Ok(false);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let report = match side {
        Side::Client(c) => c.join().and_then(|r| SideReport::of(&r)),
        Side::Server(srv) => srv.stop().and_then(|r| SideReport::of(&r)),
    };
    let mut report = match report {
        Ok(r) => r,
        Err(e) => {
            log(format_args!("the {what} failed: {e:#}"));
            remote::write_frame(
                s,
                &Reply::Error {
                    message: format!("the {what} failed: {e:#}"),
                },
            )?;
            return Ok(true);
        }
    };
    let end = end.unwrap_or(window.t_end);
    report.sample = sample.unwrap_or_default();
    report.measured_us = end.saturating_duration_since(window.t0).as_micros() as u64;
    report.completed = end >= window.t_end;
    log(format_args!("the {what} is done; reporting"));
    remote::write_frame(
        s,
        &Reply::Report {
            report: Box::new(report),
        },
    )?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Proto, Workload};

    fn spec(iface: &str, bypass: bool, cpus: Vec<usize>) -> SideSpec {
        SideSpec {
            role: Role::Server,
            kernel: Default::default(),
            load: crate::workload::WorkloadSpec {
                workload: Workload::Rr,
                messages: crate::workload::Messages {
                    proto: Proto::Raw,
                    sizes: Workload::Rr.default_sizes(),
                    port: 7100,
                },
                connections: 1,
                rate: None,
                udp_timeout: Duration::from_millis(200),
                hold: 0,
            },
            bypass,
            multi_shard: false,
            cpus,
            settle_ms: 0,
            warmup_ms: 0,
            duration_ms: 100,
            iface: iface.into(),
            server: Ipv4Addr::new(198, 18, 0, 1),
            xdp_mode: crate::datapath::XdpModeArg::Auto,
            xsk_bind: Default::default(),
            force: false,
            busy_poll: false,
            max_connections: 1024,
        }
    }

    #[test]
    fn an_agent_refuses_what_it_was_not_allowed() {
        let cfg = AgentConfig {
            listen: "198.19.0.1:7000".parse().unwrap(),
            secret: Secret::new(b"0123456789abcdef", "a test").unwrap(),
            allow_ifaces: vec!["eth1".into()],
            stack_addr: None,
            once: false,
        };
        let host = HostInfo {
            cpus: vec![0, 1],
            ..Default::default()
        };
        check_spec(&cfg, &host, &spec("eth1", false, vec![1])).unwrap();
        let e = check_spec(&cfg, &host, &spec("eth0", false, vec![1])).unwrap_err();
        assert!(e.to_string().contains("eth0 is not allowed"), "{e}");
        let e = check_spec(&cfg, &host, &spec("eth1", true, vec![1])).unwrap_err();
        assert!(e.to_string().contains("--stack-addr"), "{e}");
        let e = check_spec(&cfg, &host, &spec("eth1", false, vec![3])).unwrap_err();
        assert!(e.to_string().contains("CPU 3"), "{e}");
    }
}
