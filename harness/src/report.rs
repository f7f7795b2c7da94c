//! The plots of a result directory (SVG, plotters): the latency percentile
//! spectrum per workload with every path on one chart (one line per round,
//! a colour per path), throughput over time, and CPU per operation side by
//! side (the median of the rounds, each round a point). Built from the
//! files alone, so `bypass report DIR` can rebuild them.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::result::{ResultDoc, Run};

const W: u32 = 900;
const H: u32 = 520;

fn color(i: usize) -> RGBColor {
    [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
    ][i % 5]
}

/// The whole-run histogram of a run, merged from its interval log.
pub fn read_hlog(path: &Path) -> Result<Histogram<u64>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut total = crate::metrics::new_histogram();
    let mut de = Deserializer::new();
    for entry in IntervalLogIterator::new(&bytes) {
        let entry = entry.map_err(|e| anyhow!("{}: bad interval log: {e:?}", path.display()))?;
        if let LogEntry::Interval(iv) = entry {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(iv.encoded_histogram())
                .context("interval log: base64")?;
            let h: Histogram<u64> = de
                .deserialize(&mut raw.as_slice())
                .map_err(|e| anyhow!("interval log: {e:?}"))?;
            total.add(&h).map_err(|e| anyhow!("interval log: {e:?}"))?;
        }
    }
    Ok(total)
}

/// Percentiles of the spectrum plot: x = 1/(1-q) on a log axis, as
/// HdrHistogram's plots do, so the tail gets the room it deserves.
const QUANTILES: [f64; 13] = [
    0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99995, 0.99999, 0.999999,
];

fn spectrum(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    QUANTILES
        .iter()
        .filter(|q| h.len() as f64 * (1.0 - **q) >= 1.0 || **q == 0.0)
        .map(|q| (1.0 / (1.0 - q), h.value_at_quantile(*q) as f64 / 1000.0))
        .collect()
}

fn latency_plot(dir: &Path, doc: &ResultDoc, workload: &str) -> Result<Option<PathBuf>> {
    let runs: Vec<&Run> = doc
        .runs
        .iter()
        .filter(|r| r.workload.name() == workload && r.hlog.is_some())
        .collect();
    let mut paths: Vec<crate::datapath::DataPath> = runs.iter().map(|r| r.path).collect();
    paths.sort();
    paths.dedup();
    // (path's colour, label for the first round of a path, points)
    let mut series = Vec::new();
    for r in &runs {
        let h = read_hlog(&dir.join(r.hlog.as_deref().unwrap_or_default()))?;
        if !h.is_empty() {
            let ci = paths.iter().position(|p| *p == r.path).unwrap_or(0);
            let first = !series.iter().any(|(c, _, _)| *c == ci);
            series.push((ci, first.then(|| r.path.to_string()), spectrum(&h)));
        }
    }
    if series.is_empty() {
        return Ok(None);
    }
    let name = format!("latency-{workload}.svg");
    let path = dir.join(&name);
    let target = path.clone();
    let xmax = series
        .iter()
        .flat_map(|(_, _, s)| s.iter().map(|p| p.0))
        .fold(10.0, f64::max);
    let ymax = series
        .iter()
        .flat_map(|(_, _, s)| s.iter().map(|p| p.1))
        .fold(1.0, f64::max);
    let rounds = if doc.rounds > 1 {
        format!(" ({} rounds, a line each)", doc.rounds)
    } else {
        String::new()
    };
    let root = SVGBackend::new(&target, (W, H)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{workload}: latency by percentile{rounds}"),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0..xmax * 1.5).log_scale(), (0.1..ymax * 1.5).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .x_label_formatter(&|x| {
            let p = format!("{:.4}", 100.0 * (1.0 - 1.0 / x));
            format!("{}%", p.trim_end_matches('0').trim_end_matches('.'))
        })
        .draw()?;
    let width = if doc.rounds > 1 { 1 } else { 2 };
    for (ci, label, pts) in &series {
        let c = color(*ci);
        let drawn =
            chart.draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(width)))?;
        if let Some(label) = label {
            drawn.label(label.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
            });
        }
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    root.present()?;
    Ok(Some(path))
}

fn throughput_plot(dir: &Path, doc: &ResultDoc) -> Result<Option<PathBuf>> {
    if doc.runs.is_empty() {
        return Ok(None);
    }
    let path = dir.join("throughput.svg");
    let target = path.clone();
    let mut panels: Vec<Vec<&Run>> = Vec::new();
    for r in &doc.runs {
        match panels
            .iter_mut()
            .find(|p| p[0].workload == r.workload && p[0].path == r.path)
        {
            Some(p) => p.push(r),
            None => panels.push(vec![r]),
        }
    }
    let n = panels.len() as u32;
    let cols = 2u32.min(n);
    let rows = n.div_ceil(cols);
    let root = SVGBackend::new(&target, (W, 260 * rows)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((rows as usize, cols as usize));
    for (i, (rs, area)) in panels.iter().zip(areas.iter()).enumerate() {
        let r = rs[0];
        let ivs = || rs.iter().flat_map(|r| r.intervals.iter());
        let tmax = ivs().map(|iv| iv.t_s + iv.dur_s).fold(1.0, f64::max);
        let ymax = ivs().map(|iv| iv.ops_per_s).fold(1.0, f64::max);
        let mut chart = ChartBuilder::on(area)
            .caption(
                if rs.len() > 1 {
                    format!("{} / {}: ops/s, {} rounds", r.workload, r.path, rs.len())
                } else {
                    format!("{} / {}: ops/s", r.workload, r.path)
                },
                ("sans-serif", 15),
            )
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..tmax, 0.0..ymax * 1.2)?;
        chart
            .configure_mesh()
            .x_desc("s")
            .y_label_formatter(&|y| crate::summary::si(*y))
            .draw()?;
        for r in rs {
            chart.draw_series(LineSeries::new(
                r.intervals
                    .iter()
                    .map(|iv| (iv.t_s + iv.dur_s / 2.0, iv.ops_per_s)),
                color(i).stroke_width(if rs.len() > 1 { 1 } else { 2 }),
            ))?;
        }
    }
    root.present()?;
    Ok(Some(path))
}

fn cpu_plot(dir: &Path, doc: &ResultDoc) -> Result<Option<PathBuf>> {
    // every valid round's value: the bar is their median, each a point
    let points: Vec<(String, String, f64)> = doc
        .runs
        .iter()
        .filter(|r| !r.invalid())
        .filter_map(|r| {
            r.cpu
                .server_us_per_op
                .map(|v| (r.workload.to_string(), r.path.to_string(), v))
        })
        .collect();
    let mut bars: Vec<(String, String, f64)> = Vec::new();
    for (w, p, _) in &points {
        if !bars.iter().any(|b| &b.0 == w && &b.1 == p) {
            let vs: Vec<f64> = points
                .iter()
                .filter(|x| &x.0 == w && &x.1 == p)
                .map(|x| x.2)
                .collect();
            let m = crate::stats::median(&vs).unwrap_or(0.0);
            bars.push((w.clone(), p.clone(), m));
        }
    }
    if bars.is_empty() {
        return Ok(None);
    }
    let path = dir.join("cpu.svg");
    let target = path.clone();
    let mut workloads: Vec<String> = Vec::new();
    let mut paths: Vec<String> = Vec::new();
    for (w, p, _) in &bars {
        if !workloads.contains(w) {
            workloads.push(w.clone());
        }
        if !paths.contains(p) {
            paths.push(p.clone());
        }
    }
    let ymax = points.iter().map(|b| b.2).fold(0.1, f64::max);
    let root = SVGBackend::new(&target, (W, H)).into_drawing_area();
    root.fill(&WHITE)?;
    let nw = workloads.len() as f64;
    let caption = if doc.rounds > 1 {
        format!(
            "server CPU per operation (µs): median of {} rounds, a dot each",
            doc.rounds
        )
    } else {
        "server CPU per operation (µs)".to_string()
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..nw, 0.0..ymax * 1.2)?;
    let wl = workloads.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(workloads.len() * 2 + 1)
        .x_label_formatter(&move |x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 && i < wl.len() {
                wl[i].clone()
            } else {
                String::new()
            }
        })
        .y_desc("µs per operation")
        .draw()?;
    let width = 0.8 / paths.len() as f64;
    for (pi, p) in paths.iter().enumerate() {
        let c = color(pi);
        chart
            .draw_series(bars.iter().filter(|b| &b.1 == p).map(|(w, _, v)| {
                let wi = workloads.iter().position(|x| x == w).unwrap_or(0) as f64;
                let x0 = wi + 0.1 + width * pi as f64;
                Rectangle::new([(x0, 0.0), (x0 + width * 0.95, *v)], c.filled())
            }))?
            .label(p.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], c.filled()));
        if doc.rounds > 1 {
            chart.draw_series(points.iter().filter(|b| &b.1 == p).map(|(w, _, v)| {
                let wi = workloads.iter().position(|x| x == w).unwrap_or(0) as f64;
                let x = wi + 0.1 + width * (pi as f64 + 0.475);
                Circle::new((x, *v), 3, BLACK.filled())
            }))?;
        }
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    root.present()?;
    Ok(Some(path))
}

/// The file names of the plots drawn; a plot that could not be drawn is
/// warned of and left out (it must not lose the measurements).
pub fn names(dir: &Path, plots: Result<Vec<PathBuf>>) -> Vec<String> {
    match plots {
        Ok(p) => p
            .iter()
            .filter_map(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
            .collect(),
        Err(e) => {
            tracing::warn!("plots of {}: {e:#}", dir.display());
            Vec::new()
        }
    }
}

/// Writes every plot of a result directory; returns the files written.
pub fn plots(dir: &Path, doc: &ResultDoc) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut workloads: Vec<&str> = doc.runs.iter().map(|r| r.workload.name()).collect();
    workloads.dedup();
    for w in workloads {
        out.extend(latency_plot(dir, doc, w)?);
    }
    out.extend(throughput_plot(dir, doc)?);
    out.extend(cpu_plot(dir, doc)?);
    Ok(out)
}

/// One curve of a sweep chart: (x, median, interval low, interval high).
type Curve = (String, Vec<(f64, f64, f64, f64)>);

/// One panel of a sweep chart: a line per path, its 95% interval as a band.
fn curve_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    curves: &[Curve],
) -> Result<()> {
    let pts = || curves.iter().flat_map(|(_, c)| c.iter());
    let xmin = pts().map(|p| p.0).fold(f64::INFINITY, f64::min).max(1e-9);
    let xmax = pts().map(|p| p.0).fold(0.0, f64::max).max(xmin * 2.0);
    // log y, from the medians: a band (few rounds make wide ones) is
    // clipped to a decade either side of them
    let mmin = pts()
        .map(|p| p.1)
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let mmax = pts().map(|p| p.1).fold(0.0, f64::max);
    if !(mmin.is_finite() && mmax > 0.0) {
        return Ok(());
    }
    let (ylo, yhi) = (
        pts()
            .map(|p| p.2)
            .filter(|v| *v > 0.0)
            .fold(mmin, f64::min)
            .max(mmin / 10.0),
        pts().map(|p| p.3).fold(mmax, f64::max).min(mmax * 10.0),
    );
    let clip = |v: f64| v.clamp(ylo, yhi);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (xmin / 1.2..xmax * 1.2).log_scale(),
            (ylo / 1.3..yhi * 1.3).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(6)
        .x_label_formatter(&|x| crate::summary::si(*x))
        .y_label_formatter(&|y| crate::summary::si(*y))
        .draw()?;
    for (i, (label, c)) in curves.iter().enumerate() {
        let col = color(i);
        let mut band: Vec<(f64, f64)> = c.iter().map(|p| (p.0, clip(p.3))).collect();
        band.extend(c.iter().rev().map(|p| (p.0, clip(p.2))));
        chart.draw_series(std::iter::once(Polygon::new(band, col.mix(0.18).filled())))?;
        chart
            .draw_series(LineSeries::new(
                c.iter().map(|p| (p.0, clip(p.1))),
                col.stroke_width(2),
            ))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2)));
        chart.draw_series(
            c.iter()
                .map(|p| Circle::new((p.0, clip(p.1)), 3, col.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    Ok(())
}

/// The plots of a sweep: per workload, latency (p50, p99) against the
/// offered load, or throughput and p99 against cores or message size; a
/// curve per path with its 95% interval as a band.
pub fn sweep_plots(dir: &Path, doc: &crate::curve::SweepDoc) -> Result<Vec<PathBuf>> {
    use crate::curve::{Fig, Point, SweepParam};
    let mut out = Vec::new();
    let mut ws: Vec<crate::workload::Workload> = Vec::new();
    for p in &doc.points {
        if !ws.contains(&p.workload) {
            ws.push(p.workload);
        }
    }
    for w in ws {
        let mut paths: Vec<crate::datapath::DataPath> = doc
            .points
            .iter()
            .filter(|p| p.workload == w)
            .map(|p| p.path)
            .collect();
        paths.sort();
        paths.dedup();
        let curves = |f: &dyn Fn(&Point) -> Option<&Fig>| -> Vec<Curve> {
            paths
                .iter()
                .map(|path| {
                    let c = doc
                        .points
                        .iter()
                        .filter(|p| p.workload == w && p.path == *path)
                        .filter_map(|p| {
                            f(p).map(|v| {
                                (
                                    p.value,
                                    v.median,
                                    v.ci95_low.unwrap_or(v.median),
                                    v.ci95_high.unwrap_or(v.median),
                                )
                            })
                        })
                        .collect();
                    (path.to_string(), c)
                })
                .filter(|(_, c): &Curve| !c.is_empty())
                .collect()
        };
        let panels: Vec<(String, &str, Vec<Curve>)> = match doc.param {
            SweepParam::Rate => vec![
                (
                    format!("{w}: p50 latency"),
                    "µs",
                    curves(&|p| p.p50_us.as_ref()),
                ),
                (
                    format!("{w}: p99 latency"),
                    "µs",
                    curves(&|p| p.p99_us.as_ref()),
                ),
            ],
            SweepParam::Cores | SweepParam::Size => vec![
                (
                    format!("{w}: throughput"),
                    "operations/s",
                    curves(&|p| Some(&p.ops_per_s)),
                ),
                (
                    format!("{w}: p99 latency"),
                    "µs",
                    curves(&|p| p.p99_us.as_ref()),
                ),
            ],
        };
        let panels: Vec<_> = panels.into_iter().filter(|p| !p.2.is_empty()).collect();
        if panels.is_empty() {
            continue;
        }
        let path = dir.join(format!("sweep-{w}.svg"));
        let target = path.clone();
        let root =
            SVGBackend::new(&target, (W * panels.len() as u32 * 2 / 3, H)).into_drawing_area();
        root.fill(&WHITE)?;
        let areas = root.split_evenly((1, panels.len()));
        for ((title, y, c), area) in panels.iter().zip(areas.iter()) {
            curve_panel(area, title, doc.param.axis(), y, c)?;
        }
        root.present()?;
        out.push(path);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spectrum_is_monotonic_and_stops_where_samples_end() {
        let mut h = crate::metrics::new_histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let s = spectrum(&h);
        assert!(s.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        // 1000 samples: nothing beyond the 99.9th percentile
        assert!(s.last().unwrap().0 <= 1000.0 + 1e-6);
    }

    #[test]
    fn hlog_reads_back_as_the_merged_histogram() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.hlog");
        let mut a = crate::metrics::new_histogram();
        let mut b = crate::metrics::new_histogram();
        a.record(1000).unwrap();
        b.record(2000).unwrap();
        b.record(3000).unwrap();
        crate::result::write_hlog(&p, &[a, b], std::time::SystemTime::now(), "t").unwrap();
        let h = read_hlog(&p).unwrap();
        assert_eq!(h.len(), 3);
        assert_eq!(h.max(), h.highest_equivalent(3000));
    }
}
