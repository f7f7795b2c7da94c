//! What a person reads: the run's tables (`bypass run`'s output), the
//! summary (`summary.md`) and the comparison table of `bypass compare`.

use std::fmt::Write as _;

use crate::datapath::DataPath;
use crate::result::{FigureSpread, Ratio, ResultDoc, Verdict};
use crate::stats;

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

/// The table of every run (markdown), one row per run, in the order they
/// ran (with their round when there were several).
pub fn table(doc: &ResultDoc) -> String {
    let mut s = String::new();
    let rounds = doc.rounds > 1;
    let (rh, rs) = if rounds {
        ("round | ", "---: | ")
    } else {
        ("", "")
    };
    let _ = writeln!(s, "| workload | path | {rh}ops/s | Gbit/s | p50 µs | p99 µs | p99.9 µs | max µs | server µs/op | client µs/op | loss % | flags |");
    let _ = writeln!(
        s,
        "| --- | --- | {rs}---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for r in &doc.runs {
        let l = r.latency_us.as_ref();
        let round = if rounds {
            format!("{} | ", r.round)
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "| {} | {} | {round}{} | {:.3} | {} | {} | {} | {} | {} | {} | {} | {} |",
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
        "{} to {} UTC, {} on {} ({} cores, {}), kernel {}, interface {} ({}{}), git {}.{}\n",
        doc.started_utc,
        doc.finished_utc,
        doc.env.mode,
        doc.env.hostname,
        doc.env.cores,
        doc.env.cpu_model,
        doc.env.kernel,
        doc.env.interface,
        doc.env.driver,
        doc.env.mtu.map_or(String::new(), |m| format!(", MTU {m}")),
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
    if let Some(c) = &doc.env.calibration {
        let _ = writeln!(
            s,
            "Calibration before the first run: wake-up from CPU {} to CPU {} {:.1} µs p50, {:.1} µs p99 (one way, {} round trips); memcpy {:.1} GB/s on one core; steal {:.1}%.\n",
            c.server_cpu,
            c.client_cpu,
            c.wakeup_us_p50,
            c.wakeup_us_p99,
            c.wakeup_round_trips,
            c.memcpy_gb_per_s,
            c.steal_pct
        );
    }
    if doc.rounds > 1 {
        // the headline first: medians over the rounds, then the ratios
        s.push_str(&rounds_table(doc));
        s.push_str(&ratios_section(doc));
        let _ = writeln!(s, "\n## Every run, round by round\n\nA round runs each path once; the order rotates from round to round.\n");
        s.push_str(&table(doc));
        s.push_str(LEGEND);
    } else {
        s.push_str(&table(doc));
        s.push_str(LEGEND);
        s.push_str(&ratios_section(doc));
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

/// How to read the table of runs: CPU accounting, latency, flags.
const LEGEND: &str = "\nServer CPU per operation: the server threads' run time, plus that of the server CPUs' ksoftirqd threads when server and client have CPUs of their own (`cpu.accounting` says which), over the operations counted. Latency is measured at the client (for crr: connect + request + response). Flags: `generator_saturated` = the load generator's CPUs were busy (>=95%) or it fell short of its rate, so a rate is the generator's ceiling; `unsteady` = per-second rates varied by more than 25% (coefficient of variation); `cpu_stolen` = the hypervisor gave more than 5% of the CPUs' time under test to other guests (`cpu.*_steal_pct`), so CPU costs and tails include its pauses; `foreign_load` = more than 10% of the CPUs' time under test went to work that is not the run's (another run, a build: `cpu.foreign_pct`); `loss` = datagrams lost; `hold_short` = fewer than `--hold` idle connections were held through the window (`client.held_at_t0`, `client.hold_fill_ms`: give the warm-up more time); `preflight` = `bypass doctor` warned about a host of the run (`env.preflight`: the finding and its fix); `errors`, `payload_mismatch`, `no_ops`, `interrupted`, `hold_short` invalidate the run.\n";

/// Each path against each kernel path, with the intervals of the rounds.
fn ratios_section(doc: &ResultDoc) -> String {
    let mut s = String::new();
    if !doc.ratios.is_empty() {
        let _ = writeln!(s, "\n## Each path against each kernel path\n");
        s.push_str("`bypass`: the server runs on the bypass path, the client on the kernel's; `bypass-client`: the other way round; `bypass-both`: both ends on the bypass path, against the kernel on both ends. Compare server figures for `bypass`, client figures for `bypass-client`, both for `bypass-both`.");
        if doc.rounds > 1 {
            let _ = write!(s, " A ratio is the median of the {} rounds' paired ratios (each round ran every path once, in rotated order) with its 95% interval in brackets ({}); **wide** marks an interval whose half-width exceeds {:.0}% of the ratio: run more rounds, or longer ones, before leaning on it.", doc.rounds, stats::METHOD, stats::WIDE * 100.0);
        }
        s.push_str("\n\n| workload | paths | figure | base | path | ratio |\n| --- | --- | --- | ---: | ---: | ---: |\n");
        for r in doc.ratios.iter().filter(|r| r.a.is_some() && r.b.is_some()) {
            ratio_row(&mut s, r, "");
        }
    }
    s
}

/// `bypass compare`'s table; with multi-round documents on both sides, a
/// column says whether each difference lies outside both intervals.
pub fn compare_table(rows: &[Ratio], a_name: &str, b_name: &str) -> String {
    let verdicts = rows.iter().any(|r| r.verdict.is_some());
    let (vh, vs) = if verdicts {
        (" outside both 95% intervals? |", " --- |")
    } else {
        ("", "")
    };
    let mut s = format!("| workload | path | figure | A ({a_name}) | B ({b_name}) | B/A |{vh}\n| --- | --- | --- | ---: | ---: | ---: |{vs}\n");
    for r in rows {
        let v = match (verdicts, r.verdict) {
            (false, _) => "",
            (true, Some(Verdict::Differs)) => " yes: differs |",
            (true, Some(Verdict::Overlaps)) => " no |",
            (true, None) => " - |",
        };
        ratio_row(&mut s, r, v);
    }
    if verdicts {
        s.push_str("\nB/A is the ratio of the medians over each result's rounds; \"yes\" when each median lies outside the other result's 95% interval.\n");
    }
    s
}

/// `median [low, high]` of a ratio (or the median alone, without an interval).
pub fn with_interval(median: Option<f64>, ci: Option<(f64, f64)>, prec: usize) -> String {
    match (median, ci) {
        (Some(m), Some((lo, hi))) => format!("{m:.prec$} [{lo:.prec$}, {hi:.prec$}]"),
        (m, _) => f(m, prec),
    }
}

/// One markdown row of a ratio table: workload, paths, figure, A, B, the
/// ratio with its interval and caution, then `more` (further cells).
fn ratio_row(s: &mut String, r: &Ratio, more: &str) {
    let _ = writeln!(
        s,
        "| {} | {} | {} | {} | {} | {}{} |{more}",
        r.workload,
        r.path,
        r.figure,
        f(r.a, 3),
        f(r.b, 3),
        with_interval(r.ratio, r.ci95_low.zip(r.ci95_high), 3),
        if r.wide { " **wide**" } else { "" }
    );
}

/// The headline figures of each (workload, path) over the rounds: median
/// [min, max].
fn rounds_table(doc: &ResultDoc) -> String {
    let find = |w, p: DataPath, fig: &str| -> Option<&FigureSpread> {
        doc.spreads
            .iter()
            .find(|s| s.workload == w && s.path == p && s.figure == fig)
    };
    let cell = |s: Option<&FigureSpread>, prec: usize, si_: bool| -> String {
        s.map_or("-".into(), |s| {
            let v = |x: f64| {
                if si_ {
                    si(x)
                } else {
                    format!("{x:.prec$}")
                }
            };
            format!(
                "{} [{}, {}]{}",
                v(s.median),
                v(s.min),
                v(s.max),
                if s.wide { " **wide**" } else { "" }
            )
        })
    };
    let mut s = format!("\n## Over {} rounds: median [min, max]\n\n**wide**: the figure's 95% interval over the rounds is wider than ±{:.0}% of its median (the machine drifted, or the figure is noisy: ratios paired by round, below, cancel what drift hits both paths alike).\n\n| workload | path | rounds | ops/s | p50 µs | p99 µs | server µs/op | runs flagged |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |\n", doc.rounds, stats::WIDE * 100.0);
    let mut keys: Vec<_> = Vec::new();
    for r in &doc.runs {
        if !keys.contains(&(r.workload, r.path)) {
            keys.push((r.workload, r.path));
        }
    }
    keys.sort_by_key(|(w, p)| (keys_pos(doc, *w), *p));
    for (w, p) in keys {
        let flagged: Vec<String> = doc
            .runs
            .iter()
            .filter(|r| r.workload == w && r.path == p && !r.flags.is_empty())
            .map(|r| format!("r{}: {}", r.round, r.flags.join(", ")))
            .collect();
        let _ = writeln!(
            s,
            "| {w} | {p} | {} | {} | {} | {} | {} | {} |",
            find(w, p, "ops_per_s").map_or(0, |s| s.n),
            cell(find(w, p, "ops_per_s"), 0, true),
            cell(find(w, p, "latency_us.p50"), 1, false),
            cell(find(w, p, "latency_us.p99"), 1, false),
            cell(find(w, p, "cpu.server_us_per_op"), 2, false),
            if flagged.is_empty() {
                "-".into()
            } else {
                flagged.join("; ")
            }
        );
    }
    s
}

/// Where a workload first ran in a document.
fn keys_pos(doc: &ResultDoc, w: crate::workload::Workload) -> usize {
    doc.runs
        .iter()
        .position(|r| r.workload == w)
        .unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::tests::{doc, sample_run};

    #[test]
    fn a_multi_round_summary_shows_each_ratio_with_its_interval_and_caution() {
        let mut runs = Vec::new();
        for (r, (k, b)) in [(100.0, 210.0), (90.0, 180.0), (110.0, 200.0)]
            .into_iter()
            .enumerate()
        {
            for (path, ops) in [(DataPath::Kernel, k), (DataPath::BypassBoth, b)] {
                let mut run = sample_run(ops);
                (run.path, run.round) = (path, r as u32);
                runs.push(run);
            }
        }
        let mut d = doc(runs);
        d.rounds = 3;
        d.spreads = crate::ratio::spreads(&d.runs);
        d.ratios = crate::ratio::path_ratios(&d.runs);
        let s = summary(&d, &[]);
        assert!(s.contains("## Over 3 rounds"), "{s}");
        // ratios 2.1, 2.0, 1.818: median 2.0, interval by t on the logs
        let ops = d.ratios.iter().find(|r| r.figure == "ops_per_s").unwrap();
        let (lo, hi) = (ops.ci95_low.unwrap(), ops.ci95_high.unwrap());
        assert!(lo < 1.818 && hi > 2.1 && ops.wide);
        let row = format!("| 2.000 [{lo:.3}, {hi:.3}] **wide** |");
        assert!(s.contains(&row), "{row} in {s}");
        // the rounds table: the kernel's median [min, max]
        assert!(s.contains("| rr | kernel | 3 | 100.0 [90.0, 110.0]"), "{s}");
        assert!(table(&d)
            .lines()
            .nth(2)
            .unwrap()
            .starts_with("| rr | kernel | 0 |"));
    }

    #[test]
    fn compare_tables_carry_a_verdict_column_only_with_intervals() {
        let r = Ratio {
            workload: crate::workload::Workload::Rr,
            path: "kernel".into(),
            figure: "ops_per_s".into(),
            a: Some(1.0),
            b: Some(2.0),
            ratio: Some(2.0),
            ci95_low: None,
            ci95_high: None,
            wide: false,
            per_round: vec![],
            verdict: None,
        };
        assert!(!compare_table(std::slice::from_ref(&r), "a", "b").contains("outside"));
        let mut v = r;
        v.verdict = Some(Verdict::Differs);
        let t = compare_table(&[v], "a", "b");
        assert!(
            t.contains("outside both") && t.contains("| yes: differs |"),
            "{t}"
        );
    }
}
