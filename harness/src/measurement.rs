//! A measured (workload, path) and its conversion into the result's run
//! entry: figures per interval, CPU cost per operation, counters, loss and
//! the flags that say how far to trust them. Local runs and the controller
//! fill a [`Measurement`] from what their sides reported; [`Run::from`]
//! does the rest, the same way for both.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::datapath::DataPath;
use crate::metrics::{self, Recorder, SideSample, Steadiness, Window};
use crate::outcome::{ClientReport, ServerReport};
use crate::result::{Cpu, Flag, Interval, Latency, Run, ThreadCpu};
use crate::workload::{Workload, WorkloadSpec};

/// Above this share of steal time on the CPUs under test, a run is flagged
/// `cpu_stolen`: on a shared VM the hypervisor's pauses then weigh on the
/// CPU costs and the latency tail.
const STOLEN_PCT: f64 = 5.0;

/// Above this share of the CPUs under test going to work that is not the
/// run's (another run, a build), a run is flagged `foreign_load`: its
/// figures then measure a contended machine. Above the tick-sampling noise
/// of /proc/stat (one 10 ms tick in 100 for a 0.5 s window on one CPU).
const FOREIGN_PCT: f64 = 10.0;

/// What was asked of one (workload, path).
#[derive(Clone, Debug)]
pub struct RunSpec {
    pub load: WorkloadSpec,
    pub path: DataPath,
    pub server_cpus: Vec<usize>,
    pub client_cpus: Vec<usize>,
}

/// One (workload, path) as measured: both sides' reports and the machine
/// samples of the window.
pub struct Measurement<'a> {
    pub spec: RunSpec,
    /// The measuring side's recorder, merged over its threads
    /// ([`measuring_recorder`]).
    pub rec: &'a Recorder,
    pub measured: Duration,
    pub interrupted: bool,
    pub client: &'a ClientReport,
    /// None when the server is out of reach (`bypass serve` elsewhere).
    pub server: Option<&'a ServerReport>,
    pub server_sample: Option<&'a SideSample>,
    pub client_sample: &'a SideSample,
    /// The sides ran on CPUs (or hosts) of their own.
    pub disjoint: bool,
}

/// The recorder of the side that measures this workload, merged over threads.
pub fn measuring_recorder(
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

impl Measurement<'_> {
    fn secs(&self) -> f64 {
        self.measured.as_secs_f64()
    }

    fn local_server(&self) -> bool {
        self.server_sample.is_some()
    }

    /// Per-second samples; for the stream an operation is one message of
    /// `--size` bytes.
    fn intervals(&self) -> Vec<Interval> {
        let (w, secs) = (self.spec.load.workload, self.secs());
        let step = metrics::INTERVAL.as_secs_f64();
        let mut cum_bytes = 0u64;
        let mut out = Vec::new();
        for (i, iv) in self.rec.intervals.iter().enumerate() {
            let t_s = i as f64 * step;
            let dur_s = (secs - t_s).clamp(0.0, step);
            let ops = if w == Workload::Stream {
                let req = self.spec.load.messages.sizes.req.max(1) as u64;
                let before = cum_bytes / req;
                cum_bytes += iv.bytes;
                cum_bytes / req - before
            } else {
                iv.ops
            };
            let lat = |q: f64| {
                (!iv.hist.is_empty()).then(|| iv.hist.value_at_quantile(q) as f64 / 1000.0)
            };
            out.push(Interval {
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
        out
    }

    /// What each side cost: its threads' own CPU time (exact: getrusage
    /// scales to the scheduler's run time), which holds the softirq work
    /// done inside their system calls (on veth, a `sendto` runs the peer's
    /// receive), plus, when the side has CPUs of its own, the run time of
    /// those CPUs' softirq threads (ksoftirqd, exact from schedstat). Not
    /// /proc/stat: its busy and softirq times are sampled by the tick, which
    /// misses a thread that wakes for a few µs at a time, and its softirq
    /// time would count again what the threads' time already holds (this
    /// kernel has no IRQ time accounting).
    fn cpu(&self, ops: u64, bytes: u64) -> Cpu {
        let (s, c) = (self.server, self.client);
        let server_cpus = self.server_sample.map(|s| s.cpus).unwrap_or_default();
        let client_cpus = self.client_sample.cpus;
        let secs = self.secs();
        let local_server = self.local_server();
        let jiffy = metrics::jiffy().as_secs_f64() * 1e6;
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let mut threads = Vec::new();
        let mut server_thread_us = 0.0;
        for t in s.iter().flat_map(|s| &s.threads) {
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
        let per_op = |x: f64| (ops > 0).then(|| x / ops as f64);
        let util =
            |x: f64, n: usize| (secs > 0.0).then(|| 100.0 * x / (secs * 1e6 * n.max(1) as f64));
        let client_busy_pct = if client_cpus.total() > 0 {
            100.0 * client_cpus.busy() as f64 / client_cpus.total() as f64
        } else {
            0.0
        };
        let (server_ksoftirqd_us, client_ksoftirqd_us, accounting) = if self.disjoint {
            (
                self.server_sample.map_or(0.0, |s| s.ksoftirqd_us as f64),
                self.client_sample.ksoftirqd_us as f64,
                "threads+ksoftirqd",
            )
        } else {
            (0.0, 0.0, "threads")
        };
        let server_total = server_thread_us + server_ksoftirqd_us;
        let client_total = client_thread_us + client_ksoftirqd_us;
        let work_us = s.and_then(|s| {
            s.threads
                .iter()
                .filter_map(|t| t.extra.get("work_us"))
                .copied()
                .reduce(|a, b| a + b)
        });
        // what else ran on the CPUs under test: their busy time (tick
        // sampled, all processes) less the run's own (exact)
        let foreign = |busy: u64, own_us: f64, n: usize| {
            (secs > 0.0 && n > 0).then(|| {
                let other = (busy as f64 * jiffy - own_us).max(0.0);
                100.0 * other / (secs * 1e6 * n as f64)
            })
        };
        let (sc, cc) = (&self.spec.server_cpus, &self.spec.client_cpus);
        let same_cpus = {
            let (mut a, mut b) = (sc.clone(), cc.clone());
            a.sort();
            b.sort();
            a == b
        };
        let foreign_pct = if !local_server {
            foreign(
                client_cpus.busy(),
                client_thread_us + self.client_sample.ksoftirqd_us as f64,
                cc.len(),
            )
        } else if self.disjoint {
            foreign(
                server_cpus.busy() + client_cpus.busy(),
                server_total + client_total,
                sc.len() + cc.len(),
            )
        } else if same_cpus {
            // one set of CPUs for both sides: its ksoftirqd is the run's too
            foreign(
                client_cpus.busy(),
                server_thread_us + client_thread_us + self.client_sample.ksoftirqd_us as f64,
                cc.len(),
            )
        } else {
            None
        };
        Cpu {
            accounting: accounting.into(),
            foreign_pct,
            server_us_per_op: local_server.then(|| per_op(server_total)).flatten(),
            client_us_per_op: per_op(client_total),
            server_util_pct: local_server
                .then(|| util(server_total, self.spec.server_cpus.len()))
                .flatten(),
            client_util_pct: util(client_total, self.spec.client_cpus.len()),
            server_work_us_per_op: work_us.and_then(|w| per_op(w as f64)),
            server_ns_per_byte: (local_server
                && self.spec.load.workload.measured_at_server()
                && bytes > 0)
                .then(|| server_total * 1000.0 / bytes as f64),
            server_thread_us: local_server.then_some(server_thread_us),
            server_softirq_us: local_server.then_some(server_cpus.softirq as f64 * jiffy),
            server_ksoftirqd_us: local_server.then_some(server_ksoftirqd_us),
            client_ksoftirqd_us,
            client_thread_us,
            client_softirq_us: client_cpus.softirq as f64 * jiffy,
            client_cpus_busy_pct: client_busy_pct,
            server_steal_pct: self.server_sample.and_then(|_| server_cpus.steal_pct()),
            client_steal_pct: client_cpus.steal_pct(),
            server_cpus: self.spec.server_cpus.clone(),
            client_cpus: self.spec.client_cpus.clone(),
            threads,
        }
    }

    /// Both sides' counters as `client.*` / `server.*` (the path's own,
    /// summed over threads), and the kernel's of each side's namespace as
    /// `<side>.kernel.*`.
    fn counters(&self) -> BTreeMap<String, u64> {
        let mut counters: BTreeMap<String, u64> = BTreeMap::new();
        let mut put = |side: &str, v: serde_json::Value| {
            if let serde_json::Value::Object(m) = v {
                for (k, v) in m {
                    counters.insert(format!("{side}.{k}"), v.as_u64().unwrap_or(0));
                }
            }
        };
        put(
            "client",
            serde_json::to_value(&self.client.counters).unwrap_or_default(),
        );
        if let Some(s) = self.server {
            put(
                "server",
                serde_json::to_value(&s.counters).unwrap_or_default(),
            );
        }
        let extras = self
            .client
            .threads
            .iter()
            .map(|t| ("client", &t.extra))
            .chain(
                self.server
                    .iter()
                    .flat_map(|s| &s.threads)
                    .map(|t| ("server", &t.extra)),
            );
        for (side, extra) in extras {
            for (k, v) in extra {
                *counters.entry(format!("{side}.{k}")).or_insert(0) += v;
            }
        }
        for (k, v) in self
            .server_sample
            .map(|s| &s.counters)
            .into_iter()
            .flatten()
        {
            counters.insert(format!("server.kernel.{k}"), *v);
        }
        for (k, v) in &self.client_sample.counters {
            counters.insert(format!("client.kernel.{k}"), *v);
        }
        counters
    }

    /// udp-stream: measured datagrams sent but not received; udp-rr:
    /// requests without an answer in time.
    fn loss_pct(&self) -> Option<f64> {
        let c = &self.client.counters;
        match self.spec.load.workload {
            Workload::UdpStream => {
                let received = self.server.map_or(0, |s| s.counters.udp_measured_in);
                let sent = c.sent_measured;
                (self.local_server() && sent > 0)
                    .then(|| 100.0 * sent.saturating_sub(received) as f64 / sent as f64)
            }
            Workload::UdpRr => (c.sent > 0).then(|| 100.0 * c.udp_timeouts as f64 / c.sent as f64),
            _ => None,
        }
    }

    /// Errors inside the window: connect and I/O errors, protocol errors,
    /// stream bytes that failed verification, bad requests.
    fn errors(&self) -> u64 {
        let s = self.server.map(|s| &s.counters);
        self.client
            .threads
            .iter()
            .map(|t| t.recorder.errors())
            .sum::<u64>()
            + s.map_or(0, |s| s.stream_verify_errors + s.bad_requests)
            + self.client.counters.protocol_errors
    }

    /// Why a figure may not be trusted (see [`Flag`]).
    fn flags(&self, run: &Run, full_intervals: usize, steadiness: &Steadiness) -> Vec<String> {
        let (w, secs, c) = (self.spec.load.workload, self.secs(), &self.client.counters);
        let mut flags = Vec::new();
        let mut flag = |f: Flag| flags.push(f.name().to_string());
        if self.interrupted {
            flag(Flag::Interrupted);
        }
        if run.errors > 0 {
            flag(Flag::Errors);
        }
        if self
            .server
            .is_some_and(|s| s.counters.stream_verify_errors > 0)
        {
            flag(Flag::PayloadMismatch);
        }
        if run.ops == 0 {
            flag(Flag::NoOps);
        }
        if run.loss_pct.is_some_and(|l| l > 0.0) {
            flag(Flag::Loss);
        }
        let short_of_rate = self.spec.load.rate.is_some_and(|r| {
            let achieved = if w == Workload::UdpStream {
                c.sent_measured as f64 / secs.max(1e-9)
            } else {
                run.ops as f64 / secs.max(1e-9)
            };
            secs > 0.0 && achieved < 0.95 * r
        });
        // a busy-polling generator (the bypass client) keeps its CPU busy by
        // construction: only falling short of its rate says it was saturated
        let busy_polls = self.spec.path.client_spins();
        if (run.cpu.client_cpus_busy_pct >= 95.0 && !busy_polls)
            || short_of_rate
            || c.ports_exhausted > 0
        {
            flag(Flag::GeneratorSaturated);
        }
        if full_intervals >= 3 && steadiness.cv > 0.25 {
            flag(Flag::Unsteady);
        }
        if [run.cpu.server_steal_pct, run.cpu.client_steal_pct]
            .iter()
            .flatten()
            .any(|&p| p > STOLEN_PCT)
        {
            flag(Flag::CpuStolen);
        }
        if run.cpu.foreign_pct.is_some_and(|p| p > FOREIGN_PCT) {
            flag(Flag::ForeignLoad);
        }
        let hold = self.spec.load.hold as u64;
        if hold > 0 && c.held_at_t0.min(c.held) < hold {
            flag(Flag::HoldShort);
        }
        flags
    }
}

/// The stream's segments and retransmissions, from the kernel side's count:
/// the sender's when the client is the kernel's (the bypass server's
/// segments never reach its namespace's counters), else the receiver's;
/// with the stack on both ends, the frames steered to the server's stack
/// (all of them the client's segments) and the client stack's
/// retransmissions.
fn stream_segments(path: DataPath, counters: &BTreeMap<String, u64>) -> (u64, u64) {
    let get = |k: &str| counters.get(k).copied().unwrap_or(0);
    if path == DataPath::BypassBoth {
        return (
            get("server.xdp.steered"),
            get("client.stack.tcp.retransmits"),
        );
    }
    let segs = match get("client.kernel.Tcp.OutSegs") {
        0 => get("server.kernel.Tcp.InSegs"),
        n => n,
    };
    let retrans = match get("client.kernel.Tcp.RetransSegs") {
        0 => get("client.stack.tcp.retransmits"),
        n => n,
    };
    (segs, retrans)
}

impl From<&Measurement<'_>> for Run {
    fn from(m: &Measurement<'_>) -> Run {
        let (w, secs) = (m.spec.load.workload, m.secs());
        let intervals = m.intervals();
        let ops: u64 = intervals.iter().map(|i| i.ops).sum();
        let bytes = m.rec.total_bytes();
        let full: Vec<f64> = intervals
            .iter()
            .filter(|i| i.dur_s >= 0.999 * metrics::INTERVAL.as_secs_f64())
            .map(|i| i.ops_per_s)
            .collect();
        let steadiness = metrics::steadiness(&full);
        let mut run = Run {
            workload: w,
            round: 0,
            path: m.spec.path,
            proto: if matches!(w, Workload::Rr | Workload::Crr) {
                m.spec.load.messages.proto.to_string()
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
            latency_us: if w.has_latency() {
                Latency::from_hist(&m.rec.hist)
            } else {
                None
            },
            cpu: m.cpu(ops, bytes),
            errors: m.errors(),
            loss_pct: m.loss_pct(),
            flags: Vec::new(),
            steadiness,
            counters: m.counters(),
            intervals,
            hlog: None,
        };
        run.flags = m.flags(&run, full.len(), &steadiness);
        let sizes = m.spec.load.messages.sizes;
        run.params
            .insert("size".into(), format!("{}:{}", sizes.req, sizes.resp));
        run.params
            .insert("connections".into(), m.spec.load.connections.to_string());
        run.params.insert(
            "rate".into(),
            m.spec
                .load
                .rate
                .map_or("closed loop".into(), |r| r.to_string()),
        );
        if w == Workload::Stream {
            let (segs, retrans) = stream_segments(m.spec.path, &run.counters);
            run.counters.insert("segments".into(), segs);
            run.counters.insert("retransmits".into(), retrans);
        }
        run
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{ThreadResult, ThreadTimes};
    use crate::outcome::{ClientCounters, ServerCounters};
    use std::time::Instant;

    const MS: Duration = Duration::from_millis(1);

    fn spec(workload: Workload, path: DataPath, rate: Option<f64>) -> RunSpec {
        RunSpec {
            load: WorkloadSpec {
                workload,
                messages: crate::workload::Messages {
                    proto: crate::workload::Proto::Raw,
                    sizes: crate::workload::Sizes { req: 100, resp: 64 },
                    port: 7100,
                },
                connections: 1,
                rate,
                udp_timeout: Duration::from_millis(200),
                hold: 0,
            },
            path,
            server_cpus: vec![1],
            client_cpus: vec![0],
        }
    }

    /// A recorder of a 2 s window that began 3 s ago: `per_s` operations
    /// of 20 µs and 100 bytes in each second, the first `errors` failed.
    fn recorder(per_s: u64, errors: u64) -> (Recorder, Window) {
        let now = Instant::now();
        let t0 = now - 3000 * MS;
        let w = Window {
            start: t0,
            t0,
            t_end: t0 + 2000 * MS,
        };
        let mut r = Recorder::new(w);
        for s in 0..2u32 {
            for k in 0..per_s {
                let at = t0 + s * 1000 * MS + Duration::from_micros(k * 900_000 / per_s.max(1));
                r.op(at, Some(Duration::from_micros(20)), 100);
            }
        }
        for _ in 0..errors {
            r.error(t0 + 10 * MS);
        }
        (r, w)
    }

    fn thread<C>(counters: C, recorder: Recorder, cpu_ms: u64) -> ThreadResult<C> {
        ThreadResult {
            cpu_id: Some(0),
            counters,
            recorder,
            cpu: ThreadTimes {
                user: Duration::from_micros(cpu_ms * 500),
                sys: Duration::from_micros(cpu_ms * 500),
            },
            extra: BTreeMap::from([("work_us".to_string(), 5_000)]),
        }
    }

    fn sample(ksoftirqd_us: u64) -> SideSample {
        SideSample {
            ksoftirqd_us,
            counters: BTreeMap::from([("Tcp.OutSegs".to_string(), 77)]),
            ..SideSample::default()
        }
    }

    #[test]
    fn rr_figures_cpu_per_op_counters_and_no_flag() {
        let (rec, w) = recorder(500, 0);
        let cc = ClientCounters {
            sent: 1000,
            ..ClientCounters::default()
        };
        let client = ClientReport {
            threads: vec![thread(cc.clone(), rec.clone(), 100)],
            counters: cc,
        };
        let sc = ServerCounters {
            requests: 1000,
            accepted: 1,
            ..ServerCounters::default()
        };
        let server = ServerReport {
            threads: vec![thread(sc.clone(), Recorder::new(w), 50)],
            counters: sc,
        };
        let merged = measuring_recorder(Workload::Rr, &client, Some(&server), 2000 * MS, w);
        let (ss, cs) = (sample(10_000), sample(0));
        let m = Measurement {
            spec: spec(Workload::Rr, DataPath::Bypass, None),
            rec: &merged,
            measured: 2000 * MS,
            interrupted: false,
            client: &client,
            server: Some(&server),
            server_sample: Some(&ss),
            client_sample: &cs,
            disjoint: true,
        };
        let run = Run::from(&m);
        assert_eq!((run.ops, run.ops_per_s), (1000, 500.0));
        assert_eq!(run.intervals.len(), 2);
        assert!(run.intervals.iter().all(|i| i.ops == 500));
        let lat = run.latency_us.unwrap();
        assert!((19.0..=21.0).contains(&lat.p50), "{lat:?}");
        // server: 50 ms of threads + 10 ms of ksoftirqd over 1000 ops
        assert_eq!(run.cpu.accounting, "threads+ksoftirqd");
        assert!((run.cpu.server_us_per_op.unwrap() - 60.0).abs() < 1e-9);
        assert!((run.cpu.client_us_per_op.unwrap() - 100.0).abs() < 1e-9);
        assert!((run.cpu.server_work_us_per_op.unwrap() - 5.0).abs() < 1e-9);
        assert_eq!(run.counters["server.accepted"], 1);
        assert_eq!(run.counters["client.sent"], 1000);
        assert_eq!(run.counters["server.work_us"], 5000);
        assert_eq!(run.counters["client.kernel.Tcp.OutSegs"], 77);
        assert_eq!(run.params["rate"], "closed loop");
        assert!(run.flags.is_empty(), "{:?}", run.flags);
    }

    #[test]
    fn udp_stream_loss_short_of_rate_errors_and_nothing_measured_are_flagged() {
        let (rec, w) = recorder(250, 0);
        let cc = ClientCounters {
            sent: 1000,
            sent_measured: 1000,
            protocol_errors: 2,
            ..ClientCounters::default()
        };
        let client = ClientReport {
            threads: vec![thread(cc.clone(), Recorder::new(w), 10)],
            counters: cc,
        };
        let sc = ServerCounters {
            udp_measured_in: 500,
            ..ServerCounters::default()
        };
        let server = ServerReport {
            threads: vec![thread(sc.clone(), rec, 10)],
            counters: sc,
        };
        let merged = measuring_recorder(Workload::UdpStream, &client, Some(&server), 2000 * MS, w);
        let (ss, cs) = (sample(0), sample(0));
        let mut m = Measurement {
            spec: spec(Workload::UdpStream, DataPath::Kernel, Some(1000.0)),
            rec: &merged,
            measured: 2000 * MS,
            interrupted: true,
            client: &client,
            server: Some(&server),
            server_sample: Some(&ss),
            client_sample: &cs,
            disjoint: false,
        };
        let run = Run::from(&m);
        assert_eq!(run.ops, 500, "counted at the server");
        assert_eq!(run.loss_pct, Some(50.0));
        assert_eq!(run.errors, 2);
        assert_eq!(run.cpu.accounting, "threads");
        // 1000 sent in 2 s against a rate of 1000/s: short of it
        assert_eq!(
            run.flags,
            ["interrupted", "errors", "loss", "generator_saturated"]
        );
        let empty = Recorder::new(w);
        m.rec = &empty;
        m.interrupted = false;
        assert!(Run::from(&m).flags.contains(&"no_ops".to_string()));
    }

    #[test]
    fn stream_segments_come_from_the_kernel_side_or_the_stacks() {
        let c = BTreeMap::from([
            ("server.xdp.steered".to_string(), 9),
            ("client.stack.tcp.retransmits".to_string(), 3),
            ("server.kernel.Tcp.InSegs".to_string(), 7),
        ]);
        assert_eq!(stream_segments(DataPath::BypassBoth, &c), (9, 3));
        assert_eq!(stream_segments(DataPath::BypassClient, &c), (7, 3));
        let mut k = c.clone();
        k.insert("client.kernel.Tcp.OutSegs".into(), 5);
        k.insert("client.kernel.Tcp.RetransSegs".into(), 1);
        assert_eq!(stream_segments(DataPath::Bypass, &k), (5, 1));
    }
}
