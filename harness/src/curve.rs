//! A sweep's document (`sweep.json`): one multi-round run per step of one
//! parameter (the offered rate, the cores, the message size), and what the
//! steps come to as curves: each figure's median and 95% interval per
//! (workload, path, step), the highest offered rate each path holds within
//! a p99 objective, and the highest loss-free datagram rate, each as a
//! ratio against each kernel path.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::datapath::DataPath;
use crate::result::{FigureSpread, ResultDoc};
use crate::workload::Workload;

/// Version of the document's shape.
pub const SCHEMA: &str = "bypass-sweep/1";

/// The parameter a sweep varies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SweepParam {
    /// The offered rate (open loop), operations per second.
    Rate,
    /// Server (and client) cores.
    Cores,
    /// The message size, bytes (request and response alike).
    Size,
}

impl SweepParam {
    pub fn name(self) -> &'static str {
        match self {
            SweepParam::Rate => "rate",
            SweepParam::Cores => "cores",
            SweepParam::Size => "size",
        }
    }

    /// The axis label of the parameter.
    pub fn axis(self) -> &'static str {
        match self {
            SweepParam::Rate => "offered load (operations/s)",
            SweepParam::Cores => "cores per side",
            SweepParam::Size => "message size (bytes)",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SweepDoc {
    pub schema: String,
    pub name: String,
    pub started_utc: String,
    pub finished_utc: String,
    pub param: SweepParam,
    pub values: Vec<f64>,
    pub rounds: u32,
    /// The p99 objective (µs) of `limits`, if one was given.
    pub slo_p99_us: Option<f64>,
    /// Stopped before its last step (SIGINT/SIGTERM, or a step's run was
    /// interrupted).
    pub interrupted: bool,
    pub steps: Vec<SweepStep>,
    pub points: Vec<Point>,
    pub limits: Vec<Limit>,
    pub limit_ratios: Vec<LimitRatio>,
}

/// One step: its value and its result directory (beside `sweep.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SweepStep {
    pub value: f64,
    pub dir: String,
    /// Whether the step's result is valid (no invalid flag on any run).
    pub valid: bool,
}

/// A figure over a step's rounds: median and 95% interval.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Fig {
    pub median: f64,
    pub ci95_low: Option<f64>,
    pub ci95_high: Option<f64>,
}

impl From<&FigureSpread> for Fig {
    fn from(s: &FigureSpread) -> Fig {
        Fig {
            median: s.median,
            ci95_low: s.ci95_low,
            ci95_high: s.ci95_high,
        }
    }
}

/// One (workload, path) at one step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Point {
    pub workload: Workload,
    pub path: DataPath,
    pub value: f64,
    /// Valid rounds behind the figures.
    pub n: usize,
    pub ops_per_s: Fig,
    pub bits_per_s: Option<Fig>,
    pub p50_us: Option<Fig>,
    pub p99_us: Option<Fig>,
    pub server_us_per_op: Option<Fig>,
    pub loss_pct: Option<f64>,
    /// Every flag any of the step's rounds carried.
    pub flags: Vec<String>,
}

/// What a limit measures.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// The highest offered rate whose p99 (median over the rounds) stayed
    /// within the objective.
    RateWithinSlo,
    /// The highest offered datagram rate with no datagram lost (median).
    LossFreeRate,
}

/// A path's limit over the steps (null: no step met it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Limit {
    pub workload: Workload,
    pub path: DataPath,
    pub kind: LimitKind,
    pub value: Option<f64>,
}

/// A path's limit over a kernel path's.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LimitRatio {
    pub workload: Workload,
    pub kind: LimitKind,
    /// `path/base`.
    pub path: String,
    pub ratio: Option<f64>,
}

/// A step's value as the tables print it: whole numbers below 100 000 in
/// full (cores, sizes, rates), larger ones compact.
fn step(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e5 {
        format!("{v:.0}")
    } else {
        crate::summary::si(v)
    }
}

/// The points of one step's result.
fn points(value: f64, doc: &ResultDoc) -> Vec<Point> {
    let mut keys: Vec<(Workload, DataPath)> = Vec::new();
    for r in &doc.runs {
        if !keys.contains(&(r.workload, r.path)) {
            keys.push((r.workload, r.path));
        }
    }
    keys.sort_by_key(|(w, p)| (doc.runs.iter().position(|r| r.workload == *w), *p));
    let mut out = Vec::new();
    for (w, p) in keys {
        let fig = |name: &str| {
            doc.spreads
                .iter()
                .find(|s| s.workload == w && s.path == p && s.figure == name)
        };
        let Some(ops) = fig("ops_per_s") else {
            continue;
        };
        let mut flags: Vec<String> = doc
            .runs
            .iter()
            .filter(|r| r.workload == w && r.path == p)
            .flat_map(|r| r.flags.iter().cloned())
            .collect();
        flags.sort();
        flags.dedup();
        out.push(Point {
            workload: w,
            path: p,
            value,
            n: ops.n,
            ops_per_s: ops.into(),
            bits_per_s: fig("bits_per_s").map(Fig::from),
            p50_us: fig("latency_us.p50").map(Fig::from),
            p99_us: fig("latency_us.p99").map(Fig::from),
            server_us_per_op: fig("cpu.server_us_per_op").map(Fig::from),
            loss_pct: fig("loss_pct").map(|s| s.median),
            flags,
        });
    }
    out
}

/// The limits of each (workload, path) over the points (a rate sweep).
fn limits(points: &[Point], slo_p99_us: Option<f64>) -> Vec<Limit> {
    let mut keys: Vec<(Workload, DataPath)> = Vec::new();
    for p in points {
        if !keys.contains(&(p.workload, p.path)) {
            keys.push((p.workload, p.path));
        }
    }
    let mut out = Vec::new();
    for (w, path) in keys {
        let of = || {
            points
                .iter()
                .filter(move |p| p.workload == w && p.path == path)
        };
        let highest = |ok: &dyn Fn(&Point) -> bool| -> Option<f64> {
            of().filter(|p| ok(p)).map(|p| p.value).reduce(f64::max)
        };
        if let (Some(slo), true) = (slo_p99_us, w.has_latency()) {
            out.push(Limit {
                workload: w,
                path,
                kind: LimitKind::RateWithinSlo,
                value: highest(&|p| p.p99_us.as_ref().is_some_and(|f| f.median <= slo)),
            });
        }
        if matches!(w, Workload::UdpStream | Workload::UdpRr) {
            out.push(Limit {
                workload: w,
                path,
                kind: LimitKind::LossFreeRate,
                value: highest(&|p| p.loss_pct == Some(0.0)),
            });
        }
    }
    out
}

/// Each path's limit over each kernel path's.
fn limit_ratios(limits: &[Limit]) -> Vec<LimitRatio> {
    let mut out = Vec::new();
    for base in limits.iter().filter(|l| l.path.is_kernel()) {
        for l in limits.iter().filter(|l| {
            l.workload == base.workload
                && l.kind == base.kind
                && l.path != base.path
                && (!l.path.is_kernel() || base.path.is_default())
        }) {
            out.push(LimitRatio {
                workload: l.workload,
                kind: l.kind,
                path: format!("{}/{}", l.path, base.path),
                ratio: match (l.value, base.value) {
                    (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                    _ => None,
                },
            });
        }
    }
    out
}

impl SweepDoc {
    /// The document of the steps run so far.
    #[allow(clippy::too_many_arguments)]
    pub fn of(
        name: &str,
        started_utc: String,
        param: SweepParam,
        values: &[f64],
        rounds: u32,
        slo_p99_us: Option<f64>,
        interrupted: bool,
        steps: &[(f64, String, ResultDoc)],
    ) -> SweepDoc {
        let points: Vec<Point> = steps.iter().flat_map(|(v, _, d)| points(*v, d)).collect();
        let limits = if param == SweepParam::Rate {
            limits(&points, slo_p99_us)
        } else {
            Vec::new()
        };
        SweepDoc {
            schema: SCHEMA.into(),
            name: name.to_string(),
            started_utc,
            finished_utc: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            param,
            values: values.to_vec(),
            rounds,
            slo_p99_us,
            interrupted,
            steps: steps
                .iter()
                .map(|(v, dir, d)| SweepStep {
                    value: *v,
                    dir: dir.clone(),
                    valid: d.valid(),
                })
                .collect(),
            limit_ratios: limit_ratios(&limits),
            limits,
            points,
        }
    }

    pub fn valid(&self) -> bool {
        !self.interrupted && self.steps.iter().all(|s| s.valid)
    }

    /// `sweep.md`: the curves as tables, the limits, the plots.
    pub fn summary(&self, plots: &[String]) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# bypass sweep `{}` over {}\n\n{} to {} UTC; {} steps ({}), {} round(s) each; every step's own result is in its directory.{}\n",
            self.name,
            self.param.name(),
            self.started_utc,
            self.finished_utc,
            self.steps.len(),
            self.values
                .iter()
                .map(|v| step(*v))
                .collect::<Vec<_>>()
                .join(", "),
            self.rounds,
            if self.interrupted {
                " **Interrupted**: the later steps are missing."
            } else {
                ""
            }
        );
        let fig = |f: Option<&Fig>, prec: usize| {
            crate::summary::with_interval(
                f.map(|f| f.median),
                f.and_then(|f| f.ci95_low.zip(f.ci95_high)),
                prec,
            )
        };
        let mut ws: Vec<Workload> = Vec::new();
        for p in &self.points {
            if !ws.contains(&p.workload) {
                ws.push(p.workload);
            }
        }
        for w in ws {
            let _ = writeln!(s, "## {w}\n\nMedian [95% interval] over the rounds of each step.\n\n| {} | path | ops/s | p50 µs | p99 µs | server µs/op | loss % | flags |\n| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |", self.param.name());
            for p in self.points.iter().filter(|p| p.workload == w) {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    step(p.value),
                    p.path,
                    fig(Some(&p.ops_per_s), 0),
                    fig(p.p50_us.as_ref(), 1),
                    fig(p.p99_us.as_ref(), 1),
                    fig(p.server_us_per_op.as_ref(), 2),
                    p.loss_pct.map_or("-".into(), |l| format!("{l:.3}")),
                    if p.flags.is_empty() {
                        "-".into()
                    } else {
                        p.flags.join(", ")
                    }
                );
            }
            s.push('\n');
        }
        if !self.limits.is_empty() {
            let _ = writeln!(s, "## Limits\n\n`rate_within_slo`: the highest offered rate whose p99 (median of the rounds) stayed within {}; `loss_free_rate`: the highest offered rate with no datagram lost (median). A step between two measured ones is not tried: the limit is as fine as the steps.\n\n| workload | limit | path | rate |\n| --- | --- | --- | ---: |", self.slo_p99_us.map_or("the objective".into(), |v| format!("{v} µs")));
            for l in &self.limits {
                let _ = writeln!(
                    s,
                    "| {} | {:?} | {} | {} |",
                    l.workload,
                    l.kind,
                    l.path,
                    l.value.map_or("none met it".into(), crate::summary::si)
                );
            }
            let _ = writeln!(
                s,
                "\n| workload | limit | paths | ratio |\n| --- | --- | --- | ---: |"
            );
            for r in &self.limit_ratios {
                let _ = writeln!(
                    s,
                    "| {} | {:?} | {} | {} |",
                    r.workload,
                    r.kind,
                    r.path,
                    r.ratio.map_or("-".into(), |v| format!("{v:.2}"))
                );
            }
            s.push('\n');
        }
        if !plots.is_empty() {
            let _ = writeln!(s, "## Plots\n");
            for p in plots {
                let _ = writeln!(s, "![{p}]({p})");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::tests::{doc, sample_run};

    /// A step where each path's p99 is `p99[i]` µs and rr runs at the rate.
    fn step(rate: f64, p99: &[(DataPath, f64)]) -> ResultDoc {
        let runs = p99
            .iter()
            .map(|(p, v)| {
                let mut r = sample_run(rate);
                r.path = *p;
                r.latency_us.as_mut().unwrap().p99 = *v;
                r
            })
            .collect();
        let mut d = doc(runs);
        d.spreads = crate::ratio::spreads(&d.runs);
        d
    }

    #[test]
    fn the_rate_within_the_objective_is_the_highest_step_that_met_it() {
        let (k, b) = (DataPath::Kernel, DataPath::BypassBoth);
        let steps = vec![
            (
                1000.0,
                "a".to_string(),
                step(1000.0, &[(k, 50.0), (b, 20.0)]),
            ),
            (
                2000.0,
                "b".to_string(),
                step(2000.0, &[(k, 150.0), (b, 30.0)]),
            ),
            (
                4000.0,
                "c".to_string(),
                step(4000.0, &[(k, 900.0), (b, 90.0)]),
            ),
        ];
        let d = SweepDoc::of(
            "t",
            String::new(),
            SweepParam::Rate,
            &[1000.0, 2000.0, 4000.0],
            1,
            Some(100.0),
            false,
            &steps,
        );
        assert_eq!(d.points.len(), 6);
        let lim = |p: DataPath| {
            d.limits
                .iter()
                .find(|l| l.path == p && l.kind == LimitKind::RateWithinSlo)
                .unwrap()
                .value
        };
        assert_eq!((lim(k), lim(b)), (Some(1000.0), Some(4000.0)));
        let r = d
            .limit_ratios
            .iter()
            .find(|r| r.path == "bypass-both/kernel")
            .unwrap();
        assert_eq!(r.ratio, Some(4.0));
        let s = d.summary(&[]);
        assert!(s.contains("| 4000 | bypass-both |"), "{s}");
        assert!(
            s.contains("| rr | RateWithinSlo | bypass-both/kernel | 4.00 |"),
            "{s}"
        );
        assert!(d.valid());
    }

    #[test]
    fn no_step_within_the_objective_is_said_so_and_sizes_have_no_limits() {
        let k = DataPath::Kernel;
        let steps = vec![
            (1000.0, "a".to_string(), step(1000.0, &[(k, 500.0)])),
            (2000.0, "b".to_string(), step(2000.0, &[(k, 600.0)])),
        ];
        let d = SweepDoc::of(
            "t",
            String::new(),
            SweepParam::Rate,
            &[1e3, 2e3],
            1,
            Some(100.0),
            false,
            &steps,
        );
        assert_eq!(d.limits[0].value, None);
        assert!(d.summary(&[]).contains("none met it"));
        let d = SweepDoc::of(
            "t",
            String::new(),
            SweepParam::Size,
            &[1e3, 2e3],
            1,
            Some(100.0),
            true,
            &steps,
        );
        assert!(d.limits.is_empty() && !d.valid());
    }
}
