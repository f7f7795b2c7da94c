//! `bypass run --server AGENT --client AGENT...`: a run across hosts. The
//! controller drives its agents (`bypass agent`) through each (workload,
//! path) in lockstep: the server side starts, then every client side; the
//! clients report when their window ends, then the server is stopped and
//! reports. The reports merge into one run entry per (workload, path):
//! histograms add exactly, counters sum, CPU time adds up per side.
//!
//! A failure anywhere (an agent that errs, goes silent or vanishes, or an
//! interrupt) aborts every side that runs, and the result says which host
//! failed, when, and why.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context, Result};
use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::datapath::DataPath;
use crate::error::usage;
use crate::measurement::{measuring_recorder, Measurement};
use crate::metrics::SideSample;
use crate::metrics::Window;
use crate::orchestrate;
use crate::outcome::{ClientReport, ServerReport};
use crate::remote::{self, HostInfo, Reply, Request, Role, Secret, SideSpec};
use crate::result::{self, Failure, HostEnv, ResultDoc};
use crate::run::RunOptions;
use crate::workload::Workload;

/// The port an agent listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 7000;

/// An agent as named on the command line: `[USER@]HOST[:PORT]`, and for an
/// agent that `--ssh` starts, `,iface=IF` (its data interface) and
/// `,stack-addr=A` (the stack's address on it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentSpec {
    pub user: Option<String>,
    pub host: String,
    pub port: u16,
    pub iface: Option<String>,
    pub stack_addr: Option<std::net::Ipv4Addr>,
}

impl AgentSpec {
    /// `host:port`, as messages name the agent.
    pub fn name(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl std::str::FromStr for AgentSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<AgentSpec, String> {
        let mut parts = s.split(',');
        let addr = parts.next().unwrap_or_default();
        let (user, hostport) = match addr.split_once('@') {
            Some((u, h)) if !u.is_empty() => (Some(u.to_string()), h),
            Some(_) => return Err(format!("`{s}`: empty user before `@`")),
            None => (None, addr),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("`{s}`: `{p}` is not a port (1-65535)"))?,
            ),
            None => (hostport, DEFAULT_PORT),
        };
        if host.is_empty() {
            return Err(format!(
                "`{s}`: no host (example: 192.0.2.10:7000 or root@host-b,iface=eth1)"
            ));
        }
        let mut spec = AgentSpec {
            user,
            host: host.to_string(),
            port,
            iface: None,
            stack_addr: None,
        };
        for opt in parts {
            match opt.split_once('=') {
                Some(("iface", v)) if !v.is_empty() => spec.iface = Some(v.to_string()),
                Some(("stack-addr", v)) => {
                    spec.stack_addr =
                        Some(v.parse().map_err(|_| {
                            format!("`{s}`: stack-addr `{v}` is not an IPv4 address")
                        })?)
                }
                _ => {
                    return Err(format!(
                        "`{s}`: unknown option `{opt}` (an agent takes iface=IF and stack-addr=A)"
                    ))
                }
            }
        }
        Ok(spec)
    }
}

/// Starting agents through the system's ssh client.
#[derive(Clone, Debug)]
pub struct Ssh {
    /// The ssh client (`ssh`, or a wrapper that behaves like it).
    pub program: String,
    /// The bypass binary on the remote hosts.
    pub binary: String,
}

/// Everything a run across hosts needs beyond [`RunOptions`].
pub struct RemoteOptions {
    pub server: AgentSpec,
    pub clients: Vec<AgentSpec>,
    pub secret: Secret,
    pub ssh: Option<Ssh>,
    pub cores: Option<usize>,
    pub server_cpus: Option<Vec<usize>>,
    pub client_cpus: Option<Vec<usize>>,
}

/// An agent the controller is connected to.
struct Agent {
    spec: AgentSpec,
    role: Role,
    stream: TcpStream,
    host: HostInfo,
    /// Still reachable: not lost and not failed.
    alive: bool,
    attach: Option<crate::bypass::AttachInfo>,
}

/// Agents started over ssh: stopped when dropped.
struct SshAgents(Vec<(String, Child)>);

impl SshAgents {
    /// How the ssh session of agent `name` ended, if it did.
    fn exited(&mut self, name: &str) -> Option<std::process::ExitStatus> {
        self.0
            .iter_mut()
            .find(|(n, _)| n == name)
            .and_then(|(_, c)| c.try_wait().ok().flatten())
    }
}

impl Drop for SshAgents {
    fn drop(&mut self) {
        for (name, c) in &mut self.0 {
            // an agent started with --once exits after its session
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        tracing::warn!("the ssh session of agent {name} did not end: stopping it");
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                }
            }
        }
    }
}

fn start_over_ssh(ssh: &Ssh, agents: &[&AgentSpec], secret: &Secret) -> Result<SshAgents> {
    use std::io::Write;
    let mut started = SshAgents(Vec::new());
    for a in agents {
        let Some(iface) = &a.iface else {
            return Err(usage(format!(
                "agent {}: say which data interface the agent may use: `{},iface=IF` (and `,stack-addr=A` for the bypass path)",
                a.name(),
                a.name()
            )));
        };
        let target = match &a.user {
            Some(u) => format!("{u}@{}", a.host),
            None => a.host.clone(),
        };
        let mut remote_cmd = vec![
            ssh.binary.clone(),
            "agent".into(),
            "--listen".into(),
            a.name(),
            "--allow-iface".into(),
            iface.clone(),
            "--secret-stdin".into(),
            "--once".into(),
        ];
        if let Some(s) = a.stack_addr {
            remote_cmd.extend(["--stack-addr".into(), s.to_string()]);
        }
        let mut child = Command::new(&ssh.program)
            .args(["-o", "BatchMode=yes", &target])
            .args(&remote_cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting `{}` for agent {}", ssh.program, a.name()))?;
        // the secret goes on stdin, never on a command line
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(secret.bytes())?;
        stdin.write_all(b"\n")?;
        drop(stdin);
        started.0.push((a.name(), child));
    }
    Ok(started)
}

/// Connects (retrying while an agent that ssh starts comes up) and
/// authenticates; returns the stream and the agent's host.
fn connect(
    spec: &AgentSpec,
    secret: &Secret,
    patience: Duration,
    ssh: Option<&mut SshAgents>,
) -> Result<(TcpStream, HostInfo)> {
    let name = spec.name();
    let addr = (spec.host.as_str(), spec.port)
        .to_socket_addrs()
        .with_context(|| format!("resolving agent {name}"))?
        .next()
        .ok_or_else(|| anyhow!("agent {name}: the name resolves to no address"))?;
    let deadline = Instant::now() + patience;
    let mut ssh = ssh;
    let mut s = loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                // an agent that ssh started and that ended will not come
                if let Some(st) = ssh.as_deref_mut().and_then(|a| a.exited(&name)) {
                    return Err(usage(format!(
                        "the agent that ssh started for {name} ended ({st}) before it listened: its message is above"
                    )));
                }
                tracing::debug!("agent {name}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => {
                return Err(usage(format!(
                "cannot reach agent {name}: {e} (is `bypass agent --listen {name}` running there?)"
            )))
            }
        }
    };
    crate::agent::control_socket(&s)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    remote::controller_handshake(&mut s, secret, &name).map_err(|e| usage(format!("{e:#}")))?;
    let host = match remote::read_frame_max::<_, Reply>(&mut s, remote::MAX_SESSION_FRAME)? {
        Reply::Hello { host } => *host,
        other => return Err(anyhow!("agent {name} did not greet: {other:?}")),
    };
    s.set_read_timeout(None)?;
    Ok((s, host))
}

/// Why a step failed: which agent (None: the controller was interrupted).
struct Fail {
    agent: Option<usize>,
    message: String,
    at: chrono::DateTime<chrono::Utc>,
}

fn fail(agent: Option<usize>, message: String) -> Fail {
    Fail {
        agent,
        message,
        at: chrono::Utc::now(),
    }
}

struct Session {
    agents: Vec<Agent>,
    rx: Receiver<(usize, Result<Reply>)>,
    interrupt: Arc<AtomicBool>,
}

impl Session {
    fn send(&mut self, i: usize, r: &Request) -> Result<(), Fail> {
        let a = &mut self.agents[i];
        remote::write_frame(&mut a.stream, r).map_err(|e| {
            a.alive = false;
            fail(Some(i), format!("the control connection broke: {e:#}"))
        })
    }

    /// One reply from each of `who`, in that order, by `deadline`.
    fn wait(&mut self, who: &[usize], deadline: Instant, what: &str) -> Result<Vec<Reply>, Fail> {
        let mut got: Vec<Option<Reply>> = vec![None; who.len()];
        while got.iter().any(Option::is_none) {
            if self.interrupt.load(Ordering::Relaxed) {
                return Err(fail(None, "interrupted (SIGINT/SIGTERM)".into()));
            }
            let now = Instant::now();
            if now >= deadline {
                let k = got
                    .iter()
                    .position(Option::is_none)
                    .expect("one is missing");
                return Err(fail(
                    Some(who[k]),
                    format!(
                        "no answer ({what}) in time: the agent hangs or its host is unreachable"
                    ),
                ));
            }
            let m = match self
                .rx
                .recv_timeout((deadline - now).min(Duration::from_millis(100)))
            {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(fail(None, "every control connection is closed".into()))
                }
            };
            let (i, r) = m;
            match r {
                Err(e) => {
                    self.agents[i].alive = false;
                    return Err(fail(
                        Some(i),
                        format!("the agent was lost: {e:#} (did the agent or its host die?)"),
                    ));
                }
                Ok(Reply::Error { message }) => return Err(fail(Some(i), message)),
                Ok(r) => {
                    if let Some(k) = who.iter().position(|x| *x == i) {
                        if got[k].is_none() {
                            got[k] = Some(r);
                            continue;
                        }
                    }
                    tracing::debug!("agent {i}: unexpected {r:?} while waiting for {what}");
                }
            }
        }
        Ok(got.into_iter().map(|r| r.expect("all there")).collect())
    }

    /// Ends whatever runs on every reachable agent.
    fn abort_all(&mut self, reason: &str) {
        let alive: Vec<usize> = (0..self.agents.len())
            .filter(|i| self.agents[*i].alive)
            .collect();
        let mut asked = Vec::new();
        for i in alive {
            if self
                .send(
                    i,
                    &Request::Abort {
                        reason: reason.to_string(),
                    },
                )
                .is_ok()
            {
                asked.push(i);
            }
        }
        // each answers Aborted once its side is down (XDP detached)
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut left = asked;
        while !left.is_empty() && Instant::now() < deadline {
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok((i, Ok(Reply::Aborted))) | Ok((i, Err(_))) => left.retain(|x| *x != i),
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        for i in left {
            tracing::warn!(
                "agent {} did not confirm the abort",
                self.agents[i].spec.name()
            );
        }
    }

    fn bye(&mut self) {
        for i in 0..self.agents.len() {
            if self.agents[i].alive {
                let _ = self.send(i, &Request::Bye);
            }
        }
    }
}

/// CPUs of one side on its host: explicit, or `cores` of them (a server
/// takes the last ones, a client the first, as on one machine).
fn place(
    host: &HostInfo,
    explicit: Option<&Vec<usize>>,
    cores: usize,
    role: Role,
    name: &str,
) -> Result<Vec<usize>> {
    if let Some(l) = explicit {
        if let Some(c) = l.iter().find(|c| !host.cpus.contains(c)) {
            return Err(usage(format!(
                "CPU {c} is not available on agent {name} ({}: CPUs {:?})",
                host.hostname, host.cpus
            )));
        }
        return Ok(l.clone());
    }
    if cores == 0 || cores > host.cpus.len() {
        return Err(usage(format!(
            "--cores {cores}: agent {name} ({}) has {} CPUs",
            host.hostname,
            host.cpus.len()
        )));
    }
    Ok(match role {
        Role::Server => host.cpus[host.cpus.len() - cores..].to_vec(),
        Role::Client => host.cpus[..cores].to_vec(),
    })
}

/// The data interface an agent uses: the one its spec names, else the
/// first it allows.
fn data_iface(a: &Agent) -> Result<remote::IfaceInfo> {
    let want = a.spec.iface.as_deref();
    a.host
        .ifaces
        .iter()
        .find(|i| want.is_none_or(|w| i.name == w))
        .cloned()
        .ok_or_else(|| {
            usage(format!(
                "agent {} does not allow interface {} (it allows: {})",
                a.spec.name(),
                want.unwrap_or("?"),
                a.host
                    .ifaces
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// Runs everything across the agents and writes the result directory.
pub fn run(
    opts: &RunOptions,
    remote: &RemoteOptions,
    interrupt: Arc<AtomicBool>,
) -> Result<(ResultDoc, PathBuf)> {
    let started = chrono::Utc::now();
    let all: Vec<(&AgentSpec, Role)> = std::iter::once((&remote.server, Role::Server))
        .chain(remote.clients.iter().map(|c| (c, Role::Client)))
        .collect();
    for (k, (a, _)) in all.iter().enumerate() {
        if all[..k].iter().any(|(b, _)| b.name() == a.name()) {
            return Err(usage(format!(
                "agent {} is named twice: each side needs an agent of its own",
                a.name()
            )));
        }
    }
    let mut ssh_agents = match &remote.ssh {
        Some(ssh) => Some(start_over_ssh(
            ssh,
            &all.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
            &remote.secret,
        )?),
        None => {
            if let Some((a, _)) = all.iter().find(|(a, _)| a.user.is_some()) {
                return Err(usage(format!(
                    "agent {}: `user@` is for agents that --ssh starts; add --ssh, or name the running agent as HOST:PORT",
                    a.name()
                )));
            }
            None
        }
    };
    let patience = if remote.ssh.is_some() {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(3)
    };
    let mut agents = Vec::new();
    for (spec, role) in &all {
        let (stream, host) = connect(spec, &remote.secret, patience, ssh_agents.as_mut())?;
        agents.push(Agent {
            spec: (*spec).clone(),
            role: *role,
            stream,
            host,
            alive: true,
            attach: None,
        });
    }
    // placement and interfaces, checked before anything runs
    let cores = remote.cores.unwrap_or(1);
    let server_cpus = place(
        &agents[0].host,
        remote.server_cpus.as_ref(),
        cores,
        Role::Server,
        &agents[0].spec.name(),
    )?;
    let mut client_cpus = Vec::new();
    for a in &agents[1..] {
        client_cpus.push(place(
            &a.host,
            remote.client_cpus.as_ref(),
            cores,
            Role::Client,
            &a.spec.name(),
        )?);
    }
    let ifaces: Vec<remote::IfaceInfo> = agents.iter().map(data_iface).collect::<Result<_>>()?;
    for (a, i) in agents.iter().zip(&ifaces) {
        if i.addr.is_none() {
            return Err(usage(format!(
                "agent {}: interface {} has no IPv4 address",
                a.spec.name(),
                i.name
            )));
        }
    }
    let paths = opts.path.paths();
    let server_bypass = paths.iter().any(|p| p.server_bypass());
    let client_bypass = paths.iter().any(|p| p.client_bypass());
    for (k, a) in agents.iter().enumerate() {
        let needs = if k == 0 { server_bypass } else { client_bypass };
        if needs && a.host.stack_addr.is_none() {
            return Err(usage(format!(
                "agent {} has no address for the stack, which the bypass path needs: start it with --stack-addr A (an unused address of its data subnet), or run --path kernel",
                a.spec.name()
            )));
        }
    }
    // the options as the result records them, with each side's CPUs
    let mut ropts = opts.clone();
    ropts.server_cpus = server_cpus.clone();
    ropts.client_cpus = client_cpus.concat();
    ropts.queues = ifaces[0].queues;

    let (tx, rx) = crossbeam_channel::unbounded();
    for (i, a) in agents.iter().enumerate() {
        let mut rd = a.stream.try_clone()?;
        let tx = tx.clone();
        std::thread::Builder::new()
            .name(format!("ctl-{i}"))
            .spawn(move || loop {
                let m = remote::read_frame_max::<_, Reply>(&mut rd, remote::MAX_SESSION_FRAME);
                let end = m.is_err();
                if tx.send((i, m)).is_err() || end {
                    break;
                }
            })?;
    }
    drop(tx);
    let mut session = Session {
        agents,
        rx,
        interrupt: interrupt.clone(),
    };

    let dir = result::result_dir(&opts.out, &started, &opts.name);
    result::check_out(&opts.out)?;
    let plan = orchestrate::plan(&opts.workloads, &opts.path, opts.rounds);
    let mut runner = Agents {
        session: &mut session,
        opts: &ropts,
        ifaces: &ifaces,
        client_cpus: &client_cpus,
        quiet: opts.json,
    };
    let outcome = orchestrate::each_run(&plan, &dir, &opts.name, &interrupt, &mut runner)?;
    session.bye();
    let mut outcome = outcome;
    outcome.interrupted |= interrupt.load(Ordering::Relaxed);
    let server = &session.agents[0];
    let mut env = result::Env {
        kernel: server.host.kernel.clone(),
        cpu_model: server.host.cpu_model.clone(),
        cores: server.host.cpus.len(),
        mode: "agents".into(),
        interface: ifaces[0].name.clone(),
        driver: ifaces[0].driver.clone(),
        queues: ifaces[0].queues,
        git_revision: crate::sys::git_revision(),
        hostname: server.host.hostname.clone(),
        ..Default::default()
    };
    for a in &session.agents {
        if let (None, Some(at)) = (&env.xdp_mode, &a.attach) {
            env.xdp_mode = Some(at.xdp_mode.clone());
            env.zero_copy = Some(at.zero_copy);
        }
        env.hosts.push(HostEnv {
            role: a.role.name().into(),
            agent: a.spec.name(),
            info: a.host.clone(),
            xdp_mode: a.attach.as_ref().map(|x| x.xdp_mode.clone()),
            zero_copy: a.attach.as_ref().map(|x| x.zero_copy),
        });
    }
    let mut config = ropts.config();
    config.insert("mode".into(), "agents".into());
    config.insert("server".into(), remote.server.name());
    config.insert(
        "clients".into(),
        remote
            .clients
            .iter()
            .map(AgentSpec::name)
            .collect::<Vec<_>>()
            .join(","),
    );
    config.insert("ssh".into(), remote.ssh.is_some().to_string());
    let doc = orchestrate::document(&opts.name, started, config, env, outcome);
    orchestrate::write_doc(&dir, &doc)?;
    Ok((doc, dir))
}

/// The controller's runner: each (workload, path) across the agents; a
/// failure anywhere aborts every side and ends the run.
struct Agents<'a> {
    session: &'a mut Session,
    opts: &'a RunOptions,
    ifaces: &'a [remote::IfaceInfo],
    client_cpus: &'a [Vec<usize>],
    quiet: bool,
}

impl orchestrate::Runner for Agents<'_> {
    fn run_one(&mut self, p: orchestrate::Planned, _index: usize) -> Result<orchestrate::Step> {
        let (w, path) = (p.workload, p.path);
        let session = &mut *self.session;
        if !self.quiet {
            eprintln!(
                "{w} over the {path} path: server {}, clients {}",
                session.agents[0].spec.name(),
                session.agents[1..]
                    .iter()
                    .map(|a| a.spec.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let f = match one(session, self.opts, self.ifaces, self.client_cpus, w, path) {
            Ok(m) => return Ok(orchestrate::Step::Done(Box::new(m))),
            Err(f) => f,
        };
        let reason = match f.agent {
            Some(i) => format!(
                "agent {} ({}) failed: {}",
                session.agents[i].spec.name(),
                session.agents[i].role.name(),
                f.message
            ),
            None => f.message.clone(),
        };
        // an agent that erred is still there and aborts too; a lost one
        // was marked so by `wait`
        session.abort_all(&reason);
        let agent = f.agent.map(|i| &session.agents[i]);
        Ok(orchestrate::Step::Stop(Failure {
            agent: agent.map_or(String::new(), |a| a.spec.name()),
            role: agent.map_or(String::new(), |a| a.role.name().into()),
            hostname: agent.map_or(String::new(), |a| a.host.hostname.clone()),
            at_utc: f.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            workload: Some(w.to_string()),
            path: Some(path.to_string()),
            message: f.message,
        }))
    }
}

/// One (workload, path) across the agents.
fn one(
    s: &mut Session,
    opts: &RunOptions,
    ifaces: &[remote::IfaceInfo],
    client_cpus: &[Vec<usize>],
    w: Workload,
    path: DataPath,
) -> Result<orchestrate::Measured, Fail> {
    let server_bypass = path.server_bypass();
    let client_bypass = path.client_bypass();
    let n = s.agents.len() - 1;
    let server_addr = if server_bypass {
        s.agents[0].host.stack_addr.expect("checked")
    } else {
        ifaces[0].addr.expect("checked")
    };
    let settle = Duration::from_millis(300);
    let load = opts.spec(w, path).load;
    let spec = |role: Role, k: usize| -> SideSpec {
        let (bypass, load, cpus) = match role {
            Role::Server => (server_bypass, load, opts.server_cpus.clone()),
            Role::Client => (client_bypass, load.share(k, n), client_cpus[k].clone()),
        };
        SideSpec {
            role,
            bypass,
            kernel: path.kernel_mode().unwrap_or_default(),
            load,
            multi_shard: server_bypass,
            cpus,
            settle_ms: settle.as_millis() as u64,
            warmup_ms: opts.warmup.as_millis() as u64,
            duration_ms: opts.duration.as_millis() as u64,
            iface: ifaces[if role == Role::Server { 0 } else { k + 1 }]
                .name
                .clone(),
            server: server_addr,
            xdp_mode: opts.xdp_mode,
            xsk_bind: opts.xsk_bind,
            force: opts.force,
            busy_poll: opts.busy_poll && role == Role::Server,
            max_connections: opts.max_connections,
        }
    };
    let clients: Vec<usize> = (1..=n).collect();
    let start_timeout = Duration::from_secs(60);

    // the server first: it serves before any client connects
    s.send(
        0,
        &Request::Start {
            spec: Box::new(spec(Role::Server, 0)),
        },
    )?;
    let server_started = Instant::now();
    // how this run's bypass path attached: the server's, else a client's
    let mut attach = None;
    let r = s.wait(&[0], server_started + start_timeout, "starting the server")?;
    if let Some(Reply::Started { attach: Some(a) }) = r.first() {
        s.agents[0].attach = Some(a.clone());
        attach = Some(a.clone());
    }
    for (k, i) in clients.iter().enumerate() {
        s.send(
            *i,
            &Request::Start {
                spec: Box::new(spec(Role::Client, k)),
            },
        )?;
    }
    let clients_started = Instant::now();
    let t0_wall = SystemTime::now() + settle + opts.warmup;
    let lead = clients_started - server_started;
    let started = s.wait(
        &clients,
        clients_started + start_timeout,
        "starting the clients",
    )?;
    for (i, r) in clients.iter().zip(&started) {
        if let Reply::Started { attach: Some(a) } = r {
            s.agents[*i].attach = Some(a.clone());
            attach.get_or_insert_with(|| a.clone());
        }
    }
    // the clients report when their windows end
    let window_end = clients_started + settle + opts.warmup + opts.duration;
    let reports = s.wait(
        &clients,
        window_end + Duration::from_secs(60),
        "the clients' reports",
    )?;
    // let what is in flight arrive before the server stops counting
    std::thread::sleep(Duration::from_millis(100));
    s.send(0, &Request::Stop)?;
    let server = s.wait(
        &[0],
        Instant::now() + Duration::from_secs(60),
        "the server's report",
    )?;

    // merge
    let bad =
        |i: usize, e: anyhow::Error| fail(Some(i), format!("its report does not decode: {e:#}"));
    let window = Window::new(Duration::ZERO, Duration::ZERO, opts.duration);
    let Some(Reply::Report { report: sr }) = server.into_iter().next() else {
        return Err(fail(Some(0), "answered Stop without a report".into()));
    };
    let server_report: ServerReport = sr.outcome(window).map_err(|e| bad(0, e))?;
    let mut client_report = ClientReport {
        threads: Vec::new(),
        counters: Default::default(),
    };
    let mut client_sample = SideSample::default();
    let mut completed = sr.completed;
    let mut measured_us = if w.measured_at_server() {
        sr.measured_us
    } else {
        0
    };
    let mut per_client = Vec::new();
    for (i, r) in clients.iter().zip(reports) {
        let Reply::Report { report } = r else {
            return Err(fail(Some(*i), "ended its side without a report".into()));
        };
        let cr: ClientReport = report.outcome(window).map_err(|e| bad(*i, e))?;
        per_client.push((
            *i,
            cr.threads
                .iter()
                .map(|t| t.recorder.total_ops())
                .sum::<u64>(),
        ));
        client_report.counters.add(&cr.counters);
        client_report.threads.extend(cr.threads);
        client_sample.add(&report.sample);
        completed &= report.completed;
        if !w.measured_at_server() {
            measured_us = measured_us.max(report.measured_us);
        }
    }
    let measured = Duration::from_micros(measured_us);
    let rec = measuring_recorder(w, &client_report, Some(&server_report), measured, window);
    let mut r = result::Run::from(&Measurement {
        spec: opts.spec(w, path),
        rec: &rec,
        measured,
        interrupted: !completed,
        client: &client_report,
        server: Some(&server_report),
        server_sample: Some(&sr.sample),
        client_sample: &client_sample,
        // each side has a host of its own
        disjoint: true,
    });
    r.params
        .insert("server_agent".into(), s.agents[0].spec.name());
    r.params.insert(
        "server_lead_ms".into(),
        format!("{:.1}", lead.as_secs_f64() * 1e3),
    );
    for (i, ops) in per_client {
        let name = s.agents[i].spec.name();
        r.params.insert(format!("client_agent.{}", i - 1), name);
        r.counters.insert(format!("client.{}.ops", i - 1), ops);
    }
    let hists = if w.has_latency() {
        rec.intervals.iter().map(|i| i.hist.clone()).collect()
    } else {
        Vec::new()
    };
    Ok(orchestrate::Measured {
        run: r,
        hists,
        t0_wall,
        attach,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_names_parse_with_their_defaults_and_options() {
        let a: AgentSpec = "198.19.0.1:7001".parse().unwrap();
        assert_eq!(
            (a.host.as_str(), a.port, a.user),
            ("198.19.0.1", 7001, None)
        );
        let b: AgentSpec = "root@host-b,iface=eth1,stack-addr=198.18.0.10"
            .parse()
            .unwrap();
        assert_eq!(b.user.as_deref(), Some("root"));
        assert_eq!(b.port, DEFAULT_PORT);
        assert_eq!(b.iface.as_deref(), Some("eth1"));
        assert_eq!(b.stack_addr, Some("198.18.0.10".parse().unwrap()));
        for bad in [
            "",
            ":7000",
            "h:0",
            "h:x",
            "@h",
            "h,color=red",
            "h,stack-addr=x",
        ] {
            assert!(bad.parse::<AgentSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sides_get_their_cpus_on_their_own_host() {
        let host = HostInfo {
            cpus: vec![0, 1, 2, 3],
            ..Default::default()
        };
        assert_eq!(
            place(&host, None, 2, Role::Server, "a").unwrap(),
            vec![2, 3]
        );
        assert_eq!(place(&host, None, 1, Role::Client, "a").unwrap(), vec![0]);
        assert_eq!(
            place(&host, Some(&vec![1]), 1, Role::Server, "a").unwrap(),
            vec![1]
        );
        assert!(place(&host, Some(&vec![7]), 1, Role::Server, "a").is_err());
        assert!(place(&host, None, 5, Role::Client, "a").is_err());
    }
}
