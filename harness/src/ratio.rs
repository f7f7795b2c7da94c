//! What the runs of a result come to: each figure's spread over the rounds
//! of a (workload, path), each path against each kernel path round by round
//! (paired), and the comparison of two results.

use crate::datapath::DataPath;
use crate::result::{FigureSpread, ResultDoc, Run, Verdict};
use crate::stats::{self, Spread};
use crate::workload::Workload;

pub use crate::result::Ratio;

/// Every figure of a run that ratios and `compare` put side by side.
pub fn figures(r: &Run) -> Vec<(&'static str, Option<f64>)> {
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

/// The number of figures [`figures`] gives.
const FIGURES: usize = 17;

/// The (workload, path) pairs of some runs, workloads in the order they
/// first ran, paths in [`DataPath::ALL`]'s order.
fn keys(runs: &[Run]) -> Vec<(Workload, DataPath)> {
    let mut ws: Vec<Workload> = Vec::new();
    for r in runs {
        if !ws.contains(&r.workload) {
            ws.push(r.workload);
        }
    }
    let mut out = Vec::new();
    for w in ws {
        for p in DataPath::ALL {
            if runs.iter().any(|r| r.workload == w && r.path == p) {
                out.push((w, p));
            }
        }
    }
    out
}

/// The valid runs of (workload, path), in round order.
fn valid(runs: &[Run], w: Workload, p: DataPath) -> Vec<&Run> {
    let mut v: Vec<&Run> = runs
        .iter()
        .filter(|r| r.workload == w && r.path == p && !r.invalid())
        .collect();
    v.sort_by_key(|r| r.round);
    v
}

/// Each figure's spread over the valid rounds of each (workload, path).
pub fn spreads(runs: &[Run]) -> Vec<FigureSpread> {
    let mut out = Vec::new();
    for (w, p) in keys(runs) {
        let rs = valid(runs, w, p);
        for i in 0..FIGURES {
            let values: Vec<f64> = rs.iter().filter_map(|r| figures(r)[i].1).collect();
            if let Some(s) = Spread::of(&values) {
                out.push(FigureSpread::new(w, p, figures(rs[0])[i].0, &s));
            }
        }
    }
    out
}

/// path / kernel path of every figure, paired by round: for each workload,
/// each path that ran against each kernel path that ran (a kernel path
/// against another kernel path too, kernel being every other one's base).
/// Rounds where either run is invalid or lacks the figure are left out; a
/// round whose base figure is 0 gives no ratio. `a` and `b` are the
/// figure's medians over the rounds used, `ratio` the median of the
/// per-round ratios, with their 95% interval (see `stats`).
pub fn path_ratios(runs: &[Run]) -> Vec<Ratio> {
    let ks = keys(runs);
    let mut out = Vec::new();
    for &(w, base) in ks.iter().filter(|(_, p)| p.is_kernel()) {
        let bs = valid(runs, w, base);
        for &(_, path) in ks
            .iter()
            .filter(|(kw, p)| *kw == w && *p != base && (!p.is_kernel() || base.is_default()))
        {
            let ps = valid(runs, w, path);
            for i in 0..FIGURES {
                let (mut av, mut bv, mut per) = (Vec::new(), Vec::new(), Vec::new());
                let mut name = "";
                for k in &bs {
                    let Some(b) = ps.iter().find(|r| r.round == k.round) else {
                        continue;
                    };
                    let (fa, fb) = (figures(k)[i], figures(b)[i]);
                    name = fa.0;
                    if let (Some(x), Some(y)) = (fa.1, fb.1) {
                        av.push(x);
                        bv.push(y);
                        if x != 0.0 {
                            per.push(y / x);
                        }
                    }
                }
                if av.is_empty() {
                    continue;
                }
                let s = Spread::of(&per);
                out.push(Ratio {
                    workload: w,
                    path: format!("{path}/{base}"),
                    figure: name.to_string(),
                    a: stats::median(&av),
                    b: stats::median(&bv),
                    ratio: s.as_ref().map(|s| s.median),
                    ci95_low: s.as_ref().and_then(|s| s.ci95.map(|c| c.0)),
                    ci95_high: s.as_ref().and_then(|s| s.ci95.map(|c| c.1)),
                    wide: s.as_ref().is_some_and(Spread::wide),
                    per_round: per,
                    verdict: None,
                });
            }
        }
    }
    out
}

/// B / A of every figure of the (workload, path)s both documents have: the
/// ratio of the medians over each one's rounds, and, when both have an
/// interval, whether each median lies outside the other's interval.
pub fn compare(a: &ResultDoc, b: &ResultDoc) -> Vec<Ratio> {
    let (sa, sb) = (spreads(&a.runs), spreads(&b.runs));
    let mut out = Vec::new();
    for x in &sa {
        let Some(y) = sb
            .iter()
            .find(|y| y.workload == x.workload && y.path == x.path && y.figure == x.figure)
        else {
            continue;
        };
        let verdict = match (x.spread().ci95, y.spread().ci95) {
            (Some(_), Some(_)) => Some(
                if x.spread().excludes(y.median) && y.spread().excludes(x.median) {
                    Verdict::Differs
                } else {
                    Verdict::Overlaps
                },
            ),
            _ => None,
        };
        out.push(Ratio {
            workload: x.workload,
            path: x.path.to_string(),
            figure: x.figure.clone(),
            a: Some(x.median),
            b: Some(y.median),
            ratio: (x.median != 0.0).then(|| y.median / x.median),
            ci95_low: None,
            ci95_high: None,
            wide: false,
            per_round: Vec::new(),
            verdict,
        });
    }
    out
}

/// Above this relative difference two calibrations say the machine was in
/// another state.
const CALIBRATION_DRIFT: f64 = 0.20;

/// Warnings for two results whose calibrations differ by more than 20% in
/// a figure (or that lack one to compare).
pub fn calibration_drift(a: &ResultDoc, b: &ResultDoc) -> Vec<String> {
    let (Some(ca), Some(cb)) = (&a.env.calibration, &b.env.calibration) else {
        return vec!["one of the results has no calibration (an older document, or a run across hosts): whether the machine was in the same state is not known".into()];
    };
    let mut out = Vec::new();
    for (name, x, y) in [
        ("wake-up p50 (µs)", ca.wakeup_us_p50, cb.wakeup_us_p50),
        ("wake-up p99 (µs)", ca.wakeup_us_p99, cb.wakeup_us_p99),
        ("memcpy (GB/s)", ca.memcpy_gb_per_s, cb.memcpy_gb_per_s),
    ] {
        if x > 0.0 && ((y - x) / x).abs() > CALIBRATION_DRIFT {
            out.push(format!(
                "the calibrations differ: {name} {x:.2} in A, {y:.2} in B ({:+.0}%): the machine was in another state, so differences between the results may be the machine's",
                100.0 * (y - x) / x
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::tests::{doc, sample_run};

    fn run(path: DataPath, round: u32, ops: f64) -> Run {
        let mut r = sample_run(ops);
        (r.path, r.round) = (path, round);
        r
    }

    fn ratio<'a>(rows: &'a [Ratio], path: &str, figure: &str) -> &'a Ratio {
        rows.iter()
            .find(|r| r.path == path && r.figure == figure)
            .unwrap_or_else(|| panic!("no {path} {figure}"))
    }

    #[test]
    fn ratios_pair_rounds_and_give_the_median_and_interval_of_the_pairs() {
        // the machine drifts 2x over the rounds, hitting both paths alike:
        // each round's ratio is 2, though the medians' would be the same
        // and the unpaired spread is wide
        let mut runs = Vec::new();
        for (r, speed) in [1.0, 2.0, 1.5, 0.8, 1.2].into_iter().enumerate() {
            runs.push(run(DataPath::Kernel, r as u32, 100.0 * speed));
            runs.push(run(DataPath::BypassBoth, r as u32, 200.0 * speed));
        }
        let rows = path_ratios(&runs);
        let ops = ratio(&rows, "bypass-both/kernel", "ops_per_s");
        assert_eq!(ops.per_round, [2.0; 5]);
        assert_eq!(ops.ratio, Some(2.0));
        assert_eq!((ops.ci95_low, ops.ci95_high), (Some(2.0), Some(2.0)));
        assert_eq!((ops.a, ops.b), (Some(120.0), Some(240.0)));
        assert!(!ops.wide);
        let sp = spreads(&runs);
        let k = sp
            .iter()
            .find(|s| s.path == DataPath::Kernel && s.figure == "ops_per_s")
            .unwrap();
        assert_eq!((k.n, k.median, k.min, k.max), (5, 120.0, 80.0, 200.0));
        assert!(k.wide, "the unpaired rounds swing 2.5x");
    }

    #[test]
    fn invalid_runs_leave_their_round_out_and_one_round_has_no_interval() {
        let mut runs = vec![
            run(DataPath::Kernel, 0, 100.0),
            run(DataPath::Bypass, 0, 150.0),
            run(DataPath::Kernel, 1, 100.0),
            run(DataPath::Bypass, 1, 900.0),
        ];
        runs[3].flags.push("errors".into());
        let ops = path_ratios(&runs)
            .into_iter()
            .find(|r| r.figure == "ops_per_s")
            .unwrap();
        assert_eq!(ops.per_round, [1.5]);
        assert_eq!((ops.ratio, ops.ci95_low), (Some(1.5), None));
        // a zero base gives no ratio, but its medians stay
        let mut z = vec![run(DataPath::Kernel, 0, 0.0), run(DataPath::Bypass, 0, 5.0)];
        z[0].ops_per_s = 0.0;
        let ops = ratio(&path_ratios(&z), "bypass/kernel", "ops_per_s").clone();
        assert_eq!((ops.a, ops.b, ops.ratio), (Some(0.0), Some(5.0), None));
    }

    #[test]
    fn compare_says_whether_each_difference_is_outside_both_intervals() {
        let rounds = |ops: [f64; 4]| {
            doc(ops
                .iter()
                .enumerate()
                .map(|(r, o)| run(DataPath::Kernel, r as u32, *o))
                .collect())
        };
        let a = rounds([100.0, 102.0, 98.0, 101.0]);
        let far = rounds([150.0, 149.0, 152.0, 151.0]);
        let near = rounds([101.0, 99.0, 103.0, 100.0]);
        let rows = compare(&a, &far);
        let ops = rows.iter().find(|r| r.figure == "ops_per_s").unwrap();
        assert_eq!(ops.verdict, Some(Verdict::Differs));
        assert!(
            (ops.ratio.unwrap() - 150.5 / 100.5).abs() < 1e-9,
            "medians 150.5 and 100.5"
        );
        let rows = compare(&a, &near);
        let ops = rows.iter().find(|r| r.figure == "ops_per_s").unwrap();
        assert_eq!(ops.verdict, Some(Verdict::Overlaps));
        // single runs: a ratio, no verdict
        let one = compare(&doc(vec![sample_run(100.0)]), &doc(vec![sample_run(250.0)]));
        let ops = one.iter().find(|r| r.figure == "ops_per_s").unwrap();
        assert_eq!((ops.ratio, ops.verdict), (Some(2.5), None));
        let p50 = one.iter().find(|r| r.figure == "latency_us.p50").unwrap();
        assert_eq!(p50.ratio, Some(1.0));
        assert!(!one.iter().any(|r| r.figure == "cpu.server_us_per_op"));
    }

    #[test]
    fn calibrations_that_differ_by_more_than_a_fifth_are_warned_of() {
        let cal = |p50: f64, gbps: f64| crate::result::Calibration {
            wakeup_us_p50: p50,
            wakeup_us_p99: 20.0,
            memcpy_gb_per_s: gbps,
            ..Default::default()
        };
        let with = |c| {
            let mut d = doc(vec![]);
            d.env.calibration = Some(c);
            d
        };
        let a = with(cal(10.0, 8.0));
        assert!(calibration_drift(&a, &with(cal(11.5, 7.0))).is_empty());
        let w = calibration_drift(&a, &with(cal(13.0, 5.0)));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("wake-up p50") && w[0].contains("+30%"),
            "{w:?}"
        );
        assert!(w[1].contains("memcpy") && w[1].contains("-38%"), "{w:?}");
        assert_eq!(calibration_drift(&a, &doc(vec![])).len(), 1);
    }

    #[test]
    fn the_figures_count_is_the_list_length() {
        assert_eq!(figures(&sample_run(1.0)).len(), FIGURES);
    }
}
