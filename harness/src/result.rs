//! The result document (`result.json`), the HdrHistogram interval logs, the
//! human summary, and comparison of two results.
//!
//! A result file alone reproduces and explains its run: every effective
//! option, the machine, and per-interval samples. See `results/FORMAT.md`.

use crate::datapath::DataPath;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::metrics::{Steadiness, INTERVAL};
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
    pub runs: Vec<Run>,
    /// bypass / kernel, figure by figure, for every workload run over both paths.
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
        }
    }

    /// Whether the flag invalidates the measurement itself.
    pub fn invalid(self) -> bool {
        matches!(
            self,
            Flag::Interrupted | Flag::Errors | Flag::PayloadMismatch | Flag::NoOps
        )
    }

    pub fn all() -> [Flag; 8] {
        [
            Flag::Interrupted,
            Flag::Errors,
            Flag::PayloadMismatch,
            Flag::NoOps,
            Flag::Loss,
            Flag::GeneratorSaturated,
            Flag::Unsteady,
            Flag::CpuStolen,
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

fn f(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.prec$}"))
}

/// A compact number: 1234567 -> 1.23M.
pub fn si(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.1}")
    }
}

/// The headline table (markdown), one row per run.
pub fn table(doc: &ResultDoc) -> String {
    let mut s = String::new();
    s.push_str("| workload | path | ops/s | Gbit/s | p50 µs | p99 µs | p99.9 µs | max µs | server µs/op | client µs/op | loss % | flags |\n");
    s.push_str(
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    for r in &doc.runs {
        let l = r.latency_us.as_ref();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.3} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.workload,
            r.path,
            si(r.ops_per_s),
            r.bits_per_s / 1e9,
            f(l.map(|l| l.p50), 1),
            f(l.map(|l| l.p99), 1),
            f(l.map(|l| l.p999), 1),
            f(l.map(|l| l.max), 1),
            f(r.cpu.server_us_per_op, 2),
            f(r.cpu.client_us_per_op, 2),
            f(r.loss_pct, 3),
            if r.flags.is_empty() {
                "-".into()
            } else {
                r.flags.join(", ")
            },
        );
    }
    s
}

/// `summary.md`: what a person reads.
pub fn summary(doc: &ResultDoc, plots: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# bypass run `{}`\n", doc.name);
    let _ = writeln!(
        s,
        "{} to {} UTC, {} on {} ({} cores, {}), kernel {}, interface {} ({}), git {}.{}\n",
        doc.started_utc,
        doc.finished_utc,
        doc.env.mode,
        doc.env.hostname,
        doc.env.cores,
        doc.env.cpu_model,
        doc.env.kernel,
        doc.env.interface,
        doc.env.driver,
        doc.env.git_revision,
        if doc.interrupted {
            " **Interrupted**: the figures cover the time measured before the stop."
        } else {
            ""
        }
    );
    if let Some(f) = &doc.failure {
        let _ = writeln!(
            s,
            "**The run ended early** at {}: {} ({} agent {}{}): {}\n",
            f.at_utc,
            f.path
                .as_ref()
                .zip(f.workload.as_ref())
                .map_or("between runs".into(), |(p, w)| format!(
                    "{w} over the {p} path"
                )),
            f.role,
            f.agent,
            if f.hostname.is_empty() {
                String::new()
            } else {
                format!(" on {}", f.hostname)
            },
            f.message
        );
    }
    for h in &doc.env.hosts {
        let _ = writeln!(
            s,
            "- {} `{}` (agent {}): kernel {}, {} CPUs, {}, git {}",
            h.role,
            h.info.hostname,
            h.agent,
            h.info.kernel,
            h.info.cpus.len(),
            h.info
                .ifaces
                .first()
                .map_or("no interface".into(), |i| format!(
                    "{} ({})",
                    i.name, i.driver
                )),
            h.info.git_revision
        );
    }
    if !doc.env.hosts.is_empty() {
        s.push('\n');
    }
    s.push_str(&table(doc));
    s.push_str("\nServer CPU per operation: the server threads' run time, plus that of the server CPUs' ksoftirqd threads when server and client have CPUs of their own (`cpu.accounting` says which), over the operations counted. Latency is measured at the client");
    s.push_str(" (for crr: connect + request + response). Flags: `generator_saturated` = the load generator's CPUs were busy (>=95%) or it fell short of its rate, so a rate is the generator's ceiling; `unsteady` = per-second rates varied by more than 25% (coefficient of variation); `cpu_stolen` = the hypervisor gave more than 5% of the CPUs' time under test to other guests (`cpu.*_steal_pct`), so CPU costs and tails include its pauses; `loss` = datagrams lost; `errors`, `payload_mismatch`, `no_ops`, `interrupted` invalidate the run.\n");
    if !doc.ratios.is_empty() {
        let _ = writeln!(s, "\n## bypass / kernel\n");
        s.push_str("`bypass`: the server runs on the bypass path, the client on the kernel's; `bypass-client`: the other way round; `bypass-both`: both ends on the bypass path, against the kernel on both ends. Compare server figures for `bypass`, client figures for `bypass-client`, both for `bypass-both`.\n\n");
        s.push_str("| workload | paths | figure | kernel | bypass | ratio |\n| --- | --- | --- | ---: | ---: | ---: |\n");
        for r in doc.ratios.iter().filter(|r| r.a.is_some() && r.b.is_some()) {
            ratio_row(&mut s, r);
        }
    }
    if !plots.is_empty() {
        let _ = writeln!(s, "\n## Plots\n");
        for p in plots {
            let _ = writeln!(s, "![{p}]({p})");
        }
    }
    let _ = writeln!(s, "\n## Effective configuration\n");
    for (k, v) in &doc.config {
        let _ = writeln!(s, "- `{k}` = `{v}`");
    }
    if !doc.env.sysctls.is_empty() {
        let _ = writeln!(s, "\n## Sysctls set by the run\n");
        for (k, v) in &doc.env.sysctls {
            let _ = writeln!(s, "- `{k}` = `{v}`");
        }
    }
    s
}

/// Every figure of a run that `compare` puts side by side.
fn figures(r: &Run) -> Vec<(&'static str, Option<f64>)> {
    let l = r.latency_us.as_ref();
    vec![
        ("ops_per_s", Some(r.ops_per_s)),
        ("bits_per_s", Some(r.bits_per_s)),
        ("latency_us.p50", l.map(|l| l.p50)),
        ("latency_us.p90", l.map(|l| l.p90)),
        ("latency_us.p99", l.map(|l| l.p99)),
        ("latency_us.p999", l.map(|l| l.p999)),
        ("latency_us.p9999", l.map(|l| l.p9999)),
        ("latency_us.max", l.map(|l| l.max)),
        ("latency_us.mean", l.map(|l| l.mean)),
        ("cpu.server_us_per_op", r.cpu.server_us_per_op),
        ("cpu.client_us_per_op", r.cpu.client_us_per_op),
        ("cpu.server_util_pct", r.cpu.server_util_pct),
        ("cpu.client_util_pct", r.cpu.client_util_pct),
        ("cpu.server_ns_per_byte", r.cpu.server_ns_per_byte),
        ("cpu.server_work_us_per_op", r.cpu.server_work_us_per_op),
        ("loss_pct", r.loss_pct),
        ("errors", Some(r.errors as f64)),
    ]
}

/// One line of a comparison.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Ratio {
    pub workload: Workload,
    pub path: String,
    pub figure: String,
    pub a: Option<f64>,
    pub b: Option<f64>,
    /// b / a (null when either is missing or a is 0).
    pub ratio: Option<f64>,
}

/// Ratios b/a of every figure of two runs.
fn ratio_rows(a: &Run, b: &Run, path: String) -> Vec<Ratio> {
    figures(a)
        .into_iter()
        .zip(figures(b))
        .map(move |((name, va), (_, vb))| Ratio {
            workload: a.workload,
            path: path.clone(),
            figure: name.to_string(),
            a: va,
            b: vb,
            ratio: match (va, vb) {
                (Some(x), Some(y)) if x != 0.0 => Some(y / x),
                _ => None,
            },
        })
        .collect()
}

/// Ratios b/a of every figure of the runs that both documents have.
pub fn compare(a: &ResultDoc, b: &ResultDoc) -> Vec<Ratio> {
    let mut out = Vec::new();
    for ra in &a.runs {
        if let Some(rb) = b
            .runs
            .iter()
            .find(|r| r.workload == ra.workload && r.path == ra.path)
        {
            out.extend(ratio_rows(ra, rb, ra.path.to_string()));
        }
    }
    out
}

/// path / kernel of every figure, for each workload run over the kernel
/// path and another one ("bypass": the server side on the bypass path;
/// "bypass-client": the client side).
pub fn path_ratios(runs: &[Run]) -> Vec<Ratio> {
    let mut out = Vec::new();
    for k in runs.iter().filter(|r| r.path.is_kernel()) {
        for b in runs
            .iter()
            .filter(|r| r.workload == k.workload && !r.path.is_kernel())
        {
            out.extend(ratio_rows(k, b, format!("{}/kernel", b.path)));
        }
    }
    out
}

pub fn compare_table(rows: &[Ratio], a_name: &str, b_name: &str) -> String {
    let mut s = format!("| workload | path | figure | A ({a_name}) | B ({b_name}) | B/A |\n| --- | --- | --- | ---: | ---: | ---: |\n");
    for r in rows {
        ratio_row(&mut s, r);
    }
    s
}

/// One markdown row of a ratio table: workload, path, figure, A, B, B/A.
fn ratio_row(s: &mut String, r: &Ratio) {
    let _ = writeln!(
        s,
        "| {} | {} | {} | {} | {} | {} |",
        r.workload,
        r.path,
        r.figure,
        f(r.a, 3),
        f(r.b, 3),
        f(r.ratio, 3)
    );
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_run(ops_per_s: f64) -> Run {
        Run {
            workload: Workload::Rr,
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

    fn doc(runs: Vec<Run>) -> ResultDoc {
        ResultDoc {
            schema: SCHEMA.into(),
            name: "t".into(),
            started_utc: String::new(),
            finished_utc: String::new(),
            interrupted: false,
            failure: None,
            config: BTreeMap::new(),
            env: Env::default(),
            runs,
            ratios: vec![],
        }
    }

    #[test]
    fn compare_gives_ratios_of_matching_runs() {
        let a = doc(vec![sample_run(100.0)]);
        let b = doc(vec![sample_run(250.0)]);
        let rows = compare(&a, &b);
        let ops = rows.iter().find(|r| r.figure == "ops_per_s").unwrap();
        assert_eq!(ops.ratio, Some(2.5));
        let p50 = rows.iter().find(|r| r.figure == "latency_us.p50").unwrap();
        assert_eq!(p50.ratio, Some(1.0));
        let none = rows
            .iter()
            .find(|r| r.figure == "cpu.server_us_per_op")
            .unwrap();
        assert_eq!(none.ratio, None);
        assert!(compare_table(&rows, "a", "b").contains("| 2.500 |"));
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
