//! The command line: clap's types for every command and flag, and their
//! validation into the options the rest of the harness takes (typed paths,
//! XDP mode, CPU placement, sizes checked against the workloads). Nothing
//! here runs anything.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::curve::SweepParam;
use crate::datapath::{PathItem, PathSet, ServePath, XdpModeArg};
use crate::error::usage;
use crate::run::{Hardware, RunOptions};
use crate::workload::{self, Proto, Sizes, Workload};
use crate::{controller, side, sys};

#[derive(Parser)]
#[command(
    name = "bypass",
    version,
    about = "Kernel-bypass benchmark harness: the same workloads over the kernel socket path and over AF_XDP, side by side",
    after_help = "Exit status: 0 done and valid, 1 the run failed or its result is not trustworthy (flags say why), 2 usage or environment error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Run workloads (default: all five) and write a result directory.
    Run(Box<RunArgs>),
    /// Serve the workloads (server side alone) until SIGINT/SIGTERM, then print counters.
    Serve(ServeArgs),
    /// Wait for a controller (`bypass run --server/--client`) on the
    /// management network and run the sides it asks for.
    Agent(AgentArgs),
    /// Build, inspect or remove the lab (network namespaces joined by a veth pair).
    Lab {
        #[command(subcommand)]
        cmd: LabCmd,
    },
    /// Ratios, figure by figure, of two result files (B/A).
    Compare {
        a: PathBuf,
        b: PathBuf,
        /// Print the comparison as JSON.
        #[arg(long)]
        json: bool,
    },
    /// (Re)build the human report of a result directory (summary.md, SVG plots) and print it.
    Report { dir: PathBuf },
    /// A preflight of this host: driver, XDP and AF_XDP features, queues,
    /// IRQ placement, CPU frequency and SMT, offloads, MTU and sysctls, as a
    /// checklist with the fix of each warning (nothing is changed).
    Doctor(DoctorArgs),
}

#[derive(Args)]
pub struct DoctorArgs {
    /// The interface to check (repeat for several; default: every
    /// interface of the namespace but loopback).
    #[arg(long = "iface", value_name = "IF")]
    pub ifaces: Vec<String>,
    /// The network namespace the interfaces are in (default: this one).
    #[arg(long, value_name = "NS")]
    pub netns: Option<String>,
    #[command(flatten)]
    pub place: PlacementArgs,
    /// Print the checks as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum LabCmd {
    /// Build a lab that stays up until `bypass lab down`.
    Up {
        #[arg(long, default_value_t = 1)]
        queues: u32,
        /// A lab of hosts for runs across agents instead: a namespace for
        /// the server and for each of N clients, data and management
        /// networks on two bridges, the controller's place on the latter.
        #[arg(long, value_name = "N")]
        clients: Option<usize>,
        /// The veths compute every checksum (TX checksum offload off, and
        /// with it TSO), so that a `serve --path bypass --lab` verifies
        /// every TCP and UDP checksum instead of trusting the peer's
        /// partial ones (as `run --verify-checksums`).
        #[arg(long, conflicts_with = "clients")]
        verify_checksums: bool,
        /// Both veth ends' MTU (default 1500); above 3498 the bypass path
        /// takes frames in several buffers (multi-buffer AF_XDP).
        #[arg(long, conflicts_with = "clients", value_parser = mtu_arg)]
        mtu: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// Remove the labs nobody uses and the leftovers of killed runs (by
    /// exact name); a lab in use (a process inside it, or its run alive) is
    /// kept unless named or `--all` is given.
    Down {
        /// The lab to remove, in use or not: its id or one of its
        /// namespaces (`bypass lab status` lists them).
        #[arg(value_name = "LAB", conflicts_with = "all")]
        name: Option<String>,
        /// Every lab, in use or not (the processes inside lose their network).
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show the lab: namespaces, interfaces, addresses, queues.
    Status {
        #[arg(long)]
        json: bool,
    },
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (examples: 3, 2.5, 500ms, 1m)"))?;
    let secs = v * scale;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!(
            "`{s}`: a duration must be a positive number of seconds"
        ));
    }
    if secs > 24.0 * 3600.0 {
        return Err(format!("`{s}`: durations over 24 hours are not supported"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `--sweep PARAM=V1,V2,...`: what a sweep varies, and its steps.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepArg {
    pub param: SweepParam,
    pub values: Vec<f64>,
}

pub fn parse_sweep(s: &str) -> Result<SweepArg, String> {
    let (p, vals) = s.split_once('=').ok_or_else(|| {
        format!("`{s}`: a sweep is PARAM=V1,V2,... with PARAM rate, cores or size (example: rate=1000,5000,20000)")
    })?;
    let param = match p.trim() {
        "rate" => SweepParam::Rate,
        "cores" => SweepParam::Cores,
        "size" => SweepParam::Size,
        other => {
            return Err(format!(
                "`{other}` cannot be swept: use rate, cores or size"
            ))
        }
    };
    let mut values = Vec::new();
    for v in vals.split(',') {
        let x = match param {
            SweepParam::Rate => parse_rate(v)?,
            SweepParam::Size => workload::parse_sizes(v)?.req as f64,
            SweepParam::Cores => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|c| *c >= 1)
                .ok_or_else(|| format!("`{v}` is not a number of cores (1 or more)"))?
                as f64,
        };
        if values.contains(&x) {
            return Err(format!("`{v}` is in the sweep twice"));
        }
        values.push(x);
    }
    if values.len() < 2 {
        return Err(format!("`{s}`: a sweep needs two steps or more"));
    }
    values.sort_by(f64::total_cmp);
    Ok(SweepArg { param, values })
}

/// A count between 1 and `max` (a negative or zero one named with its range).
pub fn parse_count(s: &str, name: &str, max: usize) -> Result<usize, String> {
    match s.trim().parse::<i64>() {
        Ok(v) if v >= 1 && v as u64 <= max as u64 => Ok(v as usize),
        Ok(_) => Err(format!("`{s}`: {name} must be between 1 and {max}")),
        Err(_) => Err(format!("`{s}` is not a number: {name} takes 1 to {max}")),
    }
}

pub fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a rate in operations per second (example: 50000)"))?;
    if !v.is_finite() || v <= 0.0 || v > 1e9 {
        return Err(format!(
            "`{s}`: the rate must be between 1 and 1e9 operations per second"
        ));
    }
    Ok(v)
}

#[derive(Args)]
pub struct RunArgs {
    /// Workloads: crr, rr, stream, udp-rr, udp-stream (default: all).
    pub workloads: Vec<String>,
    /// The paths to run, comma-separated: paths by name (kernel,
    /// bypass-server, bypass-client, bypass-both) or groups (bypass: the
    /// three bypass arrangements; both: the kernel and those three).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "both")]
    pub path: Vec<PathItem>,
    /// Rounds: each round runs every path of a workload once, in an order
    /// that rotates from round to round; ratios are paired by round, with a
    /// 95% confidence interval from 3 rounds on (5 or more for a useful one).
    #[arg(long, allow_negative_numbers = true, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rounds: u32,
    /// Measured seconds per workload, path and round (3, 2.5, 500ms). The
    /// default keeps the whole suite (five workloads, four paths) within 3
    /// minutes.
    #[arg(long, allow_negative_numbers = true, default_value = "5", value_parser = parse_duration)]
    pub duration: Duration,
    /// Seconds of load before measuring.
    #[arg(long, allow_negative_numbers = true, default_value = "1", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Concurrent connections (default: 8 for crr, 1 otherwise).
    #[arg(long, allow_negative_numbers = true, value_parser = |s: &str| parse_count(s, "--connections", 100_000))]
    pub connections: Option<usize>,
    /// Message sizes REQ[:RESP] in bytes (default: 64:64; stream 65536).
    #[arg(long, value_parser = workload::parse_sizes)]
    pub size: Option<Sizes>,
    /// A sweep: one multi-round run per step of PARAM (rate, cores or
    /// size), e.g. `rate=2000,5000,10000,20000`: latency against offered
    /// load, throughput against cores, figures against message size, and
    /// with --slo-p99 the highest rate each path sustains within it.
    #[arg(long, value_name = "PARAM=V1,V2,...", value_parser = parse_sweep)]
    pub sweep: Option<SweepArg>,
    /// A sweep's latency objective: the p99 (µs) a path must stay under.
    #[arg(long, allow_negative_numbers = true, value_name = "US", requires = "sweep", value_parser = parse_rate)]
    pub slo_p99: Option<f64>,
    /// Open loop at this many operations/s (latency corrected for coordinated omission).
    /// udp-stream: datagrams/s (default 100000).
    #[arg(long, allow_negative_numbers = true, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// rr/crr on the wire: fixed-size messages or minimal HTTP/1.1 (echo
    /// and discard are `serve`'s only).
    #[arg(long, value_enum, default_value = "raw")]
    pub proto: Proto,
    #[command(flatten)]
    pub placement: PlacementArgs,
    /// Base port: request/response on PORT, sinks on PORT+1.
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(u16).range(1..=65534), default_value_t = 7100)]
    pub port: u16,
    /// Queues of the lab's veth (default: one per server core, so that each
    /// bypass shard has its own).
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub queues: Option<u32>,
    /// Across hosts: the agent (`bypass agent`) that runs the server side,
    /// as HOST[:PORT] (port 7000 by default).
    #[arg(long, value_name = "AGENT", requires = "client", conflicts_with_all = ["iface", "queues"])]
    pub server: Option<controller::AgentSpec>,
    /// Across hosts: an agent that runs a client side (repeat for several
    /// load generators; --connections and --rate are split among them).
    #[arg(long, value_name = "AGENT", requires = "server")]
    pub client: Vec<controller::AgentSpec>,
    /// Across hosts: the shared secret's file (else $BYPASS_SECRET).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Across hosts: start each agent through the system's ssh client
    /// (AGENT as [USER@]HOST[:PORT],iface=IF[,stack-addr=A]), pass it the
    /// secret on stdin, and stop it afterwards.
    #[arg(long, requires = "server")]
    pub ssh: bool,
    /// With --ssh: the bypass binary on the remote hosts.
    #[arg(long, default_value = "bypass", requires = "ssh")]
    pub ssh_binary: String,
    /// With --ssh: the ssh client to run.
    #[arg(long, default_value = "ssh", requires = "ssh")]
    pub ssh_program: String,
    /// Real hardware: the interface to use instead of the lab.
    #[arg(long, requires_all = ["addr", "peer"])]
    pub iface: Option<String>,
    /// Real hardware: this machine's address on --iface.
    #[arg(long, requires = "iface")]
    pub addr: Option<IpAddr>,
    /// Real hardware: the address of the machine running `bypass serve`.
    #[arg(long, requires = "iface")]
    pub peer: Option<IpAddr>,
    #[command(flatten)]
    pub bypass: BypassArgs,
    /// Where result directories go.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Name of the result directory (after the UTC time).
    #[arg(long, default_value = "run")]
    pub name: String,
    /// Print the result document alone on stdout.
    #[arg(long)]
    pub json: bool,
    /// The lab's veths compute every checksum (TX checksum offload off,
    /// and with it TSO), so that the stack verifies every TCP and UDP
    /// checksum instead of trusting the peer's partial ones; the kernel
    /// path then computes them in software too.
    #[arg(long, conflicts_with_all = ["iface", "server"])]
    pub verify_checksums: bool,
    /// The lab's MTU, both veth ends (default 1500; jumbo: 9000): the
    /// kernel path and the bypass path run at it alike, and above 3498
    /// the bypass path takes frames in several buffers (multi-buffer
    /// AF_XDP, kernel 6.6+). On hardware the interface's own MTU holds.
    #[arg(long, value_parser = mtu_arg, conflicts_with_all = ["iface", "server"])]
    pub mtu: Option<u32>,
    /// A SYN flood of RATE SYNs/s during each measurement, from the client
    /// namespace (on the client's CPU), spoofed from unused hosts of the
    /// lab's subnet: what the server keeps of its rate under attack.
    #[arg(long, value_name = "RATE", allow_negative_numbers = true,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000),
          conflicts_with_all = ["iface", "server"])]
    pub syn_flood: Option<u64>,
    /// What the flood is: SYNs to the measured server's port, or the
    /// control (the same frames as IP protocol 253, dropped on sight: the
    /// flood's load without the attack).
    #[arg(long, value_enum, default_value = "server", requires = "syn_flood")]
    pub syn_flood_at: crate::flood::FloodTarget,
    /// crr, rr: the stack's client opens N more connections during the
    /// warm-up and holds them idle through the measurement, from the lab
    /// client's aliases (198.18.0.200-231, 64 K ports each): the server is
    /// measured holding them (`client.held`; a shortfall flags the run
    /// `hold_short`). Paths with the stack's client only (bypass-client,
    /// bypass-both); a bypass server's table gets room for them on top of
    /// --max-connections. Give the warm-up time to open them (tens of
    /// thousands a second in the lab).
    #[arg(long, value_name = "N", allow_negative_numbers = true,
          value_parser = |s: &str| parse_count(s, "--hold", 2_000_000),
          conflicts_with_all = ["iface", "server"])]
    pub hold: Option<usize>,
}

#[derive(Args)]
pub struct AgentArgs {
    /// The management address and port to wait on (never the data path's).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: String,
    /// A data interface this agent may use (repeat for several); it touches
    /// no other.
    #[arg(long = "allow-iface", value_name = "IF", required = true)]
    pub allow_iface: Vec<String>,
    /// The bypass path's address for the stack on the data interface: an
    /// unused address of its subnet (without it, the kernel path only).
    #[arg(long, value_name = "A")]
    pub stack_addr: Option<std::net::Ipv4Addr>,
    /// The shared secret's file (else $BYPASS_SECRET, else --secret-stdin).
    #[arg(long, value_name = "FILE", conflicts_with = "secret_stdin")]
    pub secret_file: Option<PathBuf>,
    /// Read the shared secret from the first line of standard input.
    #[arg(long)]
    pub secret_stdin: bool,
    /// Serve one controller, then exit.
    #[arg(long)]
    pub once: bool,
}

#[derive(Args, Clone)]
pub struct PlacementArgs {
    /// Server threads (and client threads), one per core.
    #[arg(long, allow_negative_numbers = true, value_parser = |s: &str| parse_count(s, "--cores", 1024))]
    pub cores: Option<usize>,
    /// CPUs of the server threads (e.g. 1 or 2-3); overrides --cores for the server.
    #[arg(long, value_parser = sys::parse_cpu_list)]
    pub server_cpus: Option<sys::CpuList>,
    /// CPUs of the client (load generator) threads.
    #[arg(long, value_parser = sys::parse_cpu_list)]
    pub client_cpus: Option<sys::CpuList>,
}

impl PlacementArgs {
    /// (server CPUs, client CPUs). By default they are disjoint: the server
    /// takes the last `cores` CPUs, the client the first ones.
    pub fn resolve(&self) -> Result<(Vec<usize>, Vec<usize>)> {
        let avail = sys::cpus();
        let cores = self.cores.unwrap_or(1);
        if cores == 0 || cores > avail.len() {
            return Err(usage(format!(
                "--cores {cores}: use 1..={} (the CPUs this process may use)",
                avail.len()
            )));
        }
        let server = match &self.server_cpus {
            Some(l) => {
                sys::check_cpus(&l.0, "--server-cpus")?;
                l.0.clone()
            }
            None => avail[avail.len() - cores..].to_vec(),
        };
        let client = match &self.client_cpus {
            Some(l) => {
                sys::check_cpus(&l.0, "--client-cpus")?;
                l.0.clone()
            }
            None => {
                let free: Vec<usize> = avail
                    .iter()
                    .copied()
                    .filter(|c| !server.contains(c))
                    .collect();
                if free.is_empty() {
                    // one CPU only: share it (the result records the placement)
                    server.clone()
                } else {
                    free.into_iter().take(cores).collect()
                }
            }
        };
        Ok((server, client))
    }
}

/// How the bypass path attaches and polls (`run` and `serve`).
#[derive(Args)]
pub struct BypassArgs {
    /// XDP attach mode of the bypass path.
    #[arg(long, value_enum, default_value = "auto")]
    pub xdp_mode: XdpModeArg,
    /// How its AF_XDP sockets bind: `zero-copy` fails the start where the
    /// driver cannot (veth never can), `auto` falls back to copy mode
    /// (the result's `zero_copy` says which took).
    #[arg(long, value_enum, default_value = "auto")]
    pub xsk_bind: crate::datapath::XskBindArg,
    /// Replace an XDP program already on the interface.
    #[arg(long)]
    pub force: bool,
    /// Bypass servers spin on their rings instead of sleeping in poll(2)
    /// when idle: the lowest latency, a whole core per shard.
    #[arg(long)]
    pub busy_poll: bool,
    /// Connections a bypass server shard holds at most (its socket table;
    /// more SYNs are dropped and counted as `stack.tcp.table_full`). The
    /// table is allocated at the start: about 1 KiB per connection (see
    /// the README), checked against the memory available.
    #[arg(long, value_name = "N", allow_negative_numbers = true,
          value_parser = clap::value_parser!(u32).range(64..=16_777_216), default_value_t = 16384)]
    pub max_connections: u32,
}

impl BypassArgs {
    pub fn options(&self) -> side::BypassOptions {
        side::BypassOptions {
            xdp_mode: self.xdp_mode.mode(),
            xsk_bind: self.xsk_bind.mode(),
            force: self.force,
            busy_poll: self.busy_poll,
            max_connections: self.max_connections as usize,
        }
    }
}

#[derive(Args)]
pub struct ServeArgs {
    /// Path of the server: the kernel's sockets, or the userspace stack over AF_XDP.
    #[arg(long, value_enum, default_value = "kernel")]
    pub path: ServePath,
    /// What TCP and UDP PORT answer: raw rr/crr and the udp-rr echo of
    /// `bypass run`'s clients, HTTP/1.1 (wrk, curl), or the standard echo
    /// (RFC 862: every byte back, every datagram whole; sockperf, nc) and
    /// discard (RFC 863) services.
    #[arg(long, value_enum, default_value = "raw")]
    pub proto: Proto,
    /// Base port: request/response (TCP) and echo (UDP) on PORT, sinks on PORT+1.
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(u16).range(1..=65534), default_value_t = 7100)]
    pub port: u16,
    /// Raw: request:response sizes; HTTP: the body size is RESP.
    #[arg(long, value_parser = workload::parse_sizes, default_value = "64")]
    pub size: Sizes,
    #[command(flatten)]
    pub placement: PlacementArgs,
    /// Serve inside the server namespace of the lab made by `bypass lab up`.
    #[arg(long, conflicts_with_all = ["iface", "addr"])]
    pub lab: bool,
    /// Interface to serve on (checks that --addr is on it).
    #[arg(long)]
    pub iface: Option<String>,
    /// Address to bind (default: all addresses; with --lab the lab's server address).
    #[arg(long)]
    pub addr: Option<IpAddr>,
    /// Stop by itself after this long (default: until SIGINT/SIGTERM).
    #[arg(long, allow_negative_numbers = true, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Close a TCP connection whose peer has sent nothing for this long
    /// (counted as `idle_timeouts`; default: never), as a web server's
    /// keep-alive timeout: idle clients cannot hold the table forever.
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Print the counters at exit as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub bypass: BypassArgs,
}

/// The options of a run from its arguments, sizes checked.
pub fn run_options(
    a: &RunArgs,
    workloads: Vec<Workload>,
    (server_cpus, client_cpus): (Vec<usize>, Vec<usize>),
    queues: u32,
    hardware: Option<Hardware>,
) -> Result<RunOptions> {
    let opts = RunOptions {
        workloads,
        path: PathSet::of(&a.path),
        rounds: a.rounds,
        duration: a.duration,
        warmup: a.warmup,
        connections: a.connections,
        sizes: a.size,
        rate: a.rate,
        proto: a.proto,
        server_cpus,
        client_cpus,
        port: a.port,
        queues,
        hardware,
        out: a.out.clone(),
        name: a.name.clone(),
        json: a.json,
        xdp_mode: a.bypass.xdp_mode,
        xsk_bind: a.bypass.xsk_bind,
        force: a.bypass.force,
        busy_poll: a.bypass.busy_poll,
        max_connections: a.bypass.max_connections as usize,
        verify_checksums: a.verify_checksums,
        mtu: a.mtu,
        syn_flood: a.syn_flood.map(|rate| crate::flood::SynFlood {
            rate,
            at: a.syn_flood_at,
        }),
        hold: a.hold.unwrap_or(0),
    };
    if opts.hold > 0 {
        if let Some(w) = opts
            .workloads
            .iter()
            .find(|w| !matches!(w, Workload::Crr | Workload::Rr))
        {
            return Err(usage(format!(
                "--hold keeps idle connections beside crr or rr, not {}: name those workloads (`bypass run crr --hold N`)",
                w.name()
            )));
        }
        if let Some(p) = opts.path.paths().iter().find(|p| !p.client_bypass()) {
            return Err(usage(format!(
                "--hold: the held connections come from the stack's client, which path {} does not use: --path bypass-client,bypass-both",
                p.name()
            )));
        }
    }
    if a.proto.serve_only() {
        return Err(usage(format!(
            "--proto {} is a service of `bypass serve` for other tools' clients (sockperf, nc); a run's rr and crr speak raw or http",
            a.proto
        )));
    }
    for w in &opts.workloads {
        opts.sizes_for(*w).validate_for(*w).map_err(usage)?;
    }
    Ok(opts)
}

/// `--mtu`: a number in [`crate::lab::MTU_RANGE`].
fn mtu_arg(s: &str) -> std::result::Result<u32, String> {
    let r = crate::lab::MTU_RANGE;
    match s.parse::<u32>() {
        Ok(m) if r.contains(&m) => Ok(m),
        _ => Err(format!(
            "`{s}` is not an MTU this lab takes: give a number of bytes from {} to {} (1500 is Ethernet's, 9000 jumbo)",
            r.start(),
            r.end()
        )),
    }
}
