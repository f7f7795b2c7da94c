//! The orchestrator: the one loop over (workload, path) that a local run
//! and the controller of a run across hosts share, and what becomes of
//! each measured run (its attach facts in its params, its interval log
//! kept, its flags read), then the result directory written.
//!
//! Whoever measures a (workload, path) is a [`Runner`]: the local run
//! starts both sides here; the controller asks its agents.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use anyhow::{Context, Result};

use crate::bypass::AttachInfo;
use crate::datapath::{DataPath, PathSet};
use crate::result::{self, Env, Failure, Flag, ResultDoc, Run};
use crate::workload::Workload;

/// One (workload, path) measured.
pub struct Measured {
    pub run: Run,
    /// Its interval histograms (for the hlog); empty for the streams.
    pub hists: Vec<hdrhistogram::Histogram<u64>>,
    /// When its window began.
    pub t0_wall: SystemTime,
    /// How the bypass path attached, when it ran.
    pub attach: Option<AttachInfo>,
}

/// What a runner's (workload, path) came to.
pub enum Step {
    Done(Box<Measured>),
    /// The run cannot go on (an agent failed): nothing more is measured,
    /// and the result records why.
    Stop(Failure),
}

/// One entry of the plan: a workload over a path in a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planned {
    pub workload: Workload,
    pub path: DataPath,
    /// 0-based.
    pub round: u32,
}

/// Measures one (workload, path) at a time.
pub trait Runner {
    /// Measures `p`, the `index`-th run of the plan.
    fn run_one(&mut self, p: Planned, index: usize) -> Result<Step>;
}

/// What the loop produced.
pub struct Outcome {
    pub runs: Vec<Run>,
    pub interrupted: bool,
    pub failure: Option<Failure>,
    /// How the bypass path last attached (the result's env says it).
    pub attach: Option<AttachInfo>,
}

/// The runs of a run, in order: workload by workload, `rounds` rounds of
/// each; a round takes every path once, and the order rotates by one path
/// from round to round (round 0 in the set's order, the kernel first), so
/// that a drift of the machine within a workload's rounds hits every path
/// at every position alike.
pub fn plan(workloads: &[Workload], paths: &PathSet, rounds: u32) -> Vec<Planned> {
    let ps = paths.paths();
    let n = ps.len();
    let mut out = Vec::with_capacity(workloads.len() * n * rounds as usize);
    for &workload in workloads {
        // the paths that run this workload (kernel-uring: TCP only)
        let ps: Vec<DataPath> = ps.iter().copied().filter(|p| p.runs(workload)).collect();
        let n = ps.len();
        for round in 0..rounds {
            for k in 0..n {
                out.push(Planned {
                    workload,
                    path: ps[(k + round as usize) % n],
                    round,
                });
            }
        }
    }
    out
}

/// Runs the plan, keeping each run's interval log in `dir`; stops early
/// when `interrupt` is set, a run was interrupted, or the runner stops.
pub fn each_run(
    plan: &[Planned],
    dir: &Path,
    name: &str,
    interrupt: &AtomicBool,
    runner: &mut impl Runner,
) -> Result<Outcome> {
    let rounds = plan.iter().map(|p| p.round + 1).max().unwrap_or(1);
    let mut out = Outcome {
        runs: Vec::new(),
        interrupted: false,
        failure: None,
        attach: None,
    };
    for (i, &p) in plan.iter().enumerate() {
        if interrupt.load(Ordering::Relaxed) {
            out.interrupted = true;
            break;
        }
        let m = match runner.run_one(p, i)? {
            Step::Done(m) => m,
            Step::Stop(f) => {
                out.failure = Some(f);
                break;
            }
        };
        let Measured {
            mut run,
            hists,
            t0_wall,
            attach,
        } = *m;
        if let Some(a) = attach {
            record_attach(&mut run, &a);
            out.attach = Some(a);
        }
        run.round = p.round;
        let interrupted = run.flags.iter().any(|f| f == Flag::Interrupted.name());
        keep_hlog(dir, name, &mut run, rounds, &hists, t0_wall)?;
        out.runs.push(run);
        if interrupted {
            out.interrupted = true;
            break;
        }
    }
    Ok(out)
}

/// How the bypass path attached, in a run's params.
fn record_attach(run: &mut Run, a: &AttachInfo) {
    run.params.insert("xdp_mode".into(), a.xdp_mode.clone());
    run.params
        .insert("zero_copy".into(), a.zero_copy.to_string());
    if let Some(e) = &a.native_error {
        run.params.insert("xdp_native_refused".into(), e.clone());
    }
}

/// The result document of a finished (or stopped) run.
pub fn document(
    name: &str,
    started: chrono::DateTime<chrono::Utc>,
    config: std::collections::BTreeMap<String, String>,
    env: Env,
    mut outcome: Outcome,
) -> ResultDoc {
    if env.preflight_warned() {
        for r in &mut outcome.runs {
            r.flags.push(Flag::Preflight.name().into());
        }
    }
    let secs = chrono::SecondsFormat::Secs;
    ResultDoc {
        schema: result::SCHEMA.into(),
        name: name.to_string(),
        started_utc: started.to_rfc3339_opts(secs, true),
        finished_utc: chrono::Utc::now().to_rfc3339_opts(secs, true),
        interrupted: outcome.interrupted,
        config,
        env,
        rounds: outcome.runs.iter().map(|r| r.round + 1).max().unwrap_or(1),
        ratios: crate::ratio::path_ratios(&outcome.runs),
        spreads: crate::ratio::spreads(&outcome.runs),
        runs: outcome.runs,
        failure: outcome.failure,
    }
}

/// Writes a run's interval histograms as `<workload>-<path>.hlog` in the
/// result directory (`<workload>-<path>-r<round>.hlog` in a run of several
/// rounds) and names the file in the run (nothing when it has none).
pub fn keep_hlog(
    dir: &Path,
    name: &str,
    run: &mut Run,
    rounds: u32,
    hists: &[hdrhistogram::Histogram<u64>],
    t0_wall: SystemTime,
) -> Result<()> {
    if hists.is_empty() {
        return Ok(());
    }
    result::ensure_dir(dir)?;
    let (w, path, r) = (run.workload, run.path, run.round);
    let (file, of) = if rounds > 1 {
        (format!("{w}-{path}-r{r}.hlog"), format!(", round {r}"))
    } else {
        (format!("{w}-{path}.hlog"), String::new())
    };
    result::write_hlog(
        &dir.join(&file),
        hists,
        t0_wall,
        &format!("bypass {w} over the {path} path{of}, {name}"),
    )?;
    run.hlog = Some(file);
    Ok(())
}

/// Writes `result.json` and the human report of a result directory.
pub fn write_doc(dir: &Path, doc: &ResultDoc) -> Result<()> {
    result::ensure_dir(dir)?;
    std::fs::write(dir.join("result.json"), serde_json::to_vec_pretty(doc)?)
        .with_context(|| format!("writing {}", dir.join("result.json").display()))?;
    write_report(dir, doc)?;
    Ok(())
}

/// Writes the plots and `summary.md` of a result directory; returns the summary.
pub fn write_report(dir: &Path, doc: &ResultDoc) -> Result<String> {
    let names = crate::report::names(dir, crate::report::plots(dir, doc));
    let s = crate::summary::summary(doc, &names);
    std::fs::write(dir.join("summary.md"), &s)
        .with_context(|| format!("writing {}", dir.join("summary.md").display()))?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runner that measures nothing: it hands out empty runs and stops
    /// (or is interrupted) where told.
    struct Script {
        stop_at: Option<usize>,
        interrupt_at: Option<usize>,
        seen: Vec<(Workload, DataPath, usize)>,
    }

    impl Runner for Script {
        fn run_one(&mut self, p: Planned, i: usize) -> Result<Step> {
            let (w, path) = (p.workload, p.path);
            self.seen.push((w, path, i));
            if self.stop_at == Some(i) {
                return Ok(Step::Stop(Failure {
                    message: "gone".into(),
                    ..Failure::default()
                }));
            }
            let mut run = crate::result::tests::sample_run(1.0);
            (run.workload, run.path) = (w, path);
            if self.interrupt_at == Some(i) {
                run.flags.push(Flag::Interrupted.name().into());
            }
            Ok(Step::Done(Box::new(Measured {
                run,
                hists: Vec::new(),
                t0_wall: SystemTime::now(),
                attach: path.server_bypass().then(|| AttachInfo {
                    xdp_mode: "native".into(),
                    zero_copy: false,
                    native_error: None,
                }),
            })))
        }
    }

    fn script(stop_at: Option<usize>, interrupt_at: Option<usize>) -> Script {
        Script {
            stop_at,
            interrupt_at,
            seen: Vec::new(),
        }
    }

    #[test]
    fn every_workload_goes_over_every_path_kernel_first_and_attach_is_recorded() {
        let both = PathSet::of(&[crate::datapath::PathItem::Both]);
        let plan = plan(&[Workload::Rr, Workload::Crr], &both, 1);
        assert_eq!(plan.len(), 8);
        assert_eq!(plan[0].path, DataPath::Kernel);
        assert_eq!(
            (plan[4].workload, plan[4].path),
            (Workload::Crr, DataPath::Kernel)
        );
        let dir = tempfile::tempdir().unwrap();
        let mut r = script(None, None);
        let out = each_run(&plan, dir.path(), "t", &AtomicBool::new(false), &mut r).unwrap();
        assert_eq!(out.runs.len(), 8);
        assert!(!out.interrupted && out.failure.is_none());
        assert_eq!(
            r.seen.last(),
            Some(&(Workload::Crr, DataPath::BypassBoth, 7))
        );
        for run in &out.runs {
            let has = run.params.get("xdp_mode").map(String::as_str);
            assert_eq!(
                has,
                run.path.server_bypass().then_some("native"),
                "{}",
                run.path
            );
        }
        assert_eq!(out.attach.unwrap().xdp_mode, "native");
    }

    #[test]
    fn a_stop_an_interrupted_run_and_a_set_interrupt_end_the_loop() {
        let both = PathSet::of(&[crate::datapath::PathItem::Both]);
        let plan = plan(&[Workload::Rr], &both, 1);
        let dir = tempfile::tempdir().unwrap();
        let flag = AtomicBool::new(false);
        let out = each_run(&plan, dir.path(), "t", &flag, &mut script(Some(2), None)).unwrap();
        assert_eq!(out.runs.len(), 2);
        assert_eq!(out.failure.unwrap().message, "gone");
        let out = each_run(&plan, dir.path(), "t", &flag, &mut script(None, Some(1))).unwrap();
        assert_eq!((out.runs.len(), out.interrupted), (2, true));
        flag.store(true, Ordering::Relaxed);
        let mut r = script(None, None);
        let out = each_run(&plan, dir.path(), "t", &flag, &mut r).unwrap();
        assert_eq!((out.runs.len(), out.interrupted), (0, true));
        assert!(r.seen.is_empty());
    }

    #[test]
    fn rounds_rotate_the_order_so_each_path_takes_each_position_once() {
        let both = PathSet::of(&[crate::datapath::PathItem::Both]);
        let plan = plan(&[Workload::Rr, Workload::Crr], &both, 4);
        assert_eq!(plan.len(), 2 * 4 * 4);
        // workload by workload: every round of rr before crr's first
        assert!(plan[..16].iter().all(|p| p.workload == Workload::Rr));
        for w in plan.chunks(16) {
            for (r, round) in w.chunks(4).enumerate() {
                assert!(round.iter().all(|p| p.round == r as u32));
                let mut paths: Vec<DataPath> = round.iter().map(|p| p.path).collect();
                assert_eq!(paths[0], both.paths()[r], "round {r} starts one path later");
                paths.sort();
                assert_eq!(paths, both.paths(), "each path once a round");
            }
            for pos in 0..4 {
                let mut at: Vec<DataPath> = w.chunks(4).map(|round| round[pos].path).collect();
                at.sort();
                assert_eq!(at, both.paths(), "position {pos} sees every path");
            }
        }
        // the loop tags runs with their round and names hlogs by it
        let dir = tempfile::tempdir().unwrap();
        let mut r = script(None, None);
        let out = each_run(&plan[..8], dir.path(), "t", &AtomicBool::new(false), &mut r).unwrap();
        let rounds: Vec<u32> = out.runs.iter().map(|r| r.round).collect();
        assert_eq!(rounds, [0, 0, 0, 0, 1, 1, 1, 1]);
    }
}
