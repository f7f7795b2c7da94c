//! `bypass run`: runs each (workload, path), measures it, and writes the
//! result files.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

use crate::datapath::{DataPath, PathSet, XdpModeArg};
use crate::error::usage;
use crate::kernel::server::Services;
use crate::lab::Lab;
use crate::measurement::{measuring_recorder, Measurement, RunSpec};
use crate::metrics::{Sampler, Window};
use crate::orchestrate;
use crate::result::{self, ResultDoc, Run};
use crate::side::{self, BypassOptions, Engine, Placement};
use crate::workload::{Messages, Proto, Sizes, Workload, WorkloadSpec};

/// Everything `bypass run` was asked, after validation.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub workloads: Vec<Workload>,
    pub path: PathSet,
    /// Rounds of every path per workload.
    pub rounds: u32,
    pub duration: Duration,
    pub warmup: Duration,
    /// None: each workload's default.
    pub connections: Option<usize>,
    pub sizes: Option<Sizes>,
    pub rate: Option<f64>,
    pub proto: Proto,
    pub server_cpus: Vec<usize>,
    pub client_cpus: Vec<usize>,
    pub port: u16,
    pub queues: u32,
    pub hardware: Option<Hardware>,
    pub out: PathBuf,
    pub name: String,
    pub json: bool,
    pub xdp_mode: XdpModeArg,
    pub xsk_bind: crate::datapath::XskBindArg,
    pub force: bool,
    /// Bypass servers spin instead of sleeping when idle.
    pub busy_poll: bool,
    pub max_connections: usize,
    /// The lab's veths compute every checksum; the stack verifies them.
    pub verify_checksums: bool,
    /// The lab's MTU (`--mtu`; none: the default).
    pub mtu: Option<u32>,
    /// A SYN flood during each measurement (the lab only).
    pub syn_flood: Option<crate::flood::SynFlood>,
    /// Idle connections the stack's client holds open through each
    /// measurement, from the lab client's aliases (0: none).
    pub hold: usize,
}

/// Real hardware instead of the lab: this machine is the client, the server
/// (`bypass serve`) runs at `peer`.
#[derive(Clone, Debug)]
pub struct Hardware {
    pub iface: String,
    pub addr: IpAddr,
    pub peer: IpAddr,
}

/// Where the two sides of a run live.
struct Target {
    server_addr: IpAddr,
    /// The server side's interface (the bypass path attaches there).
    server_iface: String,
    /// The client side's interface (the bypass client attaches there).
    client_iface: String,
    server_ns: Option<String>,
    client_ns: Option<String>,
    client_bind: Option<IpAddr>,
    /// The server runs here (lab) or elsewhere (hardware: `bypass serve` at the peer).
    local_server: bool,
}

impl RunOptions {
    pub fn connections_for(&self, w: Workload) -> usize {
        self.connections.unwrap_or(match w {
            Workload::Crr => 8,
            _ => 1,
        })
    }

    pub fn sizes_for(&self, w: Workload) -> Sizes {
        match (self.sizes, w) {
            // a stream has no answer; a udp-stream datagram neither
            (Some(s), Workload::Stream | Workload::UdpStream) => Sizes {
                req: s.req,
                resp: 0,
            },
            (Some(s), _) => s,
            (None, _) => w.default_sizes(),
        }
    }

    pub fn rate_for(&self, w: Workload) -> Option<f64> {
        match w {
            Workload::Stream => None,
            // a datagram flood always has a rate: without one the sender
            // measures only how fast the receiver drops
            Workload::UdpStream => Some(self.rate.unwrap_or(100_000.0)),
            _ => self.rate,
        }
    }

    /// What a run of `w` over `path` is asked, with these options.
    pub fn spec(&self, w: Workload, path: DataPath) -> RunSpec {
        RunSpec {
            load: WorkloadSpec {
                workload: w,
                messages: Messages {
                    proto: self.proto,
                    sizes: self.sizes_for(w),
                    port: self.port,
                },
                connections: self.connections_for(w),
                rate: self.rate_for(w),
                udp_timeout: Duration::from_millis(200),
                hold: self.hold,
            },
            path,
            server_cpus: self.server_cpus.clone(),
            client_cpus: self.client_cpus.clone(),
        }
    }

    /// Every effective option, for the result's `config`.
    pub fn config(&self) -> BTreeMap<String, String> {
        let mut c = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            c.insert(k.to_string(), v);
        };
        put(
            "workloads",
            self.workloads
                .iter()
                .map(|w| w.name())
                .collect::<Vec<_>>()
                .join(","),
        );
        put("path", self.path.names());
        put("rounds", self.rounds.to_string());
        put("ci_method", crate::stats::METHOD.to_string());
        put("duration_s", format!("{}", self.duration.as_secs_f64()));
        put("warmup_s", format!("{}", self.warmup.as_secs_f64()));
        put("proto", self.proto.to_string());
        put(
            "connections",
            self.connections
                .map_or("per workload".into(), |c| c.to_string()),
        );
        put(
            "size",
            self.sizes
                .map_or("per workload".into(), |s| format!("{}:{}", s.req, s.resp)),
        );
        put(
            "rate",
            self.rate.map_or("closed loop".into(), |r| r.to_string()),
        );
        put("server_cpus", format!("{:?}", self.server_cpus));
        put("client_cpus", format!("{:?}", self.client_cpus));
        put("port", self.port.to_string());
        put("queues", self.queues.to_string());
        put("xdp_mode", self.xdp_mode.name().to_string());
        put("xsk_bind", self.xsk_bind.name().to_string());
        put("force", self.force.to_string());
        put("busy_poll", self.busy_poll.to_string());
        put("max_connections", self.max_connections.to_string());
        put("verify_checksums", self.verify_checksums.to_string());
        if let Some(m) = self.mtu {
            put("mtu", m.to_string());
        }
        put("hold", self.hold.to_string());
        if let Some(f) = &self.syn_flood {
            put(
                "syn_flood",
                format!("{} SYN/s at {:?}", f.rate, f.at).to_lowercase(),
            );
        }
        put("name", self.name.clone());
        put("out", self.out.display().to_string());
        match &self.hardware {
            Some(h) => {
                put("mode", "hardware".into());
                put("iface", h.iface.clone());
                put("addr", h.addr.to_string());
                put("peer", h.peer.to_string());
            }
            None => put("mode", "lab".into()),
        }
        c
    }
}

/// Runs everything and writes the result directory. Returns the document and
/// the directory.
pub fn run(opts: &RunOptions, interrupt: Arc<AtomicBool>) -> Result<(ResultDoc, PathBuf)> {
    let started = chrono::Utc::now();
    if opts.hardware.is_some() && !opts.path.paths().iter().any(|p| p.is_kernel()) {
        return Err(usage(
            "the bypass path runs in the lab only for now (its server side on real hardware comes with `bypass serve --path bypass`): drop --iface, or use --path kernel",
        ));
    }
    if opts.hold > 0 {
        // a kernel server (bypass-client) needs a descriptor per connection
        let want = (opts.hold + 65536) as u64;
        let got = crate::sys::raise_open_files(want);
        let need = (opts.hold + 1024) as u64;
        if got < need && opts.path.paths().iter().any(|p| !p.server_bypass()) {
            tracing::warn!(
                "--hold {}: this process may open {got} files (its hard limit, or fs.nr_open): a kernel server cannot hold them all; raise `ulimit -n`",
                opts.hold
            );
        }
    }
    // the lab, unless on hardware; dropped (removed) when this function returns
    let lab = match &opts.hardware {
        None => {
            let mut lab = Lab::create(opts.queues, false)?;
            if opts.verify_checksums {
                lab.full_checksums()?;
            }
            if let Some(m) = opts.mtu {
                lab.set_mtu(m)?;
            }
            Some(lab)
        }
        Some(_) => None,
    };
    let target = match (&lab, &opts.hardware) {
        (Some(lab), _) => Target {
            server_addr: IpAddr::V4(lab.info.server.addr),
            server_iface: lab.info.server.iface.clone(),
            client_iface: lab.info.client.iface.clone(),
            server_ns: Some(lab.info.server.netns.clone()),
            client_ns: Some(lab.info.client.netns.clone()),
            client_bind: None,
            local_server: true,
        },
        (None, Some(h)) => Target {
            server_addr: h.peer,
            server_iface: h.iface.clone(),
            client_iface: h.iface.clone(),
            server_ns: None,
            client_ns: None,
            client_bind: Some(h.addr),
            local_server: false,
        },
        (None, None) => unreachable!("either a lab or hardware"),
    };
    let mut env = result::Env {
        kernel: crate::sys::kernel(),
        cpu_model: crate::sys::cpu_model(),
        cores: crate::sys::cpus().len(),
        git_revision: crate::sys::git_revision(),
        hostname: crate::sys::hostname(),
        queues: opts.queues,
        ..Default::default()
    };
    match (&lab, &opts.hardware) {
        (Some(lab), _) => {
            env.mode = "lab".into();
            env.interface = lab.info.server.iface.clone();
            env.driver = crate::sys::driver(Some(&lab.info.server.netns), &lab.info.server.iface);
            env.mtu =
                crate::bypass::iface_mtu(Some(&lab.info.server.netns), &lab.info.server.iface)
                    .ok()
                    .and_then(|m| u32::try_from(m).ok());
            for (ns, k, _) in &lab.info.sysctls {
                // read back what the kernel holds
                let v = crate::lab::get_sysctl(ns, k).unwrap_or_default();
                env.sysctls.insert(format!("{ns}:{k}"), v);
            }
            env.lab = Some(serde_json::to_value(&lab.info)?);
        }
        (None, Some(h)) => {
            env.mode = "hardware".into();
            env.interface = h.iface.clone();
            env.driver = crate::sys::driver(None, &h.iface);
            env.mtu = crate::bypass::iface_mtu(None, &h.iface)
                .ok()
                .and_then(|m| u32::try_from(m).ok());
        }
        _ => {}
    }
    // the server's interface in a lab; on hardware this host's, which
    // serves the client
    let (cpus, others) = match &lab {
        Some(_) => (&opts.server_cpus[..], &opts.client_cpus[..]),
        None => (&opts.client_cpus[..], &[][..]),
    };
    env.preflight = Some(crate::doctor::check(&crate::doctor::Target {
        netns: target.server_ns.as_deref(),
        iface: &env.interface,
        cpus,
        other_cpus: others,
    }));

    // on hardware the bypass path is not there yet: `both` runs the kernel path
    let paths = if opts.hardware.is_some() {
        let kernels: Vec<DataPath> = opts
            .path
            .paths()
            .iter()
            .copied()
            .filter(|p| p.is_kernel())
            .collect();
        if kernels.len() < opts.path.paths().len() && !opts.json {
            eprintln!(
                "note: on real hardware the bypass path is not in yet; running the kernel paths"
            );
        }
        PathSet::of_paths(&kernels)
    } else {
        opts.path.clone()
    };
    let plan = orchestrate::plan(&opts.workloads, &paths, opts.rounds);
    // what the CPUs under test can do now, before the first measurement
    env.calibration = match crate::calibrate::calibrate(opts.server_cpus[0], opts.client_cpus[0]) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!("calibration: {e:#}");
            None
        }
    };
    let per = opts.duration + opts.warmup;
    let bar = if opts.json {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new((per.as_secs_f64() * plan.len() as f64 * 10.0) as u64);
        b.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
                .expect("static template"),
        );
        b
    };
    let dir = result::result_dir(&opts.out, &started, &opts.name);
    result::check_out(&opts.out)?;
    let mut runner = Local {
        opts,
        target: &target,
        interrupt: &interrupt,
        bar: &bar,
    };
    let outcome = orchestrate::each_run(&plan, &dir, &opts.name, &interrupt, &mut runner)?;
    bar.finish_and_clear();
    if let Some(a) = &outcome.attach {
        env.xdp_mode = Some(a.xdp_mode.clone());
        env.zero_copy = Some(a.zero_copy);
    }
    if let Some(lab) = lab {
        // remove now, so the result's end time includes the cleanup
        drop(lab);
    }
    let doc = orchestrate::document(&opts.name, started, opts.config(), env, outcome);
    orchestrate::write_doc(&dir, &doc)?;
    Ok((doc, dir))
}

/// The local runner: both sides on this machine (the lab), or the client
/// here and `bypass serve` on the peer (hardware).
struct Local<'a> {
    opts: &'a RunOptions,
    target: &'a Target,
    interrupt: &'a Arc<AtomicBool>,
    bar: &'a ProgressBar,
}

impl orchestrate::Runner for Local<'_> {
    fn run_one(&mut self, p: orchestrate::Planned, index: usize) -> Result<orchestrate::Step> {
        let (w, path) = (p.workload, p.path);
        let round = if self.opts.rounds > 1 {
            format!(", round {}/{}", p.round + 1, self.opts.rounds)
        } else {
            String::new()
        };
        self.bar
            .set_message(format!("{w} over the {path} path{round}"));
        let per = self.opts.duration + self.opts.warmup;
        let base = (per.as_secs_f64() * index as f64 * 10.0) as u64;
        let m = run_one(
            self.opts,
            w,
            path,
            self.target,
            self.interrupt,
            self.bar,
            base,
        )?;
        Ok(orchestrate::Step::Done(Box::new(m)))
    }
}

#[allow(clippy::too_many_arguments)]
fn run_one(
    opts: &RunOptions,
    w: Workload,
    path: DataPath,
    target: &Target,
    interrupt: &Arc<AtomicBool>,
    bar: &ProgressBar,
    bar_base: u64,
) -> Result<orchestrate::Measured> {
    let spec = opts.spec(w, path);
    let window = Window::new(Duration::from_millis(300), opts.warmup, opts.duration);
    let bypass_opts = BypassOptions {
        xdp_mode: opts.xdp_mode.mode(),
        xsk_bind: opts.xsk_bind.mode(),
        force: opts.force,
        busy_poll: opts.busy_poll,
        // room for the held connections on top of the measured load's
        max_connections: opts.max_connections + opts.hold,
    };
    let server_addr = if path.server_bypass() {
        IpAddr::V4(crate::lab::STACK_ADDR)
    } else {
        target.server_addr
    };
    let server_place = Placement {
        netns: target.server_ns.clone(),
        iface: target.server_iface.clone(),
        kernel_addr: Some(target.server_addr),
        stack: Some((crate::lab::STACK_ADDR, crate::lab::PREFIX_LEN)),
        aliases: None,
        cpus: opts.server_cpus.clone(),
        trust_checksums: !opts.verify_checksums,
    };
    let mut attach = None;
    let server = if target.local_server {
        let (s, a) = side::start_server(
            Engine::server_of(path),
            &spec.load.messages,
            Services::for_workload(w),
            &server_place,
            &bypass_opts,
            window,
            None,
        )?;
        attach = a;
        Some(s)
    } else {
        None
    };
    let stop_clients = Arc::new(AtomicBool::new(false));
    let client_place = Placement {
        netns: target.client_ns.clone(),
        iface: target.client_iface.clone(),
        kernel_addr: target.client_bind,
        stack: Some((crate::lab::STACK_CLIENT_ADDR, crate::lab::PREFIX_LEN)),
        aliases: (opts.hold > 0).then_some(crate::lab::STACK_CLIENT_ALIASES),
        cpus: opts.client_cpus.clone(),
        trust_checksums: !opts.verify_checksums,
    };
    let (clients, client_attach) = side::start_clients(
        Engine::client_of(path),
        &spec.load,
        server_addr,
        path.server_bypass(),
        &client_place,
        &bypass_opts,
        window,
        stop_clients.clone(),
    )?;
    // with both ends on the bypass path, the result's attach is the
    // server's (the client's is the same program on the other veth)
    attach = attach.or(client_attach);
    let flood = match &opts.syn_flood {
        Some(f) => {
            let IpAddr::V4(dst) = server_addr else {
                return Err(crate::error::usage("--syn-flood needs an IPv4 server"));
            };
            let limit =
                window.t_end.saturating_duration_since(Instant::now()) + Duration::from_secs(5);
            Some(crate::flood::Flood::start(
                f.rate,
                f.at,
                dst,
                spec.load.messages.port,
                target.client_ns.clone(),
                opts.client_cpus.first().copied(),
                limit,
            )?)
        }
        None => None,
    };

    // sample the machine at the window's edges
    let sleep_until = |t: Instant| -> bool {
        while Instant::now() < t {
            if interrupt.load(Ordering::Relaxed) {
                return false;
            }
            let left = t - Instant::now();
            std::thread::sleep(left.min(Duration::from_millis(50)));
            let into = Instant::now().saturating_duration_since(window.start);
            bar.set_position(bar_base + (into.as_secs_f64() * 10.0) as u64);
        }
        true
    };
    let mut completed = sleep_until(window.t0);
    let t0_wall = SystemTime::now();
    let server_sampler = Sampler::begin(&opts.server_cpus, target.server_ns.as_deref())?;
    let client_sampler = Sampler::begin(&opts.client_cpus, target.client_ns.as_deref())?;
    if completed {
        completed = sleep_until(window.t_end);
    }
    let end = Instant::now().min(window.t_end).max(window.t0);
    let server_sample = server_sampler.end()?;
    let client_sample = client_sampler.end()?;
    stop_clients.store(true, Ordering::Relaxed);
    let flooded = flood.map(|f| f.stop()).transpose()?;
    let client_report = clients.join()?;
    // let what is in flight arrive before the server stops counting
    std::thread::sleep(Duration::from_millis(100));
    let server_report = server.map(|s| s.stop()).transpose()?;

    let measured = end.saturating_duration_since(window.t0);
    let rec = measuring_recorder(w, &client_report, server_report.as_ref(), measured, window);
    let disjoint = opts
        .server_cpus
        .iter()
        .all(|c| !opts.client_cpus.contains(c));
    let mut run = Run::from(&Measurement {
        spec,
        rec: &rec,
        measured,
        interrupted: !completed,
        client: &client_report,
        server: server_report.as_ref(),
        server_sample: target.local_server.then_some(&server_sample),
        client_sample: &client_sample,
        disjoint,
    });
    if let Some(f) = flooded {
        run.counters.insert("flood.syns_sent".into(), f.sent);
        run.counters
            .insert("flood.send_errors".into(), f.send_errors);
        run.counters.insert(
            "flood.syns_per_s".into(),
            (f.sent as f64 / f.secs.max(1e-9)) as u64,
        );
    }
    // the interval histograms, for the hlog
    let hists = if w.has_latency() {
        rec.intervals.iter().map(|i| i.hist.clone()).collect()
    } else {
        Vec::new()
    };
    Ok(orchestrate::Measured {
        run,
        hists,
        t0_wall,
        attach,
    })
}
