//! The result document (`result.json`) and the HdrHistogram interval logs:
//! the types a result file holds, written and read back.
//!
//! A result file alone reproduces and explains its run: every effective
//! option, the machine, and per-interval samples. See `results/FORMAT.md`.

use crate::datapath::DataPath;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::metrics::{Steadiness, INTERVAL};
use crate::stats::Spread;
use crate::workload::Workload;

/// Version of the document's shape; bumped on incompatible change.
pub const SCHEMA: &str = "bypass-result/1";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResultDoc {
    pub schema: String,
    pub name: String,
    pub started_utc: String,
    pub finished_utc: String,
    /// True when the run was stopped by SIGINT/SIGTERM before its end.
    pub interrupted: bool,
    /// Every effective option, as key/value.
    pub config: BTreeMap<String, String>,
    pub env: Env,
    /// How many rounds each (workload, path) was asked to run (older
    /// documents: 1).
    #[serde(default = "one_round")]
    pub rounds: u32,
    pub runs: Vec<Run>,
    /// Each figure of each (workload, path) over its valid rounds.
    #[serde(default)]
    pub spreads: Vec<FigureSpread>,
    /// Each path against each kernel path, figure by figure, paired by round.
    #[serde(default)]
    pub ratios: Vec<Ratio>,
    /// A run across hosts that ended early: which host failed, when, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

/// Why a run across hosts (agents) ended early.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Failure {
    /// The agent (`host:port`) that failed, empty when none did (the
    /// controller was interrupted).
    pub agent: String,
    /// Its role: `server` or `client`.
    pub role: String,
    pub hostname: String,
    pub at_utc: String,
    /// The (workload, path) that was running, if one was.
    pub workload: Option<String>,
    pub path: Option<String>,
    pub message: String,
}

/// One host of a run across hosts: its role, its agent, and what it is.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct HostEnv {
    pub role: String,
    pub agent: String,
    #[serde(flatten)]
    pub info: crate::remote::HostInfo,
    /// How its bypass path attached (null: it ran none).
    pub xdp_mode: Option<String>,
    pub zero_copy: Option<bool>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Env {
    pub kernel: String,
    pub cpu_model: String,
    pub cores: usize,
    /// "lab" (namespaces + veth made for the run) or "hardware".
    pub mode: String,
    pub interface: String,
    pub driver: String,
    /// The interface's MTU as read at the start (both lab veth ends have
    /// it; null in older documents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// XDP attach mode of the bypass path (null: no bypass run).
    pub xdp_mode: Option<String>,
    /// Whether AF_XDP ran zero-copy (null: no bypass run).
    pub zero_copy: Option<bool>,
    pub queues: u32,
    pub git_revision: String,
    pub hostname: String,
    /// Sysctls the run set, "namespace:key" -> value.
    pub sysctls: BTreeMap<String, String>,
    /// The lab's namespaces and addresses (lab mode).
    pub lab: Option<serde_json::Value>,
    /// The calibration of the CPUs under test, taken before the first
    /// measurement (null across hosts, and in older documents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
    /// `bypass doctor`'s checks of the server's interface and CPUs, taken
    /// before the first measurement (null across hosts: each host's is in
    /// `hosts`, and in older documents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight: Option<crate::doctor::Preflight>,
    /// Every host of a run across hosts (mode `agents`), server first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostEnv>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub p9999: f64,
    pub max: f64,
    pub mean: f64,
    pub min: f64,
    /// Samples behind these figures.
    pub count: u64,
}

impl Latency {
    /// Percentiles of a histogram in ns, reported in µs.
    pub fn from_hist(h: &Histogram<u64>) -> Option<Latency> {
        if h.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Some(Latency {
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            p9999: us(h.value_at_quantile(0.9999)),
            max: us(h.max()),
            mean: h.mean() / 1000.0,
            min: us(h.min()),
            count: h.len(),
        })
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Cpu {
    /// How a side's CPU time was taken: "threads+ksoftirqd" (server and
    /// client on CPUs of their own: the side's threads' run time plus that of
    /// its CPUs' ksoftirqd threads) or "threads" (shared CPUs: the threads'
    /// run time alone).
    #[serde(default)]
    pub accounting: String,
    /// The server side's CPU time (see `accounting`) / ops.
    pub server_us_per_op: Option<f64>,
    pub client_us_per_op: Option<f64>,
    /// The same time over the wall time of the CPUs it ran on, in percent.
    pub server_util_pct: Option<f64>,
    pub client_util_pct: Option<f64>,
    /// Streams: server CPU per payload byte received.
    pub server_ns_per_byte: Option<f64>,
    /// The bypass path: time the server's loop spent on work (not on empty
    /// polls) per operation; a polling loop's raw CPU time is all of it.
    #[serde(default)]
    pub server_work_us_per_op: Option<f64>,
    /// Breakdown, in µs over the window.
    pub server_thread_us: Option<f64>,
    /// Softirq ticks of the server's CPUs from /proc/stat (sampled: for
    /// reference, not in the totals).
    pub server_softirq_us: Option<f64>,
    /// Run time of the server CPUs' ksoftirqd threads (in the totals).
    #[serde(default)]
    pub server_ksoftirqd_us: Option<f64>,
    #[serde(default)]
    pub client_ksoftirqd_us: f64,
    pub client_thread_us: f64,
    pub client_softirq_us: f64,
    /// Busy share of the client's CPUs from /proc/stat (all processes,
    /// user+system+irq+softirq): how close the generator was to saturation.
    pub client_cpus_busy_pct: f64,
    /// The share of the server's / the client's CPUs' time that the
    /// hypervisor gave to other guests (/proc/stat `steal`), in percent.
    #[serde(default)]
    pub server_steal_pct: Option<f64>,
    #[serde(default)]
    pub client_steal_pct: Option<f64>,
    /// The share of the CPUs under test (server's and client's on this
    /// host) that went to work other than the run's own threads and their
    /// CPUs' softirq threads: /proc/stat's busy time minus the run's, over
    /// their wall time, percent (null where it cannot be told: the sides
    /// share some CPUs but not all).
    #[serde(default)]
    pub foreign_pct: Option<f64>,
    pub server_cpus: Vec<usize>,
    pub client_cpus: Vec<usize>,
    /// Per thread: role, CPU, user µs, system µs.
    pub threads: Vec<ThreadCpu>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ThreadCpu {
    pub role: String,
    pub cpu: Option<usize>,
    pub user_us: f64,
    pub sys_us: f64,
    /// What this thread (a shard, on the bypass path) did over the whole
    /// run: a server thread's requests and datagrams served and bytes
    /// received, a client thread's measured operations and bytes.
    #[serde(default)]
    pub ops: u64,
    #[serde(default)]
    pub bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Interval {
    /// Start, seconds after the measurement began.
    pub t_s: f64,
    pub dur_s: f64,
    pub ops: u64,
    pub ops_per_s: f64,
    pub bits_per_s: f64,
    pub errors: u64,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub max_us: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Run {
    pub workload: Workload,
    /// The round this run belongs to, from 0 (older documents: 0).
    #[serde(default)]
    pub round: u32,
    /// The path: "kernel", "bypass" (server side on the stack), "bypass-client" (client side) or "bypass-both".
    pub path: DataPath,
    pub proto: String,
    /// The effective parameters of this run (sizes, connections, rate, ...).
    pub params: BTreeMap<String, String>,
    pub duration_s: f64,
    pub ops: u64,
    pub ops_per_s: f64,
    pub bits_per_s: f64,
    /// Payload bytes counted by the measuring side.
    pub bytes: u64,
    /// µs; null for the streams, which have no per-operation latency.
    pub latency_us: Option<Latency>,
    pub cpu: Cpu,
    pub errors: u64,
    /// Datagrams lost, percent (udp workloads).
    pub loss_pct: Option<f64>,
    /// Why a figure may not be trusted; see [`Flag`].
    pub flags: Vec<String>,
    pub steadiness: Steadiness,
    pub counters: BTreeMap<String, u64>,
    pub intervals: Vec<Interval>,
    /// File name of the interval log beside result.json (latency workloads).
    pub hlog: Option<String>,
}

/// What the CPUs under test could do when the run began (see `calibrate`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Calibration {
    pub server_cpu: usize,
    pub client_cpu: usize,
    /// One-way wake-up latency from the server CPU to a thread blocked on
    /// the client CPU (half a round trip over a socket pair), µs.
    pub wakeup_us_p50: f64,
    pub wakeup_us_p99: f64,
    pub wakeup_round_trips: u64,
    /// One core's memcpy bandwidth on the server CPU (64 MiB buffers), GB/s.
    pub memcpy_gb_per_s: f64,
    /// The share of both CPUs' time the hypervisor gave to other guests
    /// during the calibration, percent.
    pub steal_pct: f64,
    pub took_ms: f64,
}

fn one_round() -> u32 {
    1
}

/// One line of the ratios or of a comparison: figure B over figure A.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Ratio {
    pub workload: Workload,
    /// `path/base` (a path against a kernel path), or the path both
    /// compared documents ran.
    pub path: String,
    pub figure: String,
    /// A's figure: its median over the rounds used.
    pub a: Option<f64>,
    pub b: Option<f64>,
    /// The median of the per-round ratios b/a (a comparison: of the
    /// medians); null when a figure is missing or a is 0.
    pub ratio: Option<f64>,
    /// The 95% interval of the ratio (see `stats::METHOD`); null below two
    /// paired rounds.
    #[serde(default)]
    pub ci95_low: Option<f64>,
    #[serde(default)]
    pub ci95_high: Option<f64>,
    /// Caution: the interval's half-width exceeds 10% of the ratio.
    #[serde(default)]
    pub wide: bool,
    /// The paired ratio of each round used, in round order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_round: Vec<f64>,
    /// A comparison of two multi-round documents: whether each median lies
    /// outside the other's interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
}

/// What a comparison of two multi-round figures says.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Each median lies outside the other's 95% interval.
    Differs,
    /// One median lies inside the other's interval: not shown to differ.
    Overlaps,
}

/// One figure of one (workload, path) over its valid rounds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FigureSpread {
    pub workload: Workload,
    pub path: DataPath,
    pub figure: String,
    /// Rounds with the figure.
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// The 95% interval of the figure (see `stats::METHOD`); null below 2.
    pub ci95_low: Option<f64>,
    pub ci95_high: Option<f64>,
    /// Caution: the interval's half-width exceeds 10% of the median.
    pub wide: bool,
}

impl FigureSpread {
    pub fn new(workload: Workload, path: DataPath, figure: &str, s: &Spread) -> FigureSpread {
        FigureSpread {
            workload,
            path,
            figure: figure.to_string(),
            n: s.n,
            median: s.median,
            min: s.min,
            max: s.max,
            ci95_low: s.ci95.map(|c| c.0),
            ci95_high: s.ci95.map(|c| c.1),
            wide: s.wide(),
        }
    }

    /// Back to the statistics' own form.
    pub fn spread(&self) -> Spread {
        Spread {
            n: self.n,
            median: self.median,
            min: self.min,
            max: self.max,
            ci95: self.ci95_low.zip(self.ci95_high),
        }
    }
}

/// Flags a run can carry. Invalid ones make `bypass run` exit 1; caution
/// ones say how to read a figure (e.g. the rate is the generator's ceiling).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    Interrupted,
    Errors,
    PayloadMismatch,
    NoOps,
    Loss,
    GeneratorSaturated,
    Unsteady,
    CpuStolen,
    ForeignLoad,
    /// `--hold N`: fewer than N idle connections were held through the
    /// window (the warm-up was too short to open them, or some were lost):
    /// the server was not measured in the state asked for.
    HoldShort,
    /// `bypass doctor` warned about a host of the run (`env.preflight`,
    /// `env.hosts[].preflight`): a figure may be the host's setup.
    Preflight,
}

impl Flag {
    pub fn name(self) -> &'static str {
        match self {
            Flag::Interrupted => "interrupted",
            Flag::Errors => "errors",
            Flag::PayloadMismatch => "payload_mismatch",
            Flag::NoOps => "no_ops",
            Flag::Loss => "loss",
            Flag::GeneratorSaturated => "generator_saturated",
            Flag::Unsteady => "unsteady",
            Flag::CpuStolen => "cpu_stolen",
            Flag::ForeignLoad => "foreign_load",
            Flag::HoldShort => "hold_short",
            Flag::Preflight => "preflight",
        }
    }

    /// Whether the flag invalidates the measurement itself.
    pub fn invalid(self) -> bool {
        matches!(
            self,
            Flag::Interrupted
                | Flag::Errors
                | Flag::PayloadMismatch
                | Flag::NoOps
                | Flag::HoldShort
        )
    }

    pub fn all() -> [Flag; 11] {
        [
            Flag::Interrupted,
            Flag::Errors,
            Flag::PayloadMismatch,
            Flag::NoOps,
            Flag::Loss,
            Flag::GeneratorSaturated,
            Flag::Unsteady,
            Flag::CpuStolen,
            Flag::ForeignLoad,
            Flag::HoldShort,
            Flag::Preflight,
        ]
    }
}

impl Run {
    pub fn invalid(&self) -> bool {
        Flag::all()
            .iter()
            .any(|f| f.invalid() && self.flags.iter().any(|n| n == f.name()))
    }
}

impl Env {
    /// Whether a preflight of a host of the run warned.
    pub fn preflight_warned(&self) -> bool {
        self.preflight
            .iter()
            .chain(self.hosts.iter().filter_map(|h| h.info.preflight.as_ref()))
            .any(|p| p.warnings().next().is_some())
    }
}

impl ResultDoc {
    pub fn valid(&self) -> bool {
        !self.interrupted && self.failure.is_none() && self.runs.iter().all(|r| !r.invalid())
    }
}

/// Writes the interval log of one run: one histogram per interval, in ns.
pub fn write_hlog(
    path: &Path,
    intervals: &[Histogram<u64>],
    start: std::time::SystemTime,
    comment: &str,
) -> Result<()> {
    let mut out = Vec::new();
    {
        let mut ser = V2DeflateSerializer::new();
        let mut w = IntervalLogWriterBuilder::new()
            .add_comment(comment)
            .add_comment("values in nanoseconds")
            .with_start_time(start)
            .with_base_time(start)
            .begin_log_with(&mut out, &mut ser)
            .context("starting interval log")?;
        for (i, h) in intervals.iter().enumerate() {
            w.write_histogram(h, INTERVAL * i as u32, INTERVAL, None)
                .map_err(|e| anyhow::anyhow!("writing interval log: {e:?}"))?;
        }
    }
    fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

/// Directory `<out>/<UTC time>-<name>`.
/// Checks that result directories can be made under `out` (making `out`
/// itself) before anything is measured; the result directory itself is
/// made by [`ensure_dir`] with its first file, so a run killed before it
/// measured anything leaves no empty directory.
pub fn check_out(out: &Path) -> Result<()> {
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let probe = out.join(format!(".bypass-probe-{}", std::process::id()));
    fs::write(&probe, b"").with_context(|| format!("{} is not writable", out.display()))?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// Makes a result directory (and its parents) if it is not there yet.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

pub fn result_dir(out: &Path, started: &chrono::DateTime<chrono::Utc>, name: &str) -> PathBuf {
    out.join(format!("{}-{}", started.format("%Y%m%dT%H%M%SZ"), name))
}

pub fn load(path: &Path) -> Result<ResultDoc> {
    let p = if path.is_dir() {
        path.join("result.json")
    } else {
        path.to_path_buf()
    };
    let bytes = fs::read(&p).map_err(|e| {
        crate::error::usage(format!(
            "reading {}: {e}: give a result.json or the directory holding it",
            p.display()
        ))
    })?;
    let doc: ResultDoc = serde_json::from_slice(&bytes).map_err(|e| {
        crate::error::usage(format!(
            "{} is not a bypass result document: {e}",
            p.display()
        ))
    })?;
    Ok(doc)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_run(ops_per_s: f64) -> Run {
        Run {
            workload: Workload::Rr,
            round: 0,
            path: DataPath::Kernel,
            proto: "raw".into(),
            params: BTreeMap::new(),
            duration_s: 1.0,
            ops: ops_per_s as u64,
            ops_per_s,
            bits_per_s: ops_per_s * 1024.0,
            bytes: 0,
            latency_us: Some(Latency {
                p50: 10.0,
                p99: 20.0,
                max: 30.0,
                ..Default::default()
            }),
            cpu: Cpu::default(),
            errors: 0,
            loss_pct: None,
            flags: vec![],
            steadiness: Steadiness {
                cv: 0.0,
                correlation: 1.0,
            },
            counters: BTreeMap::new(),
            intervals: vec![],
            hlog: None,
        }
    }

    pub(crate) fn doc(runs: Vec<Run>) -> ResultDoc {
        ResultDoc {
            schema: SCHEMA.into(),
            name: "t".into(),
            started_utc: String::new(),
            finished_utc: String::new(),
            interrupted: false,
            failure: None,
            config: BTreeMap::new(),
            env: Env::default(),
            rounds: 1,
            runs,
            spreads: vec![],
            ratios: vec![],
        }
    }

    #[test]
    fn invalid_flags_make_the_document_invalid() {
        let mut r = sample_run(1.0);
        r.flags.push("generator_saturated".into());
        assert!(doc(vec![r.clone()]).valid());
        r.flags.push("errors".into());
        assert!(!doc(vec![r]).valid());
    }

    #[test]
    fn latency_from_histogram_is_ordered() {
        let mut h = crate::metrics::new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 1000).unwrap();
        }
        let l = Latency::from_hist(&h).unwrap();
        assert!(l.min <= l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999);
        assert!(l.p999 <= l.p9999 && l.p9999 <= l.max);
        assert!((l.p50 - 5000.0).abs() / 5000.0 < 0.01);
        assert!(Latency::from_hist(&crate::metrics::new_histogram()).is_none());
    }

    #[test]
    fn hlog_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.hlog");
        let mut h = crate::metrics::new_histogram();
        h.record(12345).unwrap();
        write_hlog(&p, &[h.clone(), h], std::time::SystemTime::now(), "test").unwrap();
        let bytes = fs::read(&p).unwrap();
        let n = hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&bytes)
            .filter(|e| {
                matches!(
                    e,
                    Ok(hdrhistogram::serialization::interval_log::LogEntry::Interval(_))
                )
            })
            .count();
        assert_eq!(n, 2);
    }
}
