//! `bypass run`: runs each (workload, path), measures it, and writes the
//! result files.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::datapath::{DataPath, PathChoice, XdpModeArg};
use crate::error::usage;
use crate::kernel::server::Services;
use crate::lab::Lab;
use crate::metrics::{self, Recorder, Window};
use crate::metrics::{Sampler, SideSample};
use crate::orchestrate;
use crate::outcome::{ClientReport, ServerReport};
use crate::result::{self, Cpu, Flag, Interval, Latency, ResultDoc, Run, ThreadCpu};
use crate::side::{self, BypassOptions, Engine, Messages, Placement, WorkloadSpec};
use crate::workload::{Proto, Sizes, Workload};

/// Everything `bypass run` was asked, after validation.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub workloads: Vec<Workload>,
    pub path: PathChoice,
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
    pub force: bool,
    /// Bypass servers spin instead of sleeping when idle.
    pub busy_poll: bool,
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
        put("path", format!("{:?}", self.path).to_lowercase());
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
        put("force", self.force.to_string());
        put("busy_poll", self.busy_poll.to_string());
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
    if opts.path == PathChoice::Bypass && opts.hardware.is_some() {
        return Err(usage(
            "the bypass path runs in the lab only for now (its server side on real hardware comes with `bypass serve --path bypass`): drop --iface, or use --path kernel",
        ));
    }
    // the lab, unless on hardware; dropped (removed) when this function returns
    let lab = match &opts.hardware {
        None => Some(Lab::create(opts.queues, false)?),
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
        }
        _ => {}
    }

    // on hardware the bypass path is not there yet: `both` runs the kernel path
    let choice = if opts.hardware.is_some() {
        if opts.path == PathChoice::Both && !opts.json {
            eprintln!(
                "note: on real hardware the bypass path is not in yet; running the kernel path"
            );
        }
        PathChoice::Kernel
    } else {
        opts.path
    };
    let plan = orchestrate::plan(&opts.workloads, choice);
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
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
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
    fn run_one(
        &mut self,
        w: Workload,
        path: DataPath,
        index: usize,
        _total: usize,
    ) -> Result<orchestrate::Step> {
        self.bar.set_message(format!("{w} over the {path} path"));
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
    let sizes = opts.sizes_for(w);
    let connections = opts.connections_for(w);
    let rate = opts.rate_for(w);
    let window = Window::new(Duration::from_millis(300), opts.warmup, opts.duration);
    let messages = Messages {
        proto: opts.proto,
        sizes,
        port: opts.port,
    };
    let bypass_opts = BypassOptions {
        xdp_mode: opts.xdp_mode.mode(),
        force: opts.force,
        busy_poll: opts.busy_poll,
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
        cpus: opts.server_cpus.clone(),
        trust_checksums: true,
    };
    let mut attach = None;
    let server = if target.local_server {
        let (s, a) = side::start_server(
            Engine::of(path.server_bypass()),
            &messages,
            Services::for_workload(w),
            &server_place,
            &bypass_opts,
            window,
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
        cpus: opts.client_cpus.clone(),
        trust_checksums: true,
    };
    let (clients, client_attach) = side::start_clients(
        Engine::of(path.client_bypass()),
        &WorkloadSpec {
            workload: w,
            messages,
            connections,
            rate,
            udp_timeout: Duration::from_millis(200),
        },
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
    let run = finish(
        opts,
        w,
        path,
        &rec,
        measured,
        !completed,
        &client_report,
        server_report.as_ref(),
        (
            target.local_server.then_some(&server_sample),
            &client_sample,
        ),
        disjoint,
    );
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

/// The recorder of the side that measures this workload, merged over threads.
pub(crate) fn measuring_recorder(
    w: Workload,
    c: &ClientReport,
    s: Option<&ServerReport>,
    measured: Duration,
    window: Window,
) -> Recorder {
    let mut rec = Recorder::new(window);
    if let (true, Some(s)) = (w.measured_at_server(), s) {
        for t in &s.threads {
            rec.merge(&t.recorder);
        }
    } else {
        // request/response is timed at the client; a stream to a remote
        // server (hardware mode) is counted at the sender
        for t in &c.threads {
            rec.merge(&t.recorder);
        }
    }
    rec.fit_to(measured);
    rec
}

/// Above this share of steal time on the CPUs under test, a run is flagged
/// `cpu_stolen`: on a shared VM the hypervisor's pauses then weigh on the
/// CPU costs and the latency tail.
const STOLEN_PCT: f64 = 5.0;

/// The run entry of one (workload, path) from both sides' reports and
/// samples: figures, CPU cost, counters and flags. `server` is None when
/// the server side is out of reach (`bypass serve` on another machine);
/// `disjoint`: the sides ran on CPUs of their own (or hosts of their own).
#[allow(clippy::too_many_arguments)]
pub fn finish(
    opts: &RunOptions,
    w: Workload,
    path: DataPath,
    rec: &Recorder,
    measured: Duration,
    interrupted: bool,
    client_report: &ClientReport,
    server_report: Option<&ServerReport>,
    samples: (Option<&SideSample>, &SideSample),
    disjoint: bool,
) -> Run {
    let (server_sample, client_sample) = samples;
    let (c, s) = (client_report, server_report);
    let local_server = server_sample.is_some();
    let server_cpus = server_sample.map(|s| s.cpus).unwrap_or_default();
    let client_cpus = client_sample.cpus;
    let secs = measured.as_secs_f64();
    let sizes = opts.sizes_for(w);
    // intervals; for the stream, an operation is one message of --size bytes
    let mut intervals = Vec::new();
    let mut cum_bytes = 0u64;
    for (i, iv) in rec.intervals.iter().enumerate() {
        let t_s = i as f64 * metrics::INTERVAL.as_secs_f64();
        let dur_s = (secs - t_s).clamp(0.0, metrics::INTERVAL.as_secs_f64());
        let ops = if w == Workload::Stream {
            let before = cum_bytes / sizes.req as u64;
            cum_bytes += iv.bytes;
            cum_bytes / sizes.req as u64 - before
        } else {
            iv.ops
        };
        let lat =
            |q: f64| (!iv.hist.is_empty()).then(|| iv.hist.value_at_quantile(q) as f64 / 1000.0);
        intervals.push(Interval {
            t_s,
            dur_s,
            ops,
            ops_per_s: if dur_s > 0.0 { ops as f64 / dur_s } else { 0.0 },
            bits_per_s: if dur_s > 0.0 {
                iv.bytes as f64 * 8.0 / dur_s
            } else {
                0.0
            },
            errors: iv.errors,
            p50_us: lat(0.5),
            p99_us: lat(0.99),
            max_us: (!iv.hist.is_empty()).then(|| iv.hist.max() as f64 / 1000.0),
        });
    }
    let ops: u64 = intervals.iter().map(|i| i.ops).sum();
    let bytes = rec.total_bytes();
    let full: Vec<f64> = intervals
        .iter()
        .filter(|i| i.dur_s >= 0.999 * metrics::INTERVAL.as_secs_f64())
        .map(|i| i.ops_per_s)
        .collect();
    let steadiness = metrics::steadiness(&full);

    // CPU
    let jiffy = metrics::jiffy().as_secs_f64() * 1e6;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mut threads = Vec::new();
    let mut server_thread_us = 0.0;
    if let Some(s) = s {
        for t in &s.threads {
            server_thread_us += us(t.cpu.total());
            threads.push(ThreadCpu {
                role: "server".into(),
                cpu: t.cpu_id,
                user_us: us(t.cpu.user),
                sys_us: us(t.cpu.sys),
                ops: t.counters.requests + t.counters.udp_in,
                bytes: t.counters.bytes_in,
            });
        }
    }
    let mut client_thread_us = 0.0;
    for t in &c.threads {
        client_thread_us += us(t.cpu.total());
        threads.push(ThreadCpu {
            role: "client".into(),
            cpu: t.cpu_id,
            user_us: us(t.cpu.user),
            sys_us: us(t.cpu.sys),
            ops: t.recorder.total_ops(),
            bytes: t.recorder.total_bytes(),
        });
    }
    let server_softirq_us = server_cpus.softirq as f64 * jiffy;
    let client_softirq_us = client_cpus.softirq as f64 * jiffy;
    let per_op = |x: f64| (ops > 0).then(|| x / ops as f64);
    let util = |x: f64, n: usize| (secs > 0.0).then(|| 100.0 * x / (secs * 1e6 * n.max(1) as f64));
    let client_busy_pct = if client_cpus.total() > 0 {
        100.0 * client_cpus.busy() as f64 / client_cpus.total() as f64
    } else {
        0.0
    };
    // What a side cost: its threads' own CPU time (exact: getrusage scales
    // to the scheduler's run time), which holds the softirq work done inside
    // their system calls (on veth, a `sendto` runs the peer's receive), plus,
    // when the side has CPUs of its own, the run time of those CPUs' softirq
    // threads (ksoftirqd, exact from schedstat). Not /proc/stat: its busy and
    // softirq times are sampled by the tick, which misses a thread that wakes
    // for a few µs at a time, and its softirq time would count again what the
    // threads' time already holds (this kernel has no IRQ time accounting).
    let (server_ksoftirqd_us, client_ksoftirqd_us, accounting) = if disjoint {
        (
            server_sample.map_or(0.0, |s| s.ksoftirqd_us as f64),
            client_sample.ksoftirqd_us as f64,
            "threads+ksoftirqd",
        )
    } else {
        (0.0, 0.0, "threads")
    };
    let server_total = server_thread_us + server_ksoftirqd_us;
    let client_total = client_thread_us + client_ksoftirqd_us;
    let mut cpu = Cpu {
        accounting: accounting.into(),
        server_us_per_op: local_server.then(|| per_op(server_total)).flatten(),
        client_us_per_op: per_op(client_total),
        server_util_pct: local_server
            .then(|| util(server_total, opts.server_cpus.len()))
            .flatten(),
        client_util_pct: util(client_total, opts.client_cpus.len()),
        server_work_us_per_op: None,
        server_ns_per_byte: (local_server && w.measured_at_server() && bytes > 0)
            .then(|| server_total * 1000.0 / bytes as f64),
        server_thread_us: local_server.then_some(server_thread_us),
        server_softirq_us: local_server.then_some(server_softirq_us),
        server_ksoftirqd_us: local_server.then_some(server_ksoftirqd_us),
        client_ksoftirqd_us,
        client_thread_us,
        client_softirq_us,
        client_cpus_busy_pct: client_busy_pct,
        server_steal_pct: server_sample.and_then(|_| server_cpus.steal_pct()),
        client_steal_pct: client_cpus.steal_pct(),
        server_cpus: opts.server_cpus.clone(),
        client_cpus: opts.client_cpus.clone(),
        threads,
    };

    // counters
    let mut counters: BTreeMap<String, u64> = BTreeMap::new();
    if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(&c.counters) {
        for (k, v) in m {
            counters.insert(format!("client.{k}"), v.as_u64().unwrap_or(0));
        }
    }
    if let Some(s) = s {
        if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(&s.counters) {
            for (k, v) in m {
                counters.insert(format!("server.{k}"), v.as_u64().unwrap_or(0));
            }
        }
    }
    for t in &c.threads {
        for (k, v) in &t.extra {
            *counters.entry(format!("client.{k}")).or_insert(0) += v;
        }
    }
    let mut work_us = None;
    if let Some(s) = s {
        for t in &s.threads {
            for (k, v) in &t.extra {
                *counters.entry(format!("server.{k}")).or_insert(0) += v;
                if k == "work_us" {
                    *work_us.get_or_insert(0u64) += v;
                }
            }
        }
    }
    cpu.server_work_us_per_op = work_us.and_then(|w| per_op(w as f64));
    let verify_errors = s.map_or(0, |s| s.counters.stream_verify_errors);
    let bad_requests = s.map_or(0, |s| s.counters.bad_requests);
    let errors = rec_errors(w, c) + verify_errors + bad_requests + c.counters.protocol_errors;

    // loss
    let loss_pct = match w {
        Workload::UdpStream => {
            let received = s.map_or(0, |s| s.counters.udp_measured_in);
            let sent = c.counters.sent_measured;
            (local_server && sent > 0)
                .then(|| 100.0 * sent.saturating_sub(received) as f64 / sent as f64)
        }
        Workload::UdpRr => (c.counters.sent > 0)
            .then(|| 100.0 * c.counters.udp_timeouts as f64 / c.counters.sent as f64),
        _ => None,
    };

    // flags
    let mut flags = Vec::new();
    let mut flag = |f: Flag| flags.push(f.name().to_string());
    if interrupted {
        flag(Flag::Interrupted);
    }
    if errors > 0 {
        flag(Flag::Errors);
    }
    if verify_errors > 0 {
        flag(Flag::PayloadMismatch);
    }
    if ops == 0 {
        flag(Flag::NoOps);
    }
    if loss_pct.is_some_and(|l| l > 0.0) {
        flag(Flag::Loss);
    }
    let rate = opts.rate_for(w);
    let short_of_rate = rate.is_some_and(|r| {
        let achieved = if w == Workload::UdpStream {
            c.counters.sent_measured as f64 / secs.max(1e-9)
        } else {
            ops as f64 / secs.max(1e-9)
        };
        secs > 0.0 && achieved < 0.95 * r
    });
    // a busy-polling generator (the bypass client) keeps its CPU busy by
    // construction: only falling short of its rate says it was saturated
    let busy_polls = path.client_bypass();
    if (client_busy_pct >= 95.0 && !busy_polls) || short_of_rate || c.counters.ports_exhausted > 0 {
        flag(Flag::GeneratorSaturated);
    }
    if full.len() >= 3 && steadiness.cv > 0.25 {
        flag(Flag::Unsteady);
    }
    if [cpu.server_steal_pct, cpu.client_steal_pct]
        .iter()
        .flatten()
        .any(|&p| p > STOLEN_PCT)
    {
        flag(Flag::CpuStolen);
    }
    let latency_us = if w.has_latency() {
        Latency::from_hist(&rec.hist)
    } else {
        None
    };
    let mut run = Run {
        workload: w,
        path,
        proto: if matches!(w, Workload::Rr | Workload::Crr) {
            opts.proto.to_string()
        } else {
            "raw".into()
        },
        params: BTreeMap::new(),
        duration_s: secs,
        ops,
        ops_per_s: if secs > 0.0 { ops as f64 / secs } else { 0.0 },
        bits_per_s: if secs > 0.0 {
            bytes as f64 * 8.0 / secs
        } else {
            0.0
        },
        bytes,
        latency_us,
        cpu,
        errors,
        loss_pct,
        flags,
        steadiness,
        counters,
        intervals,
        hlog: None,
    };
    let connections = opts.connections_for(w);
    run.params
        .insert("size".into(), format!("{}:{}", sizes.req, sizes.resp));
    run.params
        .insert("connections".into(), connections.to_string());
    run.params.insert(
        "rate".into(),
        rate.map_or("closed loop".into(), |r| r.to_string()),
    );
    for (k, v) in server_sample.map(|s| &s.counters).into_iter().flatten() {
        run.counters.insert(format!("server.kernel.{k}"), *v);
    }
    for (k, v) in &client_sample.counters {
        run.counters.insert(format!("client.kernel.{k}"), *v);
    }
    if w == Workload::Stream {
        // the kernel side's count: the sender's when the client is the
        // kernel's (the bypass server's segments never reach its
        // namespace's counters), else the receiver's; with the stack on
        // both ends, the frames steered to the server's stack (all of them
        // the client's segments) and the client stack's retransmissions
        let get = |k: &str| run.counters.get(k).copied().unwrap_or(0);
        let (segs, retrans) = if path == DataPath::BypassBoth {
            (
                get("server.xdp.steered"),
                get("client.stack.tcp.retransmits"),
            )
        } else {
            let segs = match get("client.kernel.Tcp.OutSegs") {
                0 => get("server.kernel.Tcp.InSegs"),
                n => n,
            };
            let retrans = match get("client.kernel.Tcp.RetransSegs") {
                0 => get("client.stack.tcp.retransmits"),
                n => n,
            };
            (segs, retrans)
        };
        run.counters.insert("segments".into(), segs);
        run.counters.insert("retransmits".into(), retrans);
    }
    run
}

fn rec_errors(_w: Workload, c: &ClientReport) -> u64 {
    c.threads.iter().map(|t| t.recorder.errors()).sum()
}
