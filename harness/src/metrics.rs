//! Measurement: the run's time window, per-thread recorders (HdrHistogram
//! latency with ns resolution, per-second intervals), CPU time of threads and
//! of CPUs (/proc/stat, for softirq), and kernel protocol counters.

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;

/// Highest latency the histograms hold: 60 s in ns (higher values saturate).
const MAX_LATENCY_NS: u64 = 60_000_000_000;
/// Most intervals a recorder keeps (later events go to the last one).
const MAX_INTERVALS: usize = 24 * 3600;
/// Length of one interval sample.
pub const INTERVAL: Duration = Duration::from_secs(1);

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("static histogram bounds are valid")
}

/// The measurement window shared by every thread of a run: load starts at
/// `start`, is measured from `t0` (after the warm-up) to `t_end`.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub start: Instant,
    pub t0: Instant,
    pub t_end: Instant,
}

impl Window {
    pub fn new(settle: Duration, warmup: Duration, duration: Duration) -> Window {
        let start = Instant::now() + settle;
        let t0 = start + warmup;
        Window {
            start,
            t0,
            t_end: t0 + duration,
        }
    }

    /// A window that never ends (for `bypass serve`).
    pub fn open_ended() -> Window {
        let now = Instant::now();
        Window {
            start: now,
            t0: now,
            t_end: now + Duration::from_secs(100 * 365 * 24 * 3600),
        }
    }

    pub fn n_intervals(&self) -> usize {
        let d = self.t_end.saturating_duration_since(self.t0);
        (d.as_nanos().div_ceil(INTERVAL.as_nanos())).max(1) as usize
    }

    /// How long a loop may sleep at `now`: `cap`, cut short at the
    /// window's next edge, so that CPU time is sampled on time.
    pub fn wait_at_most(&self, now: Instant, cap: Duration) -> Duration {
        [self.t0, self.t_end]
            .into_iter()
            .filter(|edge| *edge > now)
            .fold(cap, |w, edge| w.min(edge - now))
    }

    pub fn measuring(&self, now: Instant) -> bool {
        now >= self.t0 && now < self.t_end
    }
}

/// One interval's counts.
#[derive(Clone, Debug)]
pub struct IntervalRec {
    pub ops: u64,
    pub bytes: u64,
    pub errors: u64,
    pub hist: Histogram<u64>,
}

/// What one thread measured inside the window.
#[derive(Clone, Debug)]
pub struct Recorder {
    window: Window,
    max_intervals: usize,
    pub hist: Histogram<u64>,
    pub intervals: Vec<IntervalRec>,
}

impl Recorder {
    /// Intervals are allocated as time reaches them, so an open-ended
    /// window (a server that runs until stopped) costs nothing up front.
    pub fn new(window: Window) -> Recorder {
        Recorder {
            window,
            max_intervals: window.n_intervals().min(MAX_INTERVALS),
            hist: new_histogram(),
            intervals: Vec::new(),
        }
    }

    /// A recorder made of measurements taken elsewhere (another host's):
    /// its intervals count from `window.t0`.
    pub fn from_parts(
        window: Window,
        hist: Histogram<u64>,
        intervals: Vec<IntervalRec>,
    ) -> Recorder {
        Recorder {
            window,
            max_intervals: window.n_intervals().min(MAX_INTERVALS).max(intervals.len()),
            hist,
            intervals,
        }
    }

    fn empty_interval() -> IntervalRec {
        IntervalRec {
            ops: 0,
            bytes: 0,
            errors: 0,
            hist: new_histogram(),
        }
    }

    /// Interval index of `now`; events after the window go to the last
    /// interval (receivers see in-flight data arrive late), before it: none.
    fn index(&mut self, now: Instant) -> Option<usize> {
        if now < self.window.t0 {
            return None;
        }
        let i = (now.duration_since(self.window.t0).as_nanos() / INTERVAL.as_nanos()) as usize;
        let i = i.min(self.max_intervals - 1);
        while self.intervals.len() <= i {
            self.intervals.push(Self::empty_interval());
        }
        Some(i)
    }

    /// Records one completed operation at `now`.
    pub fn op(&mut self, now: Instant, latency: Option<Duration>, bytes: u64) {
        let Some(i) = self.index(now) else { return };
        let iv = &mut self.intervals[i];
        iv.ops += 1;
        iv.bytes += bytes;
        if let Some(l) = latency {
            let ns = (l.as_nanos() as u64).clamp(1, MAX_LATENCY_NS);
            self.hist.saturating_record(ns);
            iv.hist.saturating_record(ns);
        }
    }

    /// Records `n` operations of `bytes` in all, without latency (a batch of datagrams).
    pub fn ops(&mut self, now: Instant, n: u64, bytes: u64) {
        let Some(i) = self.index(now) else { return };
        self.intervals[i].ops += n;
        self.intervals[i].bytes += bytes;
    }

    /// Records bytes that are not whole operations (stream receive).
    pub fn bytes(&mut self, now: Instant, bytes: u64) {
        if let Some(i) = self.index(now) {
            self.intervals[i].bytes += bytes;
        }
    }

    pub fn error(&mut self, now: Instant) {
        if let Some(i) = self.index(now) {
            self.intervals[i].errors += 1;
        }
    }

    /// Adds another thread's recorder (same window).
    pub fn merge(&mut self, other: &Recorder) {
        let _ = self.hist.add(&other.hist);
        while self.intervals.len() < other.intervals.len() {
            self.intervals.push(Self::empty_interval());
        }
        for (a, b) in self.intervals.iter_mut().zip(&other.intervals) {
            a.ops += b.ops;
            a.bytes += b.bytes;
            a.errors += b.errors;
            let _ = a.hist.add(&b.hist);
        }
    }

    /// Makes the intervals cover exactly `measured`: quiet intervals at the
    /// end are added, intervals beyond it (an interrupted run) fold into the
    /// last one.
    pub fn fit_to(&mut self, measured: Duration) {
        let n = (measured.as_nanos().div_ceil(INTERVAL.as_nanos()) as usize).max(1);
        while self.intervals.len() < n {
            self.intervals.push(Self::empty_interval());
        }
        if n < self.intervals.len() {
            let tail: Vec<IntervalRec> = self.intervals.drain(n..).collect();
            let last = self.intervals.last_mut().expect("at least one interval");
            for t in tail {
                last.ops += t.ops;
                last.bytes += t.bytes;
                last.errors += t.errors;
                let _ = last.hist.add(&t.hist);
            }
        }
    }

    pub fn total_ops(&self) -> u64 {
        self.intervals.iter().map(|i| i.ops).sum()
    }
    pub fn total_bytes(&self) -> u64 {
        self.intervals.iter().map(|i| i.bytes).sum()
    }
    pub fn errors(&self) -> u64 {
        self.intervals.iter().map(|i| i.errors).sum()
    }
}

/// One thread's outcome, server or client; `C`: its counters.
#[derive(Debug)]
pub struct ThreadResult<C> {
    pub cpu_id: Option<usize>,
    pub counters: C,
    /// What it measured inside the window.
    pub recorder: Recorder,
    /// CPU time the thread used inside the window.
    pub cpu: ThreadTimes,
    /// Counters of the path's own making, reported as `<side>.<name>`.
    pub extra: std::collections::BTreeMap<String, u64>,
}

/// Every thread of a side, and their counters summed.
#[derive(Debug)]
pub struct Outcome<C> {
    pub threads: Vec<ThreadResult<C>>,
    pub counters: C,
}

// ---------------------------------------------------------------- CPU time

/// CPU time of the calling thread (user, system), from getrusage(RUSAGE_THREAD).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ThreadTimes {
    pub user: Duration,
    pub sys: Duration,
}

impl ThreadTimes {
    pub fn now() -> ThreadTimes {
        use nix::sys::resource::{getrusage, UsageWho};
        match getrusage(UsageWho::RUSAGE_THREAD) {
            Ok(u) => {
                let tv = |t: nix::sys::time::TimeVal| {
                    Duration::from_secs(t.tv_sec().max(0) as u64)
                        + Duration::from_micros(t.tv_usec().max(0) as u64)
                };
                ThreadTimes {
                    user: tv(u.user_time()),
                    sys: tv(u.system_time()),
                }
            }
            Err(_) => ThreadTimes::default(),
        }
    }

    pub fn since(&self, earlier: &ThreadTimes) -> ThreadTimes {
        ThreadTimes {
            user: self.user.saturating_sub(earlier.user),
            sys: self.sys.saturating_sub(earlier.sys),
        }
    }

    pub fn total(&self) -> Duration {
        self.user + self.sys
    }
}

/// Samples a thread's CPU time when it enters and leaves the window.
#[derive(Clone, Copy, Debug, Default)]
pub struct WindowCpu {
    at_t0: Option<ThreadTimes>,
    pub used: ThreadTimes,
    done: bool,
}

impl WindowCpu {
    /// Call on every loop iteration; cheap when nothing is due.
    pub fn tick(&mut self, w: &Window, now: Instant) {
        if self.done {
            return;
        }
        if self.at_t0.is_none() && now >= w.t0 {
            self.at_t0 = Some(ThreadTimes::now());
        }
        if now >= w.t_end {
            self.finish();
        }
    }

    /// Closes the window now (end of run or interruption).
    pub fn finish(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        if let Some(t0) = self.at_t0 {
            self.used = ThreadTimes::now().since(&t0);
        }
    }
}

/// Jiffies of one CPU from /proc/stat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CpuJiffies {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CpuJiffies {
    pub fn busy(&self) -> u64 {
        self.user + self.nice + self.system + self.irq + self.softirq
    }
    pub fn total(&self) -> u64 {
        self.busy() + self.idle + self.iowait + self.steal
    }
    /// The share of these CPUs' time the hypervisor gave to other guests
    /// (`steal`), in percent; None without any time.
    pub fn steal_pct(&self) -> Option<f64> {
        let t = self.total();
        (t > 0).then(|| 100.0 * self.steal as f64 / t as f64)
    }

    /// Both together (the CPUs of several hosts).
    pub fn plus(&self, o: &CpuJiffies) -> CpuJiffies {
        CpuJiffies {
            user: self.user + o.user,
            nice: self.nice + o.nice,
            system: self.system + o.system,
            idle: self.idle + o.idle,
            iowait: self.iowait + o.iowait,
            irq: self.irq + o.irq,
            softirq: self.softirq + o.softirq,
            steal: self.steal + o.steal,
        }
    }

    pub fn since(&self, e: &CpuJiffies) -> CpuJiffies {
        CpuJiffies {
            user: self.user.saturating_sub(e.user),
            nice: self.nice.saturating_sub(e.nice),
            system: self.system.saturating_sub(e.system),
            idle: self.idle.saturating_sub(e.idle),
            iowait: self.iowait.saturating_sub(e.iowait),
            irq: self.irq.saturating_sub(e.irq),
            softirq: self.softirq.saturating_sub(e.softirq),
            steal: self.steal.saturating_sub(e.steal),
        }
    }
}

/// Per-CPU jiffies, indexed by CPU number.
pub fn proc_stat() -> Result<BTreeMap<usize, CpuJiffies>> {
    let s = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    Ok(parse_proc_stat(&s))
}

pub fn parse_proc_stat(s: &str) -> BTreeMap<usize, CpuJiffies> {
    let mut out = BTreeMap::new();
    for line in s.lines() {
        let mut it = line.split_whitespace();
        let Some(name) = it.next() else { continue };
        let Some(n) = name
            .strip_prefix("cpu")
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        let v: Vec<u64> = it.filter_map(|x| x.parse().ok()).collect();
        let g = |i: usize| v.get(i).copied().unwrap_or(0);
        out.insert(
            n,
            CpuJiffies {
                user: g(0),
                nice: g(1),
                system: g(2),
                idle: g(3),
                iowait: g(4),
                irq: g(5),
                softirq: g(6),
                steal: g(7),
            },
        );
    }
    out
}

/// Length of one jiffy (USER_HZ).
pub fn jiffy() -> Duration {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|&h| h > 0)
        .unwrap_or(100);
    Duration::from_nanos(1_000_000_000 / hz as u64)
}

/// Sum of the deltas of a set of CPUs.
/// The pids of the kernel's softirq threads (`ksoftirqd/N`) of `cpus`.
pub fn ksoftirqd_pids(cpus: &[usize]) -> Vec<u32> {
    let wanted: Vec<String> = cpus.iter().map(|c| format!("ksoftirqd/{c}")).collect();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| wanted.iter().any(|w| w == c.trim()))
        })
        .collect()
}

/// The run time of these threads together, from /proc/PID/schedstat (its
/// first field: time on the CPU in ns, exact, not sampled by ticks).
pub fn run_time(pids: &[u32]) -> Duration {
    let ns: u64 = pids
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(ns)
}

pub fn cpus_delta(
    before: &BTreeMap<usize, CpuJiffies>,
    after: &BTreeMap<usize, CpuJiffies>,
    cpus: &[usize],
) -> CpuJiffies {
    let mut sum = CpuJiffies::default();
    for c in cpus {
        if let (Some(a), Some(b)) = (after.get(c), before.get(c)) {
            let d = a.since(b);
            sum.user += d.user;
            sum.nice += d.nice;
            sum.system += d.system;
            sum.idle += d.idle;
            sum.iowait += d.iowait;
            sum.irq += d.irq;
            sum.softirq += d.softirq;
            sum.steal += d.steal;
        }
    }
    sum
}

// ---------------------------------------------------------------- kernel counters

/// The kernel's protocol counters of the calling thread's network namespace
/// (/proc/thread-self/net/snmp and netstat), as "Tcp.InSegs" -> value.
pub fn net_counters() -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for f in ["snmp", "netstat"] {
        if let Ok(s) = fs::read_to_string(format!("/proc/thread-self/net/{f}")) {
            parse_snmp(&s, &mut out);
        }
    }
    out
}

/// Parses the header/value line pairs of /proc/net/snmp and /proc/net/netstat.
pub fn parse_snmp(s: &str, out: &mut BTreeMap<String, u64>) {
    let lines: Vec<&str> = s.lines().collect();
    for pair in lines.chunks(2) {
        let [head, vals] = pair else { continue };
        let (Some((proto, names)), Some((_, values))) =
            (head.split_once(':'), vals.split_once(':'))
        else {
            continue;
        };
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(v) = v.parse::<u64>() {
                out.insert(format!("{proto}.{n}"), v);
            }
        }
    }
}

/// Counters that changed between two samples, and by how much.
pub fn counter_deltas(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, a)| {
            let d = a.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

// ---------------------------------------------------------------- steadiness

/// How steady the per-interval rate was.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Steadiness {
    /// Coefficient of variation of the per-interval rate (0 = perfectly steady).
    pub cv: f64,
    /// Correlation of the cumulative count with time, as neper reports it
    /// (1 = the count grew in a straight line).
    pub correlation: f64,
}

/// `rates`: per-interval rates (ops/s), full intervals only.
pub fn steadiness(rates: &[f64]) -> Steadiness {
    let n = rates.len();
    if n < 2 {
        return Steadiness {
            cv: 0.0,
            correlation: 1.0,
        };
    }
    let mean = rates.iter().sum::<f64>() / n as f64;
    let var = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n as f64;
    let cv = if mean > 0.0 { var.sqrt() / mean } else { 0.0 };
    // correlation of (t, cumulative count)
    let mut cum = 0.0;
    let pts: Vec<(f64, f64)> = rates
        .iter()
        .enumerate()
        .map(|(i, r)| {
            cum += r;
            ((i + 1) as f64, cum)
        })
        .collect();
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n as f64;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n as f64;
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let syy: f64 = pts.iter().map(|p| (p.1 - my).powi(2)).sum();
    let correlation = if sxx > 0.0 && syy > 0.0 {
        sxy / (sxx.sqrt() * syy.sqrt())
    } else {
        1.0
    };
    Steadiness { cv, correlation }
}

/// Kernel counters of a namespace (or of this one).
pub fn ns_counters(ns: Option<&str>) -> BTreeMap<String, u64> {
    crate::lab::in_ns_opt(ns, net_counters).unwrap_or_default()
}

/// What one side's machine did in the window: its CPUs' jiffies (summed),
/// its CPUs' softirq threads' run time, and its namespace's kernel counters.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct SideSample {
    pub cpus: CpuJiffies,
    pub ksoftirqd_us: u64,
    pub counters: BTreeMap<String, u64>,
}

impl SideSample {
    /// Adds another host's sample (several client hosts make one side).
    pub fn add(&mut self, o: &SideSample) {
        self.cpus = self.cpus.plus(&o.cpus);
        self.ksoftirqd_us += o.ksoftirqd_us;
        for (k, v) in &o.counters {
            *self.counters.entry(k.clone()).or_insert(0) += v;
        }
    }
}

/// Samples one side's machine at the window's edges.
pub struct Sampler {
    cpus: Vec<usize>,
    ns: Option<String>,
    ksoftirqd: Vec<u32>,
    ksoftirqd0: Duration,
    stat0: BTreeMap<usize, CpuJiffies>,
    counters0: BTreeMap<String, u64>,
}

impl Sampler {
    pub fn begin(cpus: &[usize], ns: Option<&str>) -> Result<Sampler> {
        let ksoftirqd = ksoftirqd_pids(cpus);
        Ok(Sampler {
            cpus: cpus.to_vec(),
            ns: ns.map(str::to_string),
            ksoftirqd0: run_time(&ksoftirqd),
            ksoftirqd,
            stat0: proc_stat()?,
            counters0: ns_counters(ns),
        })
    }

    pub fn end(self) -> Result<SideSample> {
        let stat1 = proc_stat()?;
        let ksoftirqd = run_time(&self.ksoftirqd).saturating_sub(self.ksoftirqd0);
        let counters1 = ns_counters(self.ns.as_deref());
        Ok(SideSample {
            cpus: cpus_delta(&self.stat0, &stat1, &self.cpus),
            ksoftirqd_us: ksoftirqd.as_micros() as u64,
            counters: counter_deltas(&self.counters0, &counters1)
                .into_iter()
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_counts_only_inside_the_window_and_sums_match() {
        let w = Window::new(
            Duration::ZERO,
            Duration::from_millis(0),
            Duration::from_secs(3),
        );
        let mut r = Recorder::new(w);
        assert_eq!(r.intervals.len(), 0);
        r.op(
            w.t0 - Duration::from_millis(1),
            Some(Duration::from_micros(5)),
            1,
        );
        r.op(w.t0, Some(Duration::from_micros(10)), 1);
        r.op(
            w.t0 + Duration::from_millis(1500),
            Some(Duration::from_micros(20)),
            1,
        );
        r.op(w.t_end + Duration::from_secs(5), None, 7);
        assert_eq!(r.total_ops(), 3);
        assert_eq!(r.intervals[0].ops, 1);
        assert_eq!(r.intervals[1].ops, 1);
        assert_eq!(r.intervals[2].ops, 1);
        assert_eq!(r.hist.len(), 2);
        assert_eq!(r.total_bytes(), 9);
        let mut m = Recorder::new(w);
        m.merge(&r);
        m.merge(&r);
        assert_eq!(m.total_ops(), 6);
        m.fit_to(Duration::from_millis(900));
        assert_eq!(m.intervals.len(), 1);
        assert_eq!(m.total_ops(), 6);
        let mut q = Recorder::new(w);
        q.fit_to(Duration::from_secs(3));
        assert_eq!(q.intervals.len(), 3);
        let open = Recorder::new(Window::open_ended());
        assert!(open.intervals.is_empty());
    }

    #[test]
    fn proc_stat_and_snmp_parse() {
        let s =
            "cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 10 0 20 30 0 1 2 0 0 0\ncpu1 1 1 1 1 1 1 1 1\nintr 5\n";
        let m = parse_proc_stat(s);
        assert_eq!(m.len(), 2);
        assert_eq!(m[&0].softirq, 2);
        assert_eq!(m[&0].busy(), 33);
        // steal is the 8th field: 1 jiffy of cpu1's 8, 12.5%
        assert_eq!(m[&1].steal, 1);
        assert_eq!(m[&1].steal_pct(), Some(12.5));
        assert_eq!(m[&0].steal_pct(), Some(0.0));
        assert_eq!(CpuJiffies::default().steal_pct(), None);
        // two hosts' CPUs together: 1 of 71 jiffies
        let both = m[&0].since(&CpuJiffies::default()).plus(&m[&1]);
        assert!((both.steal_pct().unwrap() - 100.0 / 71.0).abs() < 1e-9);
        let mut c = BTreeMap::new();
        parse_snmp(
            "Tcp: RtoAlgorithm InSegs\nTcp: 1 42\nUdp: InDatagrams\nUdp: 7\n",
            &mut c,
        );
        assert_eq!(c["Tcp.InSegs"], 42);
        assert_eq!(c["Udp.InDatagrams"], 7);
        let mut after = c.clone();
        after.insert("Tcp.InSegs".into(), 50);
        let d = counter_deltas(&c, &after);
        assert_eq!(d.len(), 1);
        assert_eq!(d["Tcp.InSegs"], 8);
    }

    #[test]
    fn steadiness_tells_steady_from_unsteady() {
        let s = steadiness(&[100.0, 101.0, 99.0, 100.0]);
        assert!(s.cv < 0.02 && s.correlation > 0.99);
        let u = steadiness(&[100.0, 10.0, 200.0, 5.0]);
        assert!(u.cv > 0.5);
    }

    #[test]
    fn thread_times_advance_with_work() {
        let a = ThreadTimes::now();
        let t = Instant::now();
        let mut x = 0u64;
        // spin until the thread's own CPU clock moves (bounded in time)
        while ThreadTimes::now().since(&a).total() < Duration::from_millis(5)
            && t.elapsed() < Duration::from_secs(10)
        {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(ThreadTimes::now().since(&a).total() >= Duration::from_millis(5));
    }
}
