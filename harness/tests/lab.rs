//! End-to-end tests of the `bypass` binary in real labs (network namespaces
//! joined by veth, 198.18.0.0/15 only). They need root; as another user they
//! say so and skip. Heavy runs are serialized: the machine has two CPUs and
//! each run pins its server and client to them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

static HEAVY: Mutex<()> = Mutex::new(());

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_bypass")
}

mod common;

fn root() -> bool {
    common::root("lab tests")
}

/// A private state directory for `lab up/down`, so tests never touch a lab
/// that a person has up.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .env("BYPASS_LAB_STATE", self.dir.path().join("labs"))
            .current_dir(self.dir.path());
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
    fn out_dir(&self) -> PathBuf {
        self.dir.path().join("results")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // whatever a failed test left up in this env
        let _ = self.run(&["lab", "down"]);
    }
}

/// Ends a `bypass serve --json` with SIGTERM (a process this test
/// started): it exits 0 and prints its counters.
fn stop_serve(serve: std::process::Child) -> Value {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(serve.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    json_of_success(&serve.wait_with_output().unwrap())
}

/// The JSON a command printed, after checking that it exited 0.
fn json_of_success(o: &Output) -> Value {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    json(o)
}

/// `bypass run ARGS --json` into the env's output directory: it must exit
/// 0; its result document.
fn run_json(env: &Env, args: &[&str]) -> Value {
    let out = env.out_dir();
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend(["--json", "--out", out.to_str().unwrap()]);
    json_of_success(&env.run(&all))
}

/// `bypass run ARGS --path bypass` with 8 connections, 1 s measured after
/// 0.3 s.
fn short_bypass_run(env: &Env, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend([
        "--connections",
        "8",
        "--path",
        "bypass",
        "--duration",
        "1",
        "--warmup",
        "0.3",
    ]);
    run_json(env, &all)
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// The namespace of a lab's side (`server` or `client`) in `lab up --json`.
fn netns_of(info: &Value, side: &str) -> String {
    info[side]["netns"].as_str().unwrap().to_string()
}

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

fn assert_lab_gone(doc: &Value) {
    let lab = &doc["env"]["lab"];
    for side in ["server", "client"] {
        let ns = lab[side]["netns"].as_str().unwrap();
        assert!(ns.starts_with("byp-"), "{ns}");
        assert!(!netns_exists(ns), "lab namespace {ns} left behind");
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Checks the fields and invariants of one run entry.
fn check_run(r: &Value) {
    let w = r["workload"].as_str().unwrap();
    let flags: Vec<&str> = r["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for bad in ["errors", "payload_mismatch", "no_ops", "interrupted"] {
        assert!(!flags.contains(&bad), "{w}: flag {bad}: {r}");
    }
    let ops = r["ops"].as_u64().unwrap();
    assert!(ops > 0, "{w}: no operations");
    let interval_ops: u64 = r["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ops"].as_u64().unwrap())
        .sum();
    assert_eq!(ops, interval_ops, "{w}: ops != sum of interval ops");
    let dur = f(&r["duration_s"]);
    assert!(dur > 0.5, "{w}: duration {dur}");
    assert!((f(&r["ops_per_s"]) - ops as f64 / dur).abs() < 1e-6 * ops as f64 + 1e-9);
    assert!(f(&r["bits_per_s"]) > 0.0, "{w}");
    let cpu = &r["cpu"];
    for k in [
        "server_us_per_op",
        "client_us_per_op",
        "server_util_pct",
        "client_util_pct",
    ] {
        let v = f(&cpu[k]);
        assert!(v > 0.0, "{w}: cpu.{k} = {v}");
    }
    assert!(!cpu["threads"].as_array().unwrap().is_empty());
    // the hypervisor's share, from /proc/stat, and its flag
    for k in ["server_steal_pct", "client_steal_pct"] {
        let v = f(&cpu[k]);
        assert!((0.0..=100.0).contains(&v), "{w}: cpu.{k} = {v}");
        if v > 5.0 {
            assert!(flags.contains(&"cpu_stolen"), "{w}: {k} {v} unflagged");
        }
    }
    assert_eq!(r["errors"].as_u64(), Some(0), "{w}");
    match w {
        "crr" | "rr" | "udp-rr" => {
            let l = &r["latency_us"];
            let (p50, p90, p99, p999, p9999, max) = (
                f(&l["p50"]),
                f(&l["p90"]),
                f(&l["p99"]),
                f(&l["p999"]),
                f(&l["p9999"]),
                f(&l["max"]),
            );
            assert!(p50 > 0.0, "{w}");
            assert!(
                p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= p9999 && p9999 <= max,
                "{w}: {l}"
            );
            assert_eq!(
                l["count"].as_u64(),
                Some(ops),
                "{w}: every op has a latency"
            );
            assert!(r["hlog"].as_str().unwrap().ends_with(".hlog"));
        }
        _ => assert!(r["latency_us"].is_null(), "{w}"),
    }
    let c = &r["counters"];
    match w {
        "stream" => {
            assert_eq!(c["server.stream_verify_errors"].as_u64(), Some(0));
            assert!(c["server.bytes_in"].as_u64().unwrap() >= r["bytes"].as_u64().unwrap());
            assert!(c["segments"].as_u64().unwrap() > 0, "segments counted");
            assert!(cpu["server_ns_per_byte"].as_f64().unwrap() > 0.0);
        }
        "udp-stream" => {
            let loss = f(&r["loss_pct"]);
            assert!((0.0..=100.0).contains(&loss));
            assert!(c["client.sent_measured"].as_u64().unwrap() > 0);
            assert_eq!(
                c["server.udp_measured_in"].as_u64().unwrap(),
                ops,
                "udp-stream ops are the measured datagrams received"
            );
        }
        "crr" => {
            // every measured connection was accepted by the server (the
            // kernel's or the stack's); the kernel's counter is sampled at
            // the window's edges, so the connections in flight at the edges
            // may fall on either side
            if r["path"] == "bypass-both" {
                // no kernel TCP on either end: the stack server's count
                // (over the whole run, warm-up included)
                assert!(c["server.accepted"].as_u64().unwrap() >= ops, "{c}");
                return;
            }
            let key = if r["path"] == "bypass" {
                "client.kernel.Tcp.ActiveOpens"
            } else {
                "server.kernel.Tcp.PassiveOpens"
            };
            let opens = c[key].as_u64().unwrap();
            let slack = (ops / 20).max(64);
            assert!(
                opens.abs_diff(ops) <= slack,
                "passive opens {opens} vs ops {ops}"
            );
        }
        _ => {}
    }
}

#[test]
fn every_workload_on_the_kernel_path_in_a_lab() {
    if !root() {
        return;
    }
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let out = env.out_dir();
    let o = env.run(&[
        "run",
        "--path",
        "kernel",
        "--duration",
        "1.5",
        "--warmup",
        "0.3",
        "--json",
        "--name",
        "all",
        "--out",
        out.to_str().unwrap(),
    ]);
    let doc = json(&o);
    assert!(
        o.status.code() == Some(0),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(doc["schema"], "bypass-result/1");
    assert_eq!(doc["interrupted"], false);
    let runs = doc["runs"].as_array().unwrap();
    let names: Vec<&str> = runs
        .iter()
        .map(|r| r["workload"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["crr", "rr", "stream", "udp-rr", "udp-stream"]);
    for r in runs {
        assert_eq!(r["path"], "kernel");
        check_run(r);
    }
    // config reproduces the run; env explains it
    let cfg = &doc["config"];
    for k in [
        "duration_s",
        "warmup_s",
        "path",
        "server_cpus",
        "client_cpus",
        "workloads",
        "proto",
        "rate",
    ] {
        assert!(cfg[k].is_string(), "config.{k} missing");
    }
    assert_eq!(cfg["duration_s"], "1.5");
    let e = &doc["env"];
    for k in [
        "kernel",
        "cpu_model",
        "interface",
        "driver",
        "git_revision",
        "hostname",
        "mode",
    ] {
        assert!(
            !e[k].as_str().unwrap_or_default().is_empty(),
            "env.{k} empty"
        );
    }
    assert_eq!(e["driver"], "veth");
    assert_eq!(e["mode"], "lab");
    let sysctls = e["sysctls"].as_object().unwrap();
    assert!(sysctls
        .iter()
        .any(|(k, v)| k.ends_with("net.ipv4.tcp_tw_reuse") && v == "1"));
    assert!(sysctls
        .iter()
        .any(|(k, v)| k.ends_with("net.ipv4.ip_local_port_range") && v == "1024 65535"));
    // where the kernel lets TIME-WAIT reuse start sooner, the client does
    if std::path::Path::new("/proc/sys/net/ipv4/tcp_tw_reuse_delay").exists() {
        assert!(
            sysctls
                .iter()
                .any(|(k, v)| k.ends_with("net.ipv4.tcp_tw_reuse_delay") && v == "100"),
            "{sysctls:?}"
        );
    }
    assert_lab_gone(&doc);
    // the files
    let dirs: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|d| d.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1);
    let d = &dirs[0];
    assert!(d.file_name().unwrap().to_str().unwrap().ends_with("Z-all"));
    let on_disk: Value =
        serde_json::from_slice(&std::fs::read(d.join("result.json")).unwrap()).unwrap();
    assert_eq!(on_disk, doc, "--json prints the document that is written");
    for w in ["crr", "rr", "udp-rr"] {
        let hlog = std::fs::read_to_string(d.join(format!("{w}-kernel.hlog"))).unwrap();
        assert!(hlog.contains("#[StartTime:"), "{w} hlog header");
        assert!(
            hlog.lines()
                .filter(|l| !l.starts_with('#') && !l.starts_with('"'))
                .count()
                >= 1
        );
    }
    let summary = std::fs::read_to_string(d.join("summary.md")).unwrap();
    assert!(summary.contains("| udp-stream | kernel |"));
    for plot in [
        "latency-crr.svg",
        "latency-rr.svg",
        "latency-udp-rr.svg",
        "throughput.svg",
        "cpu.svg",
    ] {
        let svg = std::fs::read_to_string(d.join(plot)).unwrap_or_else(|e| panic!("{plot}: {e}"));
        assert!(
            svg.contains("<svg") && svg.contains("kernel"),
            "{plot} is not a plot of the run"
        );
        assert!(
            summary.contains(&format!("({plot})")),
            "summary.md links {plot}"
        );
    }

    // compare of a result with itself: every ratio is 1
    let o = env.run(&[
        "compare",
        d.to_str().unwrap(),
        d.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let rows = json(&o);
    let ratios: Vec<f64> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["ratio"].as_f64())
        .collect();
    assert!(ratios.len() > 20);
    assert!(ratios.iter().all(|r| (r - 1.0).abs() < 1e-12));
    // report rewrites the summary from result.json
    let o = env.run(&["report", d.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("| crr | kernel |"));
}

#[test]
fn http_rr_and_crr_and_open_loop_rate() {
    if !root() {
        return;
    }
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let out = env.out_dir();
    let o = env.run(&[
        "run",
        "rr",
        "crr",
        "--proto",
        "http",
        "--path",
        "kernel",
        "--duration",
        "1",
        "--warmup",
        "0.2",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let doc = json(&o);
    for r in doc["runs"].as_array().unwrap() {
        assert_eq!(r["proto"], "http");
        check_run(r);
        assert_eq!(r["counters"]["server.bad_requests"].as_u64(), Some(0));
    }
    assert_lab_gone(&doc);

    // open loop: the generator holds the asked rate
    let o = env.run(&[
        "run",
        "rr",
        "--path",
        "kernel",
        "--rate",
        "2000",
        "--connections",
        "2",
        "--duration",
        "2",
        "--warmup",
        "0.3",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    let doc = json(&o);
    let r = &doc["runs"][0];
    check_run(r);
    let rate = f(&r["ops_per_s"]);
    assert!(
        (1800.0..=2200.0).contains(&rate),
        "open loop at 2000/s measured {rate}/s"
    );
    assert_eq!(r["params"]["rate"], "2000");
}

#[test]
fn tcp_workloads_over_the_bypass_path_on_either_side() {
    if !root() {
        return;
    }
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let doc = run_json(
        &env,
        &[
            "crr",
            "rr",
            "stream",
            "--path",
            "both",
            "--duration",
            "1.5",
            "--warmup",
            "0.5",
        ],
    );
    let runs = doc["runs"].as_array().unwrap();
    let keys: Vec<(String, String)> = runs
        .iter()
        .map(|r| {
            (
                r["workload"].as_str().unwrap().into(),
                r["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    for w in ["crr", "rr", "stream"] {
        for p in ["kernel", "bypass", "bypass-client", "bypass-both"] {
            assert!(
                keys.contains(&(w.into(), p.into())),
                "{w}/{p} missing: {keys:?}"
            );
        }
    }
    for r in runs {
        check_run(r);
        if r["path"] == "bypass-both" {
            // both ends' frames went through their programs and stacks:
            // none reached either kernel's TCP
            let c = &r["counters"];
            let w = r["workload"].as_str().unwrap();
            assert!(
                c["server.xdp.steered"].as_u64().unwrap() > r["ops"].as_u64().unwrap(),
                "{w}: {c}"
            );
            for k in [
                "server.kernel.Tcp.PassiveOpens",
                "client.kernel.Tcp.ActiveOpens",
            ] {
                assert_eq!(c[k].as_u64().unwrap_or(0), 0, "{w}: {k}");
            }
        }
        if r["path"] == "bypass" {
            let c = &r["counters"];
            let w = r["workload"].as_str().unwrap();
            // the stack's frames went through the XDP program to the socket
            assert!(
                c["server.xdp.steered"].as_u64().unwrap() > r["ops"].as_u64().unwrap(),
                "{w}: {c}"
            );
            assert_eq!(c["server.xsk.rx_invalid_descs"].as_u64(), Some(0));
            assert_eq!(c["server.xsk.tx_invalid_descs"].as_u64(), Some(0));
            assert!(r["params"]["xdp_mode"].is_string());
            assert!(
                f(&r["cpu"]["server_work_us_per_op"]) > 0.0,
                "{w}: work time reported"
            );
            // the kernel server saw none of it
            assert!(
                c["server.kernel.Tcp.PassiveOpens"].as_u64().unwrap_or(0) == 0,
                "{w}"
            );
        }
    }
    assert_eq!(
        doc["env"]["xdp_mode"]
            .as_str()
            .map(|m| m == "native" || m == "generic"),
        Some(true)
    );
    // bypass / kernel ratios for every workload
    let ratios = doc["ratios"].as_array().unwrap();
    for w in ["crr", "rr", "stream"] {
        assert!(
            ratios.iter().any(|r| r["workload"] == w
                && r["figure"] == "ops_per_s"
                && r["ratio"].as_f64().is_some()),
            "{w}: no ops_per_s ratio"
        );
    }
    assert_lab_gone(&doc);
}

#[test]
fn udp_workloads_over_the_bypass_path_on_either_side() {
    if !root() {
        return;
    }
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let doc = run_json(
        &env,
        &[
            "udp-rr",
            "udp-stream",
            "--path",
            "both",
            "--duration",
            "1.5",
            "--warmup",
            "0.5",
            "--rate",
            "20000",
        ],
    );
    let runs = doc["runs"].as_array().unwrap();
    let keys: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["workload"].as_str().unwrap(),
                r["path"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            "udp-rr/kernel",
            "udp-rr/bypass",
            "udp-rr/bypass-client",
            "udp-rr/bypass-both",
            "udp-stream/kernel",
            "udp-stream/bypass",
            "udp-stream/bypass-client",
            "udp-stream/bypass-both"
        ]
    );
    for r in runs {
        check_run(r);
        let c = &r["counters"];
        let side = match r["path"].as_str().unwrap() {
            "bypass" | "bypass-both" => "server",
            "bypass-client" => "client",
            _ => continue,
        };
        let w = r["workload"].as_str().unwrap();
        assert!(r["params"]["xdp_mode"].is_string(), "{w}");
        if side == "server" {
            // every datagram came through the program and the stack
            assert!(
                c["server.xdp.steered"].as_u64().unwrap() >= r["ops"].as_u64().unwrap(),
                "{w}: {c}"
            );
            assert_eq!(
                c["server.stack.parse_dropped"].as_u64(),
                Some(0),
                "{w}: {c}"
            );
            assert!(f(&r["cpu"]["server_work_us_per_op"]) > 0.0);
        }
        // 20000/s is well within both paths' reach in the lab: nothing lost
        assert_eq!(f(&r["loss_pct"]), 0.0, "{w} {side}: {c}");
    }
    let ratios = doc["ratios"].as_array().unwrap();
    for p in [
        "bypass/kernel",
        "bypass-client/kernel",
        "bypass-both/kernel",
    ] {
        assert!(ratios.iter().any(|r| r["path"] == p), "{p}");
    }
    assert_lab_gone(&doc);
}

/// Rounds: each round runs every path once, the order rotating; ratios
/// pair the rounds and carry an interval; each round keeps its own hlog.
#[test]
fn rounds_rotate_the_paths_and_pair_their_ratios() {
    if !root() {
        return;
    }
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let doc = run_json(
        &env,
        &[
            "rr",
            "--path",
            "bypass-both,kernel",
            "--rounds",
            "3",
            "--duration",
            "0.5",
            "--warmup",
            "0.2",
            "--name",
            "rounds",
        ],
    );
    assert_eq!(doc["rounds"], 3);
    assert_eq!(doc["config"]["path"], "kernel,bypass-both");
    let order: Vec<(String, u64)> = doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_string(),
                r["round"].as_u64().unwrap(),
            )
        })
        .collect();
    let k = |p: &str, r: u64| (p.to_string(), r);
    assert_eq!(
        order,
        [
            k("kernel", 0),
            k("bypass-both", 0),
            k("bypass-both", 1),
            k("kernel", 1),
            k("kernel", 2),
            k("bypass-both", 2)
        ]
    );
    let dir = std::fs::read_dir(env.out_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-rounds"))
        .unwrap();
    for r in doc["runs"].as_array().unwrap() {
        let hlog = r["hlog"].as_str().unwrap();
        assert_eq!(
            hlog,
            format!("rr-{}-r{}.hlog", r["path"].as_str().unwrap(), r["round"])
        );
        assert!(dir.join(hlog).is_file(), "{hlog}");
    }
    let ops = doc["ratios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == "bypass-both/kernel" && r["figure"] == "ops_per_s")
        .unwrap();
    let per: Vec<f64> = ops["per_round"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(per.len(), 3, "{ops}");
    let (lo, hi, mid) = (f(&ops["ci95_low"]), f(&ops["ci95_high"]), f(&ops["ratio"]));
    assert!(lo <= mid && mid <= hi, "{ops}");
    let mut sorted = per.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(mid, sorted[1], "the median of the rounds' ratios");
    let spread = doc["spreads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["path"] == "kernel" && s["figure"] == "ops_per_s")
        .unwrap();
    assert_eq!(spread["n"], 3);
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(summary.contains("## Over 3 rounds"), "{summary}");
    assert_lab_gone(&doc);
}

/// A CPU under test kept busy by a thread that is not the run's raises
/// `foreign_load`; the run records its calibration.
#[test]
fn a_loaded_cpu_flags_foreign_load() {
    if !root() {
        return;
    }
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    // the server's CPU: the last one, by default
    let cpu = std::thread::available_parallelism().unwrap().get() - 1;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spin = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut set = nix::sched::CpuSet::new();
            set.set(cpu).unwrap();
            nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).unwrap();
            // bounded: stopped after the run, and never past 60 s
            let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && std::time::Instant::now() < until
            {
                std::hint::spin_loop();
            }
        })
    };
    let doc = run_json(
        &env,
        &[
            "rr",
            "--path",
            "kernel",
            "--duration",
            "1.5",
            "--warmup",
            "0.3",
        ],
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    spin.join().unwrap();
    let r = &doc["runs"][0];
    assert!(
        r["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "foreign_load"),
        "{}",
        r["cpu"]
    );
    assert!(f(&r["cpu"]["foreign_pct"]) > 10.0, "{}", r["cpu"]);
    let cal = &doc["env"]["calibration"];
    assert!(
        f(&cal["wakeup_us_p50"]) > 0.0 && f(&cal["memcpy_gb_per_s"]) > 0.0,
        "{cal}"
    );
    assert_lab_gone(&doc);
}

/// kernel-busy does what its name says: its sockets and epoll instances
/// carry the busy-poll options, and on the lab's veth (GRO on, TSO off for
/// the run) the kernel really busy-polls NAPI (TcpExt.BusyPollRxPackets).
#[test]
fn the_busy_kernel_path_busy_polls() {
    if !root() {
        return;
    }
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let doc = run_json(
        &env,
        &[
            "rr",
            "stream",
            "--path",
            "kernel,kernel-busy",
            "--duration",
            "1",
            "--warmup",
            "0.3",
        ],
    );
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    let epoll_busy = {
        // EPIOCSPARAMS came with Linux 6.9
        let k = doc["env"]["kernel"].as_str().unwrap().to_string();
        let mut v = k.split(['.', '-']).map(|x| x.parse::<u32>().unwrap_or(0));
        (v.next().unwrap_or(0), v.next().unwrap_or(0)) >= (6, 9)
    };
    for r in runs {
        let c = &r["counters"];
        let get = |k: &str| c[k].as_u64().unwrap_or(0);
        if r["path"] == "kernel" {
            assert_eq!(get("server.busy_poll_sockets"), 0, "{c}");
            continue;
        }
        assert_eq!(r["path"], "kernel-busy");
        assert!(get("server.busy_poll_sockets") >= 1, "{c}");
        assert!(get("client.busy_poll_sockets") >= 1, "{c}");
        if epoll_busy {
            assert_eq!(get("server.busy_poll_epolls"), 1, "{c}");
            assert_eq!(get("client.busy_poll_epolls"), 1, "{c}");
        }
        if r["workload"] == "stream" {
            assert!(
                get("server.kernel.TcpExt.BusyPollRxPackets") > 0,
                "the receiver busy-polled veth's NAPI: {c}"
            );
        }
    }
    // kernel-busy is compared with the default kernel
    assert!(doc["ratios"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["path"] == "kernel-busy/kernel"));
    assert_lab_gone(&doc);
}

/// A sweep runs one multi-round result per step and draws the curves; the
/// limit within the objective is the highest step that met it.
#[test]
fn a_rate_sweep_gives_a_curve_per_path_and_the_rate_within_the_objective() {
    if !root() {
        return;
    }
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let out = env.out_dir();
    let o = env.run(&[
        "run",
        "rr",
        "--path",
        "kernel",
        "--sweep",
        "rate=3000,1000",
        "--rounds",
        "2",
        "--duration",
        "0.5",
        "--warmup",
        "0.2",
        "--slo-p99",
        "1000000",
        "--json",
        "--name",
        "sw",
        "--out",
        out.to_str().unwrap(),
    ]);
    let doc = json_of_success(&o);
    assert_eq!(doc["schema"], "bypass-sweep/1");
    assert_eq!(doc["param"], "rate");
    let values: Vec<f64> = doc["values"].as_array().unwrap().iter().map(f).collect();
    assert_eq!(values, [1000.0, 3000.0], "steps in order");
    let points = doc["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    for p in points {
        assert_eq!(p["n"], 2, "{p}");
        let ops = f(&p["ops_per_s"]["median"]);
        let want = f(&p["value"]);
        assert!(
            (ops - want).abs() / want < 0.1,
            "open loop at the step's rate: {p}"
        );
    }
    let lim = &doc["limits"][0];
    assert_eq!(lim["kind"], "rate_within_slo");
    assert_eq!(f(&lim["value"]), 3000.0, "{lim}");
    let dir = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("-sw-sweep"))
        .unwrap();
    for s in doc["steps"].as_array().unwrap() {
        let step = dir.join(s["dir"].as_str().unwrap()).join("result.json");
        let r: Value = serde_json::from_slice(&std::fs::read(&step).unwrap()).unwrap();
        assert_eq!(r["rounds"], 2);
        let rate: f64 = r["runs"][0]["params"]["rate"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(rate, f(&s["value"]));
    }
    assert!(dir.join("sweep-rr.svg").is_file());
    let md = std::fs::read_to_string(dir.join("sweep.md")).unwrap();
    assert!(
        md.contains("sweep-rr.svg") && md.contains("## Limits"),
        "{md}"
    );
}

/// kernel-uring serves and generates through io_uring: every request and
/// connection went through the rings' completions, and the UDP workloads
/// are left out.
#[test]
fn the_uring_kernel_path_serves_through_the_ring() {
    if !root() {
        return;
    }
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let doc = run_json(
        &env,
        &[
            "rr",
            "crr",
            "udp-rr",
            "--path",
            "kernel-uring",
            "--duration",
            "1",
            "--warmup",
            "0.3",
        ],
    );
    let runs = doc["runs"].as_array().unwrap();
    let ws: Vec<&str> = runs
        .iter()
        .map(|r| r["workload"].as_str().unwrap())
        .collect();
    assert_eq!(ws, ["rr", "crr"], "udp-rr does not run over kernel-uring");
    for r in runs {
        let c = &r["counters"];
        let get = |k: &str| c[k].as_u64().unwrap_or(0);
        assert_eq!(r["errors"], 0, "{c}");
        let (requests, accepted) = (get("server.requests"), get("server.accepted"));
        assert!(requests > 100, "{c}");
        // each request arrived by a receive completion and left by a send's
        assert!(
            get("server.uring_completions") >= 2 * requests + accepted,
            "{c}"
        );
        assert!(get("server.uring_enters") > 0, "{c}");
        // and the generator: each operation's send and receive completed
        // on its ring (crr: its connect and close too)
        assert!(get("client.uring_completions") >= 2 * requests, "{c}");
        if r["workload"] == "crr" {
            assert!(
                accepted > 100 && get("server.closed") + 16 >= accepted,
                "{c}"
            );
        }
    }
    assert_lab_gone(&doc);
}

/// By default the lab's stack trusts the veth peer's partial TCP/UDP
/// checksums and counts them; with --verify-checksums the veths complete
/// every checksum and the stack verifies each (none trusted, none bad).
#[test]
fn verify_checksums_makes_the_stack_check_every_checksum() {
    if !root() {
        return;
    }
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    for verify in [false, true] {
        let mut args = vec![
            "rr",
            "udp-rr",
            "--path",
            "bypass-both",
            "--duration",
            "0.5",
            "--warmup",
            "0.2",
        ];
        if verify {
            args.push("--verify-checksums");
        }
        let doc = run_json(&env, &args);
        assert_eq!(doc["env"]["lab"]["full_checksums"], verify);
        for r in doc["runs"].as_array().unwrap() {
            let c = &r["counters"];
            let get = |k: &str| c[k].as_u64().unwrap_or(0);
            assert!(r["ops"].as_u64().unwrap() > 100, "{c}");
            for side in ["server", "client"] {
                let trusted = get(&format!("{side}.stack.checksums_trusted"));
                assert_eq!(trusted > 0, !verify, "{side}: {c}");
                assert_eq!(get(&format!("{side}.stack.parse_dropped")), 0, "{c}");
                // veth offers no AF_XDP TX checksum: the stack's own
                assert_eq!(get(&format!("{side}.xsk.tx_checksum_offload")), 0, "{c}");
            }
        }
        assert_lab_gone(&doc);
    }
}

#[test]
fn the_bypass_path_binds_a_socket_to_every_queue() {
    if !root() {
        return;
    }
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let doc = short_bypass_run(&env, &["udp-rr", "rr", "--queues", "2"]);
    for r in doc["runs"].as_array().unwrap() {
        check_run(r);
        if r["path"] == "bypass" {
            let c = &r["counters"];
            assert_eq!(c["server.xsk.queues"].as_u64(), Some(2), "{c}");
            // every frame for the stack found a socket on its queue
            assert_eq!(c["server.xdp.no_socket"].as_u64(), Some(0), "{c}");
        }
    }
    assert_lab_gone(&doc);
}

/// `--cores 2`: the lab gets two queues, and each side on the bypass path
/// runs two shards, one per queue, each with its own socket, stack and
/// connections; both serve (crr spreads its connections over the queues),
/// and the per-shard figures add up to the totals.
#[test]
fn two_cores_run_two_shards_that_both_serve() {
    if !root() {
        return;
    }
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let doc = short_bypass_run(&env, &["crr", "udp-rr", "--cores", "2"]);
    assert_eq!(doc["env"]["queues"].as_u64(), Some(2), "{}", doc["env"]);
    for r in doc["runs"].as_array().unwrap() {
        check_run(r);
        let (w, p) = (r["workload"].as_str().unwrap(), r["path"].as_str().unwrap());
        let c = &r["counters"];
        let threads = r["cpu"]["threads"].as_array().unwrap();
        let role =
            |role: &str| -> Vec<&Value> { threads.iter().filter(|t| t["role"] == role).collect() };
        if p == "bypass" || p == "bypass-both" {
            assert_eq!(c["server.xsk.queues"].as_u64(), Some(2), "{w}/{p}: {c}");
            assert_eq!(c["server.xdp.no_socket"].as_u64(), Some(0), "{w}/{p}: {c}");
            let shards = role("server");
            assert_eq!(shards.len(), 2, "{w}/{p}: {threads:?}");
            if w == "crr" {
                // many connections, spread by the client over both queues
                for t in &shards {
                    assert!(t["ops"].as_u64().unwrap() > 0, "{w}/{p}: {threads:?}");
                }
            }
            let sum: u64 = shards.iter().map(|t| t["ops"].as_u64().unwrap()).sum();
            let total =
                c["server.requests"].as_u64().unwrap() + c["server.udp_in"].as_u64().unwrap();
            assert_eq!(sum, total, "{w}/{p}: shards add up");
        }
        if p == "bypass-both" && w == "crr" {
            // the generator too: one shard per queue, each with its share
            let shards = role("client");
            assert_eq!(shards.len(), 2, "{w}/{p}: {threads:?}");
            for t in &shards {
                assert!(t["ops"].as_u64().unwrap() > 0, "{w}/{p}: {threads:?}");
            }
            assert_eq!(c["client.xsk.queues"].as_u64(), Some(2), "{c}");
        }
    }
    assert_lab_gone(&doc);
}

/// `--busy-poll`: at a low offered rate the bypass server spins on its
/// rings (its CPU busy all the time) where it otherwise sleeps in poll(2).
#[test]
fn busy_poll_servers_spin_and_others_sleep() {
    if !root() {
        return;
    }
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let util = |extra: &[&str]| -> (f64, f64) {
        let mut args = vec!["rr", "--rate", "2000"];
        args.extend_from_slice(extra);
        let doc = short_bypass_run(&env, &args);
        let r = doc["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["path"] == "bypass")
            .expect("the bypass run")
            .clone();
        check_run(&r);
        assert_eq!(
            doc["config"]["busy_poll"].as_str(),
            Some(if extra.is_empty() { "false" } else { "true" })
        );
        let c = &r["cpu"];
        // what the machine took from the server's CPU (the hypervisor, the
        // other tests of this run) is not the server's choice
        // ... nor is the softirq work on its CPU, which the kernel accounts
        // apart from the thread's time
        let window_us =
            f(&r["duration_s"]) * 1e6 * c["server_cpus"].as_array().unwrap().len() as f64;
        let softirq = 100.0 * f(&c["server_softirq_us"]) / window_us;
        let taken = f(&c["server_steal_pct"]) + f(&c["foreign_pct"]) + softirq;
        (f(&c["server_util_pct"]), taken)
    };
    let (sleeping, _) = util(&[]);
    // a spinning server has its CPU but what others took (a sleeping one
    // stays under 50%); 80, not 100: the tests beside this one preempt it
    let (spinning, taken) = util(&["--busy-poll"]);
    assert!(
        spinning + taken >= 80.0,
        "busy-polling server at {spinning:.0}% CPU ({taken:.0}% steal, foreign work and softirq)"
    );
    assert!(sleeping < 50.0, "sleeping server at {sleeping:.0}% CPU");
}

#[test]
fn serve_bypass_answers_ping_and_udp_and_leaves_kernel_tcp_alone() {
    if !root() {
        return;
    }
    let env = Env::new();
    let info = json_of_success(&env.run(&["lab", "up", "--json"]));
    let cns = netns_of(&info, "client");
    let serve = env
        .cmd(&[
            "serve", "--lab", "--path", "bypass", "--port", "7400", "--size", "64:200", "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // a kernel UDP client in the client namespace: 1,000 datagrams of mixed
    // sizes to the stack's echo, each answered with its sequence header
    let script = r#"
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
deadline = time.time() + 10
ok = 0
i = 0
while i < 1000 and time.time() < deadline:
    m = i.to_bytes(8, "big") + bytes([i % 251]) * (8 + (i * 37) % 1400)
    s.sendto(m, ("198.18.0.3", 7400))
    try:
        d, a = s.recvfrom(4096)
    except socket.timeout:
        continue   # the first ones may race the server's start
    if d[:8] == m[:8] and len(d) == 200:
        ok += 1
    i += 1
print(ok)
"#;
    let o = Command::new("ip")
        .args(["netns", "exec", &cns, "python3", "-c", script])
        .output();
    let mut got = None;
    match o {
        Ok(o) if o.status.success() => {
            got = String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<u32>()
                .ok()
        }
        Ok(o) => eprintln!("python3 failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => eprintln!("SKIP part: python3 is not available ({e})"),
    }
    if let Some(n) = got {
        assert_eq!(n, 1000, "every datagram echoed");
    }
    // ping the stack's address
    if let Ok(o) = Command::new("ip")
        .args([
            "netns",
            "exec",
            &cns,
            "ping",
            "-c",
            "3",
            "-W",
            "1",
            "198.18.0.3",
        ])
        .output()
    {
        if o.status.code() != Some(127)
            && !String::from_utf8_lossy(&o.stderr).contains("No such file")
        {
            assert!(
                o.status.success(),
                "ping: {}",
                String::from_utf8_lossy(&o.stdout)
            );
        }
    }
    // the kernel's own address on the same interface still answers TCP (curl
    // to a closed port gets a RST from the kernel: connection refused, not a timeout)
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            &cns,
            "curl",
            "-s",
            "-m",
            "3",
            "http://198.18.0.1:7999/",
        ])
        .output();
    if let Ok(o) = o {
        // 7 = could not connect (refused by the kernel), 28 would be a timeout
        assert_ne!(
            o.status.code(),
            Some(28),
            "the kernel's address stopped answering"
        );
    }
    let c = stop_serve(serve);
    if got.is_some() {
        assert!(c["udp_out"].as_u64().unwrap() >= 1000, "{c}");
    }
    assert_eq!(c["stack.parse_dropped"].as_u64(), Some(0), "{c}");
    let o = env.run(&["lab", "down"]);
    assert_eq!(o.status.code(), Some(0));
}

/// A hostile neighbour on the client's link: from a raw socket in the
/// client namespace, a forged SYN and a forged ARP reply that claim the
/// legitimate client's address with another MAC, a SYN from each martian
/// source, a source-routed one and one with a bad IPv4 header checksum.
/// The stack drops and counts each by reason, keeps the client's
/// neighbour entry, and the client's connection goes on.
#[test]
fn crafted_frames_are_dropped_and_counted_and_the_legitimate_connection_goes_on() {
    if !root() {
        return;
    }
    let env = Env::new();
    let info = json_of_success(&env.run(&["lab", "up", "--json"]));
    let cns = netns_of(&info, "client");
    let cif = info["client"]["iface"].as_str().unwrap().to_string();
    let serve = env
        .cmd(&[
            "serve", "--lab", "--path", "bypass", "--port", "7400", "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let script = include_str!("scripts/crafted_frames.py");
    let o = Command::new("ip")
        .args([
            "netns", "exec", &cns, "timeout", "30", "python3", "-c", script,
        ])
        .args([cif.as_str(), "198.18.0.3", "7400", "198.18.0.2"])
        .output()
        .expect("ip netns exec");
    let c = stop_serve(serve);
    let o2 = env.run(&["lab", "down"]);
    assert_eq!(o2.status.code(), Some(0));
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "ok",
        "the legitimate connection: {} {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let get = |k: &str| c[format!("stack.{k}")].as_u64().unwrap_or(0);
    for k in [
        "martian_zero_net",
        "martian_loopback",
        "martian_reserved",
        "martian_broadcast",
        "martian_own_address",
        "source_routed",
    ] {
        assert_eq!(get(k), 1, "{k}: {c}");
    }
    assert_eq!(get("parse_dropped"), 1, "the bad header checksum: {c}");
    assert_eq!(get("drop.bad_checksum"), 1, "counted by its reason: {c}");
    assert_eq!(get("arp_conflicts"), 1, "the forged reply: {c}");
    // the entry was re-validated and the client answered at its own MAC
    assert!(
        get("arp_requests_sent") >= 1 && get("arp_replies_received") >= 2,
        "{c}"
    );
    assert_eq!(c["peer_resets"].as_u64(), Some(0), "{c}");
}

/// A careless operator: `serve --force` beside a live `serve` is refused
/// with the first one's pid and changes nothing (the first goes on
/// answering), and `lab down` keeps a lab that a live process uses, naming
/// it, until that process is gone (or the lab is named).
#[test]
fn force_beside_a_live_serve_and_lab_down_of_a_lab_in_use_change_nothing() {
    if !root() {
        return;
    }
    let env = Env::new();
    let info = json_of_success(&env.run(&["lab", "up", "--json"]));
    let id = info["id"].as_str().unwrap().to_string();
    let (sns, cns) = (netns_of(&info, "server"), netns_of(&info, "client"));
    // it says "serving" once every queue's socket is in the map
    let first = serve_ready(&env, &["--path", "bypass", "--port", "7400"]);
    let ping = || {
        Command::new("ip")
            .args([
                "netns", "exec", &cns, "ping", "-c", "3", "-i", "0.2", "-W", "1",
            ])
            .arg("198.18.0.3")
            .output()
            .unwrap()
    };
    // the first answers from the moment it said so
    assert!(ping().status.success(), "the first serve answers ping");

    let o = env.run(&[
        "serve",
        "--lab",
        "--path",
        "bypass",
        "--port",
        "7400",
        "--force",
        "--duration",
        "2",
    ]);
    let msg = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains(&format!("bypass process {}", first.id())) && msg.contains("kill"),
        "{msg}"
    );
    // and without --force the advice names the link's holder
    let o = env.run(&["serve", "--lab", "--path", "bypass", "--duration", "2"]);
    let msg = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{msg}");
    assert!(msg.contains(&format!("of pid {}", first.id())), "{msg}");
    assert!(ping().status.success(), "the first serve still answers");

    // lab down keeps the lab in use, and says by whom
    let o = env.run(&["lab", "down", "--json"]);
    let d = json_of_success(&o);
    assert!(netns_exists(&sns) && netns_exists(&cns), "{d}");
    let kept = d["kept"].as_array().unwrap();
    assert!(
        kept.iter().any(|k| k["id"] == id.as_str()
            && k["users"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["pid"] == first.id())),
        "{d}"
    );
    let o = env.run(&["lab", "down", "byp-no-such-lab"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("lab status"));
    assert!(ping().status.success(), "nothing changed for the server");

    let c = stop_serve(first);
    assert!(c["stack.icmp_echo_replied"].as_u64().unwrap() >= 6, "{c}");
    let d = json_of_success(&env.run(&["lab", "down", "--json"]));
    assert!(!netns_exists(&sns) && !netns_exists(&cns), "{d}");
}

/// Starts `bypass serve --lab --json ARGS` and waits (bounded) for the
/// line that says it is serving; stdout stays piped for its counters.
fn serve_ready(env: &Env, args: &[&str]) -> std::process::Child {
    let mut all = vec!["serve", "--lab", "--json"];
    all.extend_from_slice(args);
    let mut child = env
        .cmd(&all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut err, &mut line).unwrap();
    assert!(line.starts_with("serving"), "bypass serve {args:?}: {line}");
    // the rest of its stderr is read (and shown), so that it never writes
    // into a closed pipe
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut err, &mut std::io::stderr());
    });
    child
}

/// The servers of both paths against hostile and standard clients from
/// the client namespace: HTTP with a body announced at 10^12 bytes (413,
/// closed), a head that never ends (431, closed), pipelining from a client
/// that never reads (it stalls; the server's memory stays put; the next
/// client is served); the echo service (RFC 862) gives back a 1 MiB TCP
/// stream and UDP datagrams whole; sockperf's ping-pong runs against the
/// sockperf service over UDP and TCP.
#[test]
fn both_paths_servers_are_bounded_and_speak_echo_and_sockperf() {
    if !root() {
        return;
    }
    let env = Env::new();
    let info = json_of_success(&env.run(&["lab", "up", "--json"]));
    let cns = netns_of(&info, "client");
    let script = include_str!("scripts/bounded_servers.py");
    let client = |mode: &str, addr: &str, pid: u32| {
        let o = Command::new("ip")
            .args([
                "netns", "exec", &cns, "timeout", "60", "python3", "-c", script,
            ])
            .args([mode, addr, "7600", &pid.to_string()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "{mode} against {addr}: {text} {}",
            String::from_utf8_lossy(&o.stderr)
        );
        text
    };
    for (path, addr) in [("kernel", "198.18.0.1"), ("bypass", "198.18.0.3")] {
        let serve = serve_ready(
            &env,
            &[
                "--path", path, "--proto", "http", "--size", "64:1000", "--port", "7600",
            ],
        );
        let got = client("http", addr, serve.id());
        let c = stop_serve(serve);
        assert!(
            c["oversized_requests"].as_u64().unwrap() >= 2,
            "{path}: {c} {got}"
        );
        eprintln!("{path} http: {got}");

        let serve = serve_ready(&env, &["--path", path, "--proto", "echo", "--port", "7600"]);
        let got = client("echo", addr, serve.id());
        let c = stop_serve(serve);
        assert!(c["udp_out"].as_u64().unwrap() >= 99, "{path}: {c} {got}");
        if path == "bypass" {
            // the lab's veths leave TCP/UDP checksums partial: trusted
            assert!(
                c["stack.checksums_trusted"].as_u64().unwrap_or(0) > 0,
                "{c}"
            );
        } else {
            // the kernel serve reports its namespace's counters that moved
            assert!(
                c["kernel.Udp.InDatagrams"].as_u64().unwrap_or(0) >= 99,
                "{c}"
            );
            assert_eq!(c["kernel.Tcp.PassiveOpens"], 1, "{c}");
        }

        // --idle-timeout: the quiet connection goes, the busy one stays
        let serve = serve_ready(
            &env,
            &[
                "--path",
                path,
                "--proto",
                "echo",
                "--port",
                "7600",
                "--idle-timeout",
                "1",
            ],
        );
        let got = client("idle", addr, serve.id());
        let c = stop_serve(serve);
        assert!(
            c["idle_timeouts"].as_u64().unwrap() >= 1,
            "{path}: {c} {got}"
        );

        let serve = serve_ready(
            &env,
            &["--path", path, "--proto", "sockperf", "--port", "7600"],
        );
        for tcp in [false, true] {
            let mut args = vec![
                "netns",
                "exec",
                &cns,
                "timeout",
                "30",
                "sockperf",
                "ping-pong",
                "-i",
                addr,
                "-p",
                "7600",
                "-t",
                "1",
                "-m",
                "64",
                "--full-rtt",
            ];
            if tcp {
                args.push("--tcp");
            }
            let o = Command::new("ip").args(&args).output().unwrap();
            let text = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            // "Total N observations; ..."
            let observations: u64 = text
                .lines()
                .filter_map(|l| {
                    let w: Vec<&str> = l.split_whitespace().collect();
                    let i = w.iter().position(|x| x.starts_with("observations"))?;
                    w.get(i.checked_sub(1)?)?.parse().ok()
                })
                .next()
                .unwrap_or(0);
            assert!(
                o.status.success() && observations > 100,
                "sockperf (tcp {tcp}) against the {path} server: {text}"
            );
        }
        let c = stop_serve(serve);
        assert_eq!(c["bad_requests"], 0, "{path}: {c}");
    }
    // a lab that completes every checksum: the stack serve verifies each
    assert!(env.run(&["lab", "down"]).status.success());
    let info = json_of_success(&env.run(&["lab", "up", "--verify-checksums", "--json"]));
    assert_eq!(info["full_checksums"], true, "{info}");
    let cns = netns_of(&info, "client");
    let serve = serve_ready(
        &env,
        &["--path", "bypass", "--proto", "echo", "--port", "7600"],
    );
    let o = Command::new("ip")
        .args([
            "netns", "exec", &cns, "timeout", "60", "python3", "-c", script,
        ])
        .args(["echo", "198.18.0.3", "7600", &serve.id().to_string()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c = stop_serve(serve);
    assert_eq!(c["stack.checksums_trusted"].as_u64().unwrap_or(0), 0, "{c}");
    assert!(c["udp_out"].as_u64().unwrap() >= 99, "{c}");
    assert_eq!(c["stack.parse_dropped"].as_u64().unwrap_or(0), 0, "{c}");
}

/// Runs `f` on a thread of its own inside network namespace `ns`.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// One `bypass serve --path bypass` serves TCP and UDP at once on one
/// stack: curl (HTTP over TCP) and a kernel UDP client in the client
/// namespace, side by side. Then a second serve on the same lab: the
/// client's kernel still holds the stack's MAC and does not ask, so the
/// new stack must ask for the client by ARP itself (tcpdump shows its
/// request); no namespace has a static neighbour entry.
#[test]
fn serve_bypass_answers_curl_and_udp_at_once_and_asks_for_its_peer_by_arp() {
    if !root() {
        return;
    }
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let info = json_of_success(&env.run(&["lab", "up", "--json"]));
    let cns = netns_of(&info, "client");
    let ciface = info["client"]["iface"].as_str().unwrap().to_string();
    let sns = netns_of(&info, "server");
    for round in 0..2 {
        let dump = (round == 1).then(|| {
            let d = Command::new("ip")
                .args(["netns", "exec", &cns, "timeout", "20", "tcpdump"])
                .args(["-i", &ciface, "-nn", "-l", "arp"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("tcpdump");
            std::thread::sleep(Duration::from_millis(1500));
            d
        });
        let serve = env
            .cmd(&["serve", "--lab", "--path", "bypass", "--proto", "http"])
            .args(["--port", "7400", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // UDP on one thread (echo: each datagram's sequence header comes
        // back), curl on this one, at the same time
        let udp = std::thread::spawn({
            let cns = cns.clone();
            move || {
                in_netns(&cns, || {
                    let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
                    s.set_read_timeout(Some(Duration::from_millis(200)))
                        .unwrap();
                    let deadline = Instant::now() + Duration::from_secs(15);
                    let (mut ok, mut i) = (0u32, 0u64);
                    let mut buf = [0u8; 2048];
                    while ok < 200 && Instant::now() < deadline {
                        let mut m = i.to_be_bytes().to_vec();
                        m.extend_from_slice(&[7u8; 56]);
                        let _ = s.send_to(&m, "198.18.0.3:7400");
                        // echoes of datagrams the kernel held while it
                        // resolved the stack may come first: take every
                        // echo of one sent, until this one's
                        while let Ok((n, _)) = s.recv_from(&mut buf) {
                            let seq = u64::from_be_bytes(buf[..8].try_into().unwrap());
                            ok += u32::from(n == 64 && seq <= i);
                            if seq == i {
                                break;
                            }
                        }
                        i += 1;
                    }
                    ok
                })
            }
        });
        let mut curls = 0;
        let deadline = Instant::now() + Duration::from_secs(15);
        while curls < 20 && Instant::now() < deadline {
            let o = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &cns,
                    "curl",
                    "-s",
                    "-m",
                    "2",
                    "-o",
                    "/dev/null",
                ])
                .args(["-w", "%{http_code}", "http://198.18.0.3:7400/"])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&o.stdout) == "200" {
                curls += 1;
            } else {
                std::thread::sleep(Duration::from_millis(100)); // still starting
            }
        }
        let echoed = udp.join().unwrap();
        let c = stop_serve(serve);
        assert_eq!(curls, 20, "round {round}: {c}");
        assert!(echoed >= 200, "round {round}: {echoed} echoes: {c}");
        assert!(c["accepted"].as_u64().unwrap() >= 20, "{c}");
        assert!(c["udp_out"].as_u64().unwrap() >= 200, "{c}");
        assert_eq!(c["stack.parse_dropped"].as_u64(), Some(0), "{c}");
        if let Some(d) = dump {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(d.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            )
            .unwrap();
            let out = String::from_utf8_lossy(&d.wait_with_output().unwrap().stdout).to_string();
            assert!(
                out.contains("Request who-has 198.18.0.2 tell 198.18.0.3"),
                "the stack asks for its peer by ARP: {out}"
            );
            assert!(c["stack.arp_requests_sent"].as_u64().unwrap() >= 1, "{c}");
        }
    }
    for ns in [&cns, &sns] {
        let o = Command::new("ip")
            .args(["-n", ns, "neigh", "show", "nud", "permanent"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "", "{ns}");
    }
    assert_eq!(env.run(&["lab", "down"]).status.code(), Some(0));
}

/// wrk against `bypass serve --path bypass --proto http` (the stack's TCP
/// over AF_XDP): keep-alive, then `Connection: close` (the server closes
/// first, so it holds the TIME-WAITs), each with no socket error and no
/// non-2xx answer. The kernel client finds the stack's address by ARP.
#[test]
fn wrk_against_the_bypass_http_server_keep_alive_and_close() {
    if !root() {
        return;
    }
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let cns = json_of_success(&env.run(&["lab", "up", "--json"]))["client"]["netns"]
        .as_str()
        .unwrap()
        .to_string();
    let serve = env
        .cmd(&[
            "serve", "--lab", "--path", "bypass", "--proto", "http", "--port", "7500", "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the server: curl until it answers (bounded).
    let url = "http://198.18.0.3:7500/";
    let mut up = false;
    for _ in 0..50 {
        let o = Command::new("ip")
            .args([
                "netns",
                "exec",
                &cns,
                "curl",
                "-s",
                "-m",
                "1",
                "-o",
                "/dev/null",
                url,
            ])
            .output()
            .expect("curl (scripts/setup.sh installs it)");
        if o.status.success() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(up, "the bypass HTTP server never answered");
    let mut total = 0u64;
    for close in [false, true] {
        let mut args = vec![
            "netns",
            "exec",
            &cns,
            "wrk",
            "-t1",
            "-c8",
            "-d2s",
            "--timeout",
            "2s",
        ];
        if close {
            args.extend(["-H", "Connection: close"]);
        }
        args.push(url);
        let o = Command::new("ip")
            .args(&args)
            .output()
            .expect("wrk (scripts/setup.sh installs it)");
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "wrk: {text}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!text.contains("Socket errors"), "close={close}: {text}");
        assert!(!text.contains("Non-2xx"), "close={close}: {text}");
        let requests: u64 = text
            .lines()
            .find(|l| l.contains("requests in"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no request count in: {text}"));
        assert!(
            requests > 1000,
            "close={close}: {requests} requests: {text}"
        );
        total += requests;
    }
    let c = stop_serve(serve);
    assert_eq!(c["bad_requests"].as_u64(), Some(0), "{c}");
    assert!(c["requests"].as_u64().unwrap() >= total, "{c}");
    // wrk resets the connections it holds when it stops: counted as
    // such, not as I/O errors of the server
    assert!(c["peer_resets"].is_u64(), "{c}");
    assert_eq!(c["io_errors"].as_u64(), Some(0), "{c}");
    // Connection: close opened one connection per request.
    assert!(c["accepted"].as_u64().unwrap() > 1000, "{c}");
    let o = env.run(&["lab", "down"]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn ctrl_c_writes_what_was_measured_and_removes_the_lab() {
    if !root() {
        return;
    }
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let out = env.out_dir();
    let child = env
        .cmd(&[
            "run",
            "rr",
            "udp-rr",
            "--path",
            "kernel",
            "--duration",
            "30",
            "--warmup",
            "0.2",
            "--json",
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let t = Instant::now();
    let o = child.wait_with_output().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "stopping took {:?}",
        t.elapsed()
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "an interrupted run is not a valid one"
    );
    let doc = json(&o);
    assert_eq!(doc["interrupted"], true);
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "the second workload never started");
    let r = &runs[0];
    assert!(r["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "interrupted"));
    let dur = f(&r["duration_s"]);
    assert!(dur > 0.5 && dur < 10.0, "measured {dur} s before the stop");
    assert!(r["ops"].as_u64().unwrap() > 0);
    let sum: u64 = r["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ops"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, r["ops"].as_u64().unwrap());
    assert_lab_gone(&doc);
    // and the files are on disk
    let d = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(d.join("result.json").exists());
}

#[test]
fn lab_up_status_serve_and_down() {
    if !root() {
        return;
    }
    let env = Env::new();
    // nothing up yet
    let o = env.run(&["serve", "--lab"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bypass lab up"));

    let o = env.run(&["lab", "up", "--queues", "4", "--json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let info = json(&o);
    let sns = netns_of(&info, "server");
    let cns = netns_of(&info, "client");
    assert!(netns_exists(&sns) && netns_exists(&cns));
    assert!(info["server"]["iface"].as_str().unwrap().len() <= 15);

    // a second lab is refused
    let o = env.run(&["lab", "up"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already up"));

    // status tells scripts where everything is
    let st = json(&env.run(&["lab", "status", "--json"]));
    let lab = &st["labs"][0];
    assert_eq!(lab["server"]["addr"], "198.18.0.1");
    assert_eq!(lab["client"]["addr"], "198.18.0.2");
    assert_eq!(lab["server"]["netns"], sns.as_str());
    for q in lab["queue_counts"].as_array().unwrap() {
        assert_eq!(q[1], 4, "rx queues: {q}");
        assert_eq!(q[2], 4, "tx queues: {q}");
    }

    // serve HTTP in the lab; curl from the client namespace
    let mut serve = env
        .cmd(&[
            "serve", "--lab", "--proto", "http", "--size", "64:100", "--port", "7300", "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let curl = |extra: &[&str]| {
        let mut args = vec![
            "netns",
            "exec",
            &cns,
            "curl",
            "-s",
            "-m",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
        ];
        args.extend_from_slice(extra);
        args.push("http://198.18.0.1:7300/");
        Command::new("ip").args(&args).output()
    };
    // wait for the server to listen (bounded)
    let t = Instant::now();
    let mut answer = String::new();
    while t.elapsed() < Duration::from_secs(10) {
        match curl(&[]) {
            Ok(o) if o.status.success() => {
                answer = String::from_utf8_lossy(&o.stdout).into_owned();
                break;
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => {
                eprintln!("SKIP part: curl is not installed ({e})");
                break;
            }
        }
    }
    let curl_ok = !answer.is_empty();
    if curl_ok {
        assert_eq!(answer, "200 100");
        let o = curl(&["-H", "Connection: close"]).unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout), "200 100");
    }
    // hardware mode from inside the client namespace, against this server:
    // the default `--path both` runs the kernel path there
    let cif = info["client"]["iface"].as_str().unwrap().to_string();
    let out = env.out_dir();
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            &cns,
            bin(),
            "run",
            "rr",
            "--proto",
            "http",
            "--iface",
            &cif,
            "--addr",
            "198.18.0.2",
            "--peer",
            "198.18.0.1",
            "--port",
            "7300",
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--json",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let doc = json(&o);
    assert_eq!(doc["env"]["mode"], "hardware");
    let r = &doc["runs"][0];
    assert_eq!(r["path"], "kernel");
    assert!(r["ops"].as_u64().unwrap() > 0);
    assert!(
        r["cpu"]["server_us_per_op"].is_null(),
        "a remote server's CPU is not measured"
    );
    // a second server on the same port is refused with a clear message
    let o = env.run(&["serve", "--lab", "--port", "7300", "--duration", "1"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("in use"));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(serve.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let t = Instant::now();
    while serve.try_wait().unwrap().is_none() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = serve.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let counters = json(&o);
    if curl_ok {
        assert!(counters["requests"].as_u64().unwrap() >= 2, "{counters}");
        assert!(counters["accepted"].as_u64().unwrap() >= 2);
    }
    assert_eq!(counters["bad_requests"], 0);

    let o = env.run(&["lab", "down", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let removed = json(&o);
    assert!(removed["removed"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n == sns.as_str()));
    assert!(!netns_exists(&sns) && !netns_exists(&cns));
    let st = json(&env.run(&["lab", "status", "--json"]));
    assert!(st["labs"].as_array().unwrap().is_empty());
}

/// Starts `bypass run rr --path kernel` for 30 s, waits until its lab is
/// up, SIGKILLs it (no cleanup runs) and returns its namespaces.
fn a_killed_run(env: &Env) -> Vec<String> {
    let mut child = env
        .cmd(&[
            "run",
            "rr",
            "--path",
            "kernel",
            "--duration",
            "30",
            "--out",
            env.out_dir().to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // the run's namespaces carry its pid in hex
    let prefix = format!("byp-{:x}", child.id());
    let t = Instant::now();
    let mut mine = Vec::new();
    while t.elapsed() < Duration::from_secs(10) && mine.len() < 2 {
        mine = std::fs::read_dir("/run/netns")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&prefix) && n.len() == prefix.len() + 6)
                    .collect()
            })
            .unwrap_or_default();
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(mine.len(), 2, "the run's lab did not come up: {mine:?}");
    // into the first measurement: past the calibration, nothing written yet
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap(); // SIGKILL: no cleanup runs
    child.wait().unwrap();
    mine
}

/// A SIGKILLed run leaves its namespaces (nothing of its own runs any
/// more) and no empty result directory; `lab status` lists them as
/// leftovers, the next `bypass run` removes them when it starts, and so
/// does `lab down`. (Another test's lab may reap them first: every new lab
/// does; then they are gone all the same.)
#[test]
fn a_killed_runs_leftovers_go_with_the_next_run_or_lab_down() {
    if !root() {
        return;
    }
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let mine = a_killed_run(&env);
    let empty_dirs: Vec<_> = std::fs::read_dir(env.out_dir())
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.path().is_dir()
                        && std::fs::read_dir(e.path()).is_ok_and(|mut x| x.next().is_none())
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        empty_dirs.is_empty(),
        "empty result directories: {empty_dirs:?}"
    );
    let st = json(&env.run(&["lab", "status", "--json"]));
    let left: Vec<&str> = st["leftovers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for n in &mine {
        assert!(
            left.contains(&n.as_str()) || !netns_exists(n),
            "{n} not reported as a leftover: {left:?}"
        );
    }
    // the next run reaps them as it starts
    let o = env.run(&[
        "run",
        "udp-rr",
        "--path",
        "kernel",
        "--duration",
        "0.3",
        "--warmup",
        "0.1",
        "--json",
        "--out",
        env.out_dir().to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        mine.iter().all(|n| !netns_exists(n)),
        "the next run removed them: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    // and lab down removes another killed run's
    let mine = a_killed_run(&env);
    let o = env.run(&["lab", "down"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        mine.iter().all(|n| !netns_exists(n)),
        "lab down removed them"
    );
}

#[test]
fn not_root_is_a_clear_error() {
    if !root() {
        let o = Env::new().run(&["lab", "up"]);
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("needs root"));
        return;
    }
    // as root: drop to `nobody` for the call
    let o = Command::new("runuser")
        .args(["-u", "nobody", "--", bin(), "lab", "up"])
        .output();
    match o {
        Ok(o)
            if matches!(o.status.code(), Some(126) | Some(127))
                || o.status.code() == Some(1) && o.stderr.is_empty() =>
        {
            eprintln!("SKIP: user nobody cannot execute {} here", bin());
        }
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            if err.contains("Permission denied") || err.contains("cannot execute") {
                eprintln!("SKIP: user nobody cannot execute {} here: {err}", bin());
                return;
            }
            assert_eq!(o.status.code(), Some(2), "{err}");
            assert!(err.contains("needs root"), "{err}");
        }
        Err(e) => eprintln!("SKIP: runuser is not available ({e})"),
    }
}

#[test]
fn user_errors_exit_2_with_a_message_that_says_what_to_do() {
    let env = Env::new();
    let cases: &[(&[&str], &str)] = &[
        (&["run", "--duration", "abc"], "not a duration"),
        (&["run", "--duration=-3"], "positive"),
        (&["run", "--duration", "0"], "at least"),
        (&["run", "--size", "0"], "at least 1 byte"),
        (&["run", "--size", "lots"], "not a size"),
        (&["run", "udp-rr", "--size", "4"], "out of range"),
        (&["run", "tcp"], "unknown workload"),
        (&["run", "--rate=-1"], "rate"),
        (&["run", "--connections", "0"], "connections"),
        (
            &["run", "--duration", "-1"],
            "a duration must be a positive number",
        ),
        (
            &["run", "--rate", "-5"],
            "the rate must be between 1 and 1e9",
        ),
        (
            &["run", "--connections", "-1"],
            "--connections must be between 1 and 100000",
        ),
        (&["run", "--rounds", "-2"], "-2 is not in 1..=1000"),
        (&["run", "--port", "-1"], "-1 is not in 1..=65534"),
        (
            &["run", "--cores", "-1"],
            "--cores must be between 1 and 1024",
        ),
        (
            &["serve", "--duration", "-1"],
            "a duration must be a positive number",
        ),
        (&["run", "--cores", "99"], "--cores"),
        (&["run", "--server-cpus", "77"], "not available"),
        (&["serve", "--path", "bypass"], "needs --lab"),
        (
            &["serve", "--path", "both"],
            "possible values: kernel, bypass",
        ),
        (&["run", "--path", "kernel,fast"], "invalid value 'fast'"),
        (&["run", "--rounds", "0"], "--rounds"),
        (&["run", "--sweep", "rate=5000"], "two steps or more"),
        (&["run", "--sweep", "power=1,2"], "cannot be swept"),
        (
            &["run", "rr", "--sweep", "rate=1000,2000", "--rate", "10"],
            "drop --rate",
        ),
        (
            &["run", "stream", "--sweep", "rate=1000,2000"],
            "not to stream",
        ),
        (&["run", "--slo-p99", "100"], "--sweep"),
        (
            &[
                "run",
                "--server",
                "198.18.0.1",
                "--client",
                "198.18.0.2",
                "--sweep",
                "rate=1,2",
            ],
            "not across hosts",
        ),
        (&["lab", "up", "--queues", "0"], "out of range"),
        (
            &[
                "run",
                "--iface",
                "bypnosuch0",
                "--addr",
                "198.18.0.2",
                "--peer",
                "198.18.0.1",
            ],
            "no such interface",
        ),
        (
            &[
                "run",
                "--iface",
                "lo",
                "--addr",
                "198.18.0.2",
                "--peer",
                "198.18.0.1",
            ],
            "not an address of lo",
        ),
        (
            &[
                "run",
                "--iface",
                "lo",
                "--addr",
                "127.0.0.1",
                "--peer",
                "198.18.0.1",
            ],
            "outside the subnets",
        ),
        (&["compare", "/nonexistent/a", "/nonexistent/b"], "reading"),
    ];
    for (args, needle) in cases {
        let o = env.run(args);
        let err = String::from_utf8_lossy(&o.stderr);
        if !root() && err.contains("needs root") {
            continue;
        }
        let code = o.status.code();
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected `{needle}` in: {err}"
        );
    }
}

/// `--syn-flood`: spoofed SYNs from unused hosts at the measured server,
/// counted where they land (cookies on the stack), while crr goes on on
/// every path; the control's frames (IP protocol 253) reach the stack
/// server too, and it drops them without a SYN-ACK.
#[test]
fn a_syn_flood_is_sent_counted_and_survived_on_both_paths() {
    if !root() {
        return;
    }
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    for at in ["server", "control"] {
        let doc = run_json(
            &env,
            &[
                "crr",
                "--path",
                "kernel,bypass",
                "--duration",
                "1",
                "--warmup",
                "0.5",
                "--connections",
                "4",
                "--syn-flood",
                "20000",
                "--syn-flood-at",
                at,
            ],
        );
        for r in doc["runs"].as_array().unwrap() {
            let c = &r["counters"];
            let get = |k: &str| c[k].as_u64().unwrap_or(0);
            let path = r["path"].as_str().unwrap();
            // ~1.8 s of flood at 20 k/s (paced: neither lost nor burst)
            let sent = get("flood.syns_sent");
            assert!(
                (20_000..=60_000).contains(&sent),
                "{at} {path}: {sent} sent: {c}"
            );
            assert_eq!(get("flood.send_errors"), 0, "{c}");
            assert!(
                r["ops"].as_u64().unwrap() > 50,
                "{at} {path}: crr stopped: {c}"
            );
            if path == "bypass" {
                let hit = get("server.stack.tcp.syn_queue_overflows");
                if at == "server" {
                    // the SYN queue (1024) overflows, and cookies answer
                    assert!(hit > 1000, "{c}");
                    assert!(get("server.stack.tcp.syn_cookies_sent") > 1000, "{c}");
                } else {
                    assert_eq!(hit, 0, "{c}");
                    assert_eq!(get("server.stack.tcp.syn_cookies_sent"), 0, "{c}");
                    assert!(get("server.stack.rx_frames") > 20_000, "{c}");
                }
            }
        }
        assert_lab_gone(&doc);
    }
}

/// `--hold N`: the stack's client opens N idle connections from its 32
/// aliases during the warm-up and holds them through the window, against
/// a kernel server and the stack's; crr goes on beside them. `--hold`
/// where it cannot work is refused with the fix.
#[test]
fn held_connections_come_from_the_aliases_and_stay_through_the_window() {
    if !root() {
        return;
    }
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let doc = run_json(
        &env,
        &[
            "crr",
            "--path",
            "bypass-client,bypass-both",
            "--duration",
            "1",
            "--warmup",
            "1",
            "--connections",
            "4",
            "--hold",
            "3000",
        ],
    );
    for r in doc["runs"].as_array().unwrap() {
        let c = &r["counters"];
        let get = |k: &str| c[k].as_u64().unwrap_or(0);
        let path = r["path"].as_str().unwrap();
        assert_eq!(
            (
                get("client.held_at_t0"),
                get("client.held"),
                get("client.hold_lost")
            ),
            (3000, 3000, 0),
            "{path}: {c}"
        );
        // no flag that says the hold fell short or the run is invalid (the
        // shared machine may add a caution flag such as foreign_load)
        let flags = r["flags"].as_array().unwrap();
        assert!(
            flags
                .iter()
                .all(|f| ["foreign_load", "cpu_stolen", "unsteady"].contains(&f.as_str().unwrap())),
            "{path}: {r}"
        );
        // opened within the warm-up, and timed
        assert!(
            (1..1000).contains(&get("client.hold_fill_ms")),
            "{path}: {c}"
        );
        assert!(r["ops"].as_u64().unwrap() > 50, "{path}: crr stopped: {c}");
        // the server asked for every alias, and the stack answered each
        assert!(get("client.stack.arp_replies_sent") >= 32, "{path}: {c}");
        assert!(get("server.accepted") >= 3000, "{path}: {c}");
    }
    assert_eq!(doc["config"]["hold"], "3000");
    assert_lab_gone(&doc);
    for (args, says) in [
        (&["udp-rr", "--hold", "10"][..], "crr or rr"),
        (
            &["crr", "--path", "kernel", "--hold", "10"][..],
            "bypass-client,bypass-both",
        ),
        (&["crr", "--hold", "-5"][..], "--hold must be between 1 and"),
    ] {
        let mut a = vec!["run"];
        a.extend_from_slice(args);
        let o = env.run(&a);
        let msg = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {msg}");
        assert!(msg.contains(says), "{args:?}: {msg}");
    }
}

/// `bypass doctor` on a lab's veth: every check once, the facts of a veth
/// (no zero-copy, no device interrupts) as facts, not warnings; an MTU
/// beyond single-buffer XDP and more shards than queues are warnings with
/// their fix; a run records the preflight in its env. Zero-copy asked of a
/// veth fails the start with a usage error that names the driver.
#[test]
fn doctor_checks_a_lab_and_a_run_records_it() {
    if !root() {
        return;
    }
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let info = json_of_success(&env.run(&["lab", "up", "--json"]));
    let ns = netns_of(&info, "server");
    let iface = info["server"]["iface"].as_str().unwrap().to_string();
    let doctor = |extra: &[&str]| {
        let mut a = vec!["doctor", "--netns", &ns, "--iface", &iface, "--json"];
        a.extend_from_slice(extra);
        let v = json_of_success(&env.run(&a));
        v[0]["checks"].as_array().unwrap().clone()
    };
    let find = |checks: &[Value], kind: &str| -> Value {
        checks
            .iter()
            .find(|c| c["check"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {checks:?}"))
            .clone()
    };
    let checks = doctor(&[]);
    let kinds: Vec<&str> = checks
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    for k in [
        "driver",
        "xdp_features",
        "queues",
        "irq_affinity",
        "irqbalance",
        "cpu_frequency",
        "smt",
        "offloads",
        "mtu",
        "sysctls",
    ] {
        assert_eq!(
            kinds.iter().filter(|x| **x == k).count(),
            1,
            "{k}: {kinds:?}"
        );
    }
    let drv = find(&checks, "driver");
    assert!(
        drv["finding"].as_str().unwrap().starts_with("veth"),
        "{drv}"
    );
    let x = find(&checks, "xdp_features");
    assert_eq!(x["status"], "info", "{x}");
    assert!(x["finding"].as_str().unwrap().contains("redirect"), "{x}");
    assert_eq!(find(&checks, "mtu")["status"], "ok");
    assert_eq!(find(&checks, "queues")["status"], "ok");

    // two shards for the lab's one queue; an MTU over a page, which veth
    // takes in several buffers (rx-sg) on this kernel (multi-buffer AF_XDP)
    let set = Command::new("ip")
        .args([
            "netns", "exec", &ns, "ip", "link", "set", &iface, "mtu", "4000",
        ])
        .status()
        .unwrap();
    assert!(set.success());
    let checks = doctor(&["--cores", "2"]);
    let mtu = find(&checks, "mtu");
    assert_eq!(mtu["status"], "ok", "{mtu}");
    assert!(
        mtu["finding"].as_str().unwrap().contains("XDP_USE_SG"),
        "{mtu}"
    );
    let q = find(&checks, "queues");
    assert_eq!(q["status"], "warn", "{q}");
    assert!(q["fix"].as_str().unwrap().contains("combined 2"), "{q}");
    let text = env.run(&["doctor", "--netns", &ns, "--iface", &iface, "--cores", "2"]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("[ok  ] mtu"), "{text}");
    assert!(text.contains("1 warning(s)"), "{text}");
    assert_eq!(
        env.run(&["doctor", "--netns", "byp-no-such-ns"])
            .status
            .code(),
        Some(2)
    );
    assert!(env.run(&["lab", "down"]).status.success());

    // a run of its own lab: the preflight is in the env
    let doc = short_bypass_run(&env, &["udp-rr"]);
    let p = &doc["env"]["preflight"];
    assert!(p["iface"].as_str().unwrap().starts_with("byp"), "{p}");
    assert_eq!(p["checks"].as_array().unwrap().len(), 10, "{p}");
    let warned = p["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["status"] == "warn");
    for r in doc["runs"].as_array().unwrap() {
        let flagged = r["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "preflight");
        assert_eq!(flagged, warned, "{r}");
    }

    // zero-copy asked of a veth: a usage error, nothing measured
    let o = env.run(&[
        "run",
        "udp-rr",
        "--path",
        "bypass",
        "--xsk-bind",
        "zero-copy",
        "--duration",
        "1",
        "--warmup",
        "0.3",
        "--json",
        "--out",
        env.out_dir().to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--xsk-bind zero-copy") && err.contains("veth"),
        "{err}"
    );
}

/// Jumbo frames: `--mtu 9000` sets both veth ends, the env records it, and
/// stream runs on the kernel path and on the bypass path at it: the bypass
/// sockets bind multi-buffer, frames over a 4 KiB UMEM frame arrive joined,
/// none is dropped, no descriptor is invalid, and the bytes are checked by
/// the server as on any run (a corrupt join would fail the stream). With
/// `--verify-checksums` every checksum is verified. An MTU
/// out of range is a usage error naming the range.
#[test]
fn jumbo_frames_run_on_both_paths_at_mtu_9000() {
    if !root() {
        return;
    }
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let doc = run_json(
        &env,
        &[
            "stream",
            "--path",
            "kernel,bypass-both",
            "--mtu",
            "9000",
            "--verify-checksums",
            "--duration",
            "1",
            "--warmup",
            "0.3",
        ],
    );
    assert_eq!(doc["env"]["mtu"], 9000, "{}", doc["env"]);
    assert_eq!(doc["env"]["lab"]["mtu"], 9000);
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        assert!(r["bits_per_s"].as_f64().unwrap() > 0.0, "{r}");
        assert_eq!(r["errors"], 0, "{r}");
        let flags = r["flags"].as_array().unwrap();
        for bad in ["errors", "payload_mismatch", "no_ops", "interrupted"] {
            assert!(!flags.iter().any(|f| f == bad), "{bad}: {r}");
        }
    }
    let b = runs.iter().find(|r| r["path"] == "bypass-both").unwrap();
    let c = &b["counters"];
    for side in ["server", "client"] {
        assert_eq!(c[format!("{side}.xsk.multi_buffer")], 1, "{c}");
        for k in [
            "xsk.rx_join_dropped",
            "xsk.rx_dropped",
            "xsk.rx_invalid_descs",
            "xsk.tx_invalid_descs",
            "stack.parse_dropped",
            "stack.checksums_trusted",
        ] {
            assert_eq!(c[format!("{side}.{k}")], 0, "{side}.{k}: {c}");
        }
        // no TX metadata with multi-buffer: the stack's checksums
        assert_eq!(c[format!("{side}.xsk.tx_checksum_offload")], 0, "{c}");
    }
    // the client sends: the server receives full-size segments, joined
    assert!(c["server.xsk.rx_joined"].as_u64().unwrap() > 1000, "{c}");
    assert_lab_gone(&doc);

    let o = env.run(&["run", "stream", "--mtu", "100"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("576 to 65000"), "{err}");
}
