//! `bypass run --sweep PARAM=V1,V2,...`: one multi-round run per step, each
//! in its own result directory under the sweep's, and the curves they make
//! (`sweep.json`, `sweep.md`, the plots). The sweep's document is rewritten
//! after every step, so a sweep that is stopped keeps the steps it ran.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};

use crate::curve::{SweepDoc, SweepParam};
use crate::result::ResultDoc;

/// What a sweep is asked.
pub struct SweepPlan<'a> {
    pub name: &'a str,
    pub out: &'a Path,
    pub param: SweepParam,
    pub values: &'a [f64],
    pub rounds: u32,
    pub slo_p99_us: Option<f64>,
}

/// Runs the steps in order, `step(value, dir)` running one step's result
/// into `dir`; returns the sweep's document and directory.
pub fn sweep(
    plan: &SweepPlan,
    interrupt: &AtomicBool,
    mut step: impl FnMut(f64, &Path) -> Result<(ResultDoc, PathBuf)>,
) -> Result<(SweepDoc, PathBuf)> {
    let started = chrono::Utc::now();
    let dir = crate::result::result_dir(plan.out, &started, &format!("{}-sweep", plan.name));
    crate::result::check_out(plan.out)?;
    let started_utc = started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut steps: Vec<(f64, String, ResultDoc)> = Vec::new();
    let mut interrupted = false;
    let doc_of = |steps: &[(f64, String, ResultDoc)], interrupted: bool| {
        SweepDoc::of(
            plan.name,
            started_utc.clone(),
            plan.param,
            plan.values,
            plan.rounds,
            plan.slo_p99_us,
            interrupted,
            steps,
        )
    };
    for &v in plan.values {
        if interrupt.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        let (d, step_dir) = step(v, &dir)?;
        let rel = step_dir
            .strip_prefix(&dir)
            .unwrap_or(&step_dir)
            .display()
            .to_string();
        let stop = d.interrupted;
        steps.push((v, rel, d));
        write(&dir, &doc_of(&steps, false))?;
        if stop {
            interrupted = true;
            break;
        }
    }
    let doc = doc_of(&steps, interrupted);
    write(&dir, &doc)?;
    report(&dir, &doc)?;
    Ok((doc, dir))
}

/// Writes the plots and `sweep.md` of a sweep's directory; the summary.
fn report(dir: &Path, doc: &SweepDoc) -> Result<String> {
    let names = crate::report::names(dir, crate::report::sweep_plots(dir, doc));
    let s = doc.summary(&names);
    std::fs::write(dir.join("sweep.md"), &s)
        .with_context(|| format!("writing {}", dir.join("sweep.md").display()))?;
    Ok(s)
}

/// `bypass report DIR` of a sweep: its plots and `sweep.md` again, from
/// `sweep.json`.
pub fn rewrite_report(dir: &Path) -> Result<String> {
    let p = dir.join("sweep.json");
    let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
    let doc: SweepDoc = serde_json::from_slice(&bytes).map_err(|e| {
        crate::error::usage(format!(
            "{} is not a bypass sweep document: {e}",
            p.display()
        ))
    })?;
    report(dir, &doc)
}

fn write(dir: &Path, doc: &SweepDoc) -> Result<()> {
    crate::result::ensure_dir(dir)?;
    let p = dir.join("sweep.json");
    std::fs::write(&p, serde_json::to_vec_pretty(doc)?)
        .with_context(|| format!("writing {}", p.display()))
}
