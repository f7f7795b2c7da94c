//! `bypass`: measures how much a kernel-bypass data path beats the kernel's
//! socket path, workload by workload, in a lab of its own or on real NICs.
//!
//! Exit status: 0 done and valid; 1 the run failed or its result is not
//! trustworthy (its flags say why); 2 usage or environment error.

mod agent;
mod app;
mod bypass;
mod calibrate;
mod cli;
mod controller;
mod curve;
mod datapath;
mod doctor;
mod error;
mod flood;
mod kernel;
mod lab;
mod measurement;
mod metrics;
mod orchestrate;
mod outcome;
mod ratio;
mod remote;
mod report;
mod result;
mod run;
mod side;
mod stats;
mod summary;
mod sweep;
mod sys;
mod workload;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;

use crate::cli::{run_options, AgentArgs, Cli, Cmd, LabCmd, RunArgs, ServeArgs};

use crate::datapath::ServePath;
use crate::error::usage;
use crate::run::{Hardware, RunOptions};
use crate::workload::Workload;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BYPASS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bypass: {e:#}");
            error::exit_code(&e)
        }
    };
    std::process::exit(code);
}

/// SIGINT/SIGTERM set the returned flag (the work stops, writes what it has
/// and cleans up); a second signal ends the process at once.
fn interrupt_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone())?;
        signal_hook::flag::register(sig, flag.clone())?;
    }
    Ok(flag)
}

fn dispatch(cli: Cli) -> Result<i32> {
    match cli.cmd {
        Cmd::Run(a) => cmd_run(*a),
        Cmd::Serve(a) => cmd_serve(a),
        Cmd::Agent(a) => cmd_agent(a),
        Cmd::Lab { cmd } => cmd_lab(cmd),
        Cmd::Compare { a, b, json } => {
            let da = result::load(&a)?;
            let db = result::load(&b)?;
            let rows = ratio::compare(&da, &db);
            for w in ratio::calibration_drift(&da, &db) {
                eprintln!("warning: {w}");
            }
            if rows.is_empty() {
                return Err(usage(format!(
                    "{} and {} have no (workload, path) in common: nothing to compare",
                    a.display(),
                    b.display()
                )));
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!(
                    "{}",
                    summary::compare_table(
                        &rows,
                        &a.display().to_string(),
                        &b.display().to_string()
                    )
                );
            }
            Ok(0)
        }
        Cmd::Doctor(a) => cmd_doctor(a),
        Cmd::Report { dir } => {
            if !dir.is_dir() {
                return Err(usage(format!(
                    "{} is not a result directory (one holding result.json)",
                    dir.display()
                )));
            }
            if dir.join("sweep.json").is_file() {
                let s = sweep::rewrite_report(&dir)?;
                print!("{s}");
                return Ok(0);
            }
            let doc = result::load(&dir)?;
            let s = orchestrate::write_report(&dir, &doc)?;
            print!("{s}");
            Ok(0)
        }
    }
}

fn cmd_run(a: RunArgs) -> Result<i32> {
    let workloads = if a.workloads.is_empty() {
        Workload::ALL.to_vec()
    } else {
        let mut v = Vec::new();
        for w in &a.workloads {
            let w: Workload = w.parse().map_err(usage)?;
            if !v.contains(&w) {
                v.push(w);
            }
        }
        v
    };
    if a.duration < Duration::from_millis(100) {
        return Err(usage(
            "--duration must be at least 100ms (example: --duration 3)",
        ));
    }
    if a.rate.is_some() && workloads == [Workload::Stream] {
        return Err(usage(
            "--rate applies to crr, rr, udp-rr and udp-stream, not to stream",
        ));
    }
    if let Some(server) = a.server.clone() {
        if a.sweep.is_some() {
            return Err(usage(
                "--sweep runs in the lab or on --iface for now, not across hosts: drop --sweep, or run one `bypass run --rate R` per step",
            ));
        }
        return cmd_run_remote(a, workloads, server);
    }
    if a.ssh || a.secret_file.is_some() {
        return Err(usage(
            "--ssh and --secret-file are for a run across hosts: add --server AGENT --client AGENT",
        ));
    }
    let hardware = match (&a.iface, a.addr, a.peer) {
        (Some(iface), Some(addr), Some(peer)) => {
            sys::check_hardware(iface, addr, Some(peer))?;
            Some(Hardware {
                iface: iface.clone(),
                addr,
                peer,
            })
        }
        _ => None,
    };
    if hardware.is_none() {
        lab::require_root("`bypass run` in the lab")?;
    }
    let (server_cpus, client_cpus) = a.placement.resolve()?;
    let queues = a.queues.unwrap_or(server_cpus.len().max(1) as u32);
    let opts = run_options(&a, workloads, (server_cpus, client_cpus), queues, hardware)?;
    let interrupt = interrupt_flag()?;
    if let Some(sw) = &a.sweep {
        return cmd_sweep(&a, sw, opts, interrupt);
    }
    let (doc, dir) = run::run(&opts, interrupt)?;
    print_result(&opts, &doc, &dir)
}

/// `bypass run --sweep`: the steps' options checked first, then each step
/// run as a multi-round run of its own.
fn cmd_sweep(
    a: &RunArgs,
    sw: &cli::SweepArg,
    opts: RunOptions,
    interrupt: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<i32> {
    use curve::SweepParam;
    let conflict = match sw.param {
        SweepParam::Rate => a.rate.is_some().then_some("--rate"),
        SweepParam::Size => a.size.is_some().then_some("--size"),
        SweepParam::Cores => (a.placement.cores.is_some()
            || a.placement.server_cpus.is_some()
            || a.placement.client_cpus.is_some())
        .then_some("--cores, --server-cpus and --client-cpus"),
    };
    if let Some(flag) = conflict {
        return Err(usage(format!(
            "a sweep over {} sets it at each step: drop {flag}",
            sw.param.name()
        )));
    }
    if sw.param == SweepParam::Rate && opts.workloads.contains(&Workload::Stream) {
        return Err(usage(
            "a sweep over the rate applies to crr, rr, udp-rr and udp-stream, not to stream: drop stream, or sweep size or cores",
        ));
    }
    // every step's options, checked before the first runs
    let mut steps = Vec::new();
    for &v in &sw.values {
        let mut o = opts.clone();
        o.name = format!("{}-{}", sw.param.name(), v);
        match sw.param {
            SweepParam::Rate => o.rate = Some(v),
            SweepParam::Size => {
                let n = v as usize;
                o.sizes = Some(workload::Sizes { req: n, resp: n });
                for w in &o.workloads {
                    o.sizes_for(*w).validate_for(*w).map_err(usage)?;
                }
            }
            SweepParam::Cores => {
                let mut p = a.placement.clone();
                p.cores = Some(v as usize);
                let (sc, cc) = p.resolve()?;
                o.queues = a.queues.unwrap_or(sc.len().max(1) as u32);
                (o.server_cpus, o.client_cpus) = (sc, cc);
            }
        }
        steps.push((v, o));
    }
    let plan = sweep::SweepPlan {
        name: &opts.name,
        out: &opts.out,
        param: sw.param,
        values: &sw.values,
        rounds: opts.rounds,
        slo_p99_us: a.slo_p99,
    };
    let (doc, dir) = sweep::sweep(&plan, &interrupt, |v, dir| {
        let (_, o) = steps
            .iter()
            .find(|(x, _)| *x == v)
            .expect("a step for every value");
        let mut o = o.clone();
        o.out = dir.to_path_buf();
        if !o.json {
            eprintln!("sweep: {} = {}", sw.param.name(), v);
        }
        run::run(&o, interrupt.clone())
    })?;
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", doc.summary(&[]));
        println!("\nsweep: {}", dir.display());
    }
    Ok(if doc.valid() { 0 } else { 1 })
}

/// Prints a run's table (or its document with --json); the exit status.
fn print_result(opts: &RunOptions, doc: &result::ResultDoc, dir: &std::path::Path) -> Result<i32> {
    if opts.json {
        println!("{}", serde_json::to_string_pretty(doc)?);
    } else {
        print!("{}", summary::table(doc));
        println!("\nresult: {}", dir.display());
        if doc.interrupted {
            println!("interrupted: the figures cover what was measured before the stop");
        }
    }
    for r in doc
        .runs
        .iter()
        .filter(|r| r.flags.iter().any(|f| f == "hold_short"))
    {
        let get = |k: &str| r.counters.get(k).copied().unwrap_or(0);
        let fill = match get("client.hold_fill_ms") {
            0 => "did not fill".to_string(),
            ms => format!("filled in {:.1} s", ms as f64 / 1000.0),
        };
        eprintln!(
            "bypass: {} {}: {} of --hold {} connections were held when the window opened ({}, {} lost): give --warmup the time to open them",
            r.workload,
            r.path,
            get("client.held_at_t0").min(get("client.held")),
            opts.hold,
            fill,
            get("client.hold_lost")
        );
    }
    Ok(if doc.valid() { 0 } else { 1 })
}

/// The shared secret of a controller or agent: from the file, else the
/// environment.
fn secret(file: Option<&PathBuf>) -> Result<remote::Secret> {
    match file {
        Some(f) => remote::Secret::from_file(f).map_err(|e| usage(format!("{e:#}"))),
        None => remote::Secret::from_env()
            .map_err(|e| usage(format!("{e:#}")))?
            .ok_or_else(|| {
                usage(format!(
                    "no shared secret: pass --secret-file FILE or set {} (the same on every host; e.g. `head -c 32 /dev/urandom | base64 > FILE`)",
                    remote::SECRET_ENV
                ))
            }),
    }
}

/// `bypass run --server AGENT --client AGENT...`.
fn cmd_run_remote(
    a: RunArgs,
    workloads: Vec<Workload>,
    server: controller::AgentSpec,
) -> Result<i32> {
    let secret = secret(a.secret_file.as_ref())?;
    // each side's CPUs are placed on its own host, by the controller
    let opts = run_options(&a, workloads, (Vec::new(), Vec::new()), 1, None)?;
    let remote = controller::RemoteOptions {
        server,
        clients: a.client,
        secret,
        ssh: a.ssh.then_some(controller::Ssh {
            program: a.ssh_program,
            binary: a.ssh_binary,
        }),
        cores: a.placement.cores,
        server_cpus: a.placement.server_cpus.map(|l| l.0),
        client_cpus: a.placement.client_cpus.map(|l| l.0),
    };
    let interrupt = interrupt_flag()?;
    let (doc, dir) = controller::run(&opts, &remote, interrupt)?;
    if let Some(f) = &doc.failure {
        let during = format!(
            "{} over the {} path",
            f.workload.as_deref().unwrap_or("-"),
            f.path.as_deref().unwrap_or("-")
        );
        if f.agent.is_empty() {
            eprintln!(
                "bypass: the run ended early at {} during {during}: {}",
                f.at_utc, f.message
            );
        } else {
            eprintln!(
                "bypass: the run ended early at {}: {} agent {} ({}) failed during {during}: {}",
                f.at_utc, f.role, f.agent, f.hostname, f.message
            );
        }
    }
    print_result(&opts, &doc, &dir)
}

fn cmd_agent(a: AgentArgs) -> Result<i32> {
    use std::net::ToSocketAddrs;
    let listen = a
        .listen
        .to_socket_addrs()
        .map_err(|e| usage(format!("--listen {}: {e} (give ADDR:PORT)", a.listen)))?
        .next()
        .ok_or_else(|| usage(format!("--listen {}: no address", a.listen)))?;
    let secret = if a.secret_stdin {
        remote::Secret::from_stdin().map_err(|e| usage(format!("{e:#}")))?
    } else {
        secret(a.secret_file.as_ref())?
    };
    let interrupt = interrupt_flag()?;
    agent::run(
        agent::AgentConfig {
            listen,
            secret,
            allow_ifaces: a.allow_iface,
            stack_addr: a.stack_addr,
            once: a.once,
        },
        interrupt,
    )?;
    Ok(0)
}

fn cmd_serve(a: ServeArgs) -> Result<i32> {
    let (server_cpus, _) = a.placement.resolve()?;
    let (engine, place, banner) = if a.path == ServePath::Bypass {
        serve_on_the_stack(&a, server_cpus)?
    } else {
        serve_on_the_kernel(&a, server_cpus)?
    };
    let interrupt = interrupt_flag()?;
    // the kernel server's namespace counters (SYN cookies, PAWS drops,
    // challenge ACKs, listen overflows, ...), reported as what changed
    let kernel_before =
        (a.path != ServePath::Bypass).then(|| metrics::ns_counters(place.netns.as_deref()));
    let (server, attach) = side::start_server(
        engine,
        &workload::Messages {
            proto: a.proto,
            sizes: a.size,
            port: a.port,
        },
        kernel::server::Services::ALL,
        &place,
        &a.bypass.options(),
        metrics::Window::open_ended(),
        a.idle_timeout,
    )?;
    let started = std::time::Instant::now();
    // on stderr also with --json (stdout carries the document at the end):
    // scripts wait for this line, printed once every socket is in place
    {
        let how = attach.map_or(String::new(), |at| {
            format!("; XDP {} mode, zero-copy {}", at.xdp_mode, at.zero_copy)
        });
        let base = match a.proto {
            workload::Proto::Raw | workload::Proto::Http => {
                format!(
                    "TCP {p} ({} rr/crr) and UDP {p} (udp-rr echo)",
                    a.proto,
                    p = a.port
                )
            }
            workload::Proto::Echo => format!("TCP and UDP {} (echo, RFC 862)", a.port),
            workload::Proto::Discard => format!("TCP and UDP {} (discard, RFC 863)", a.port),
            workload::Proto::Sockperf => format!("TCP and UDP {} (as `sockperf server`)", a.port),
        };
        eprintln!(
            "serving {banner}: {base}, TCP and UDP {p1} (sinks); threads on CPUs {:?}{how}; Ctrl-C to stop",
            place.cpus,
            p1 = a.port + 1
        );
    }
    while !interrupt.load(Ordering::Relaxed) && a.duration.is_none_or(|d| started.elapsed() < d) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let report = server.stop()?;
    let secs = started.elapsed().as_secs_f64();
    // the stack's and the sockets' counters, summed over the shards
    let mut extra: std::collections::BTreeMap<String, u64> = Default::default();
    for t in &report.threads {
        for (k, x) in &t.extra {
            *extra.entry(k.clone()).or_insert(0) += x;
        }
    }
    if let Some(before) = &kernel_before {
        let after = metrics::ns_counters(place.netns.as_deref());
        for (k, d) in metrics::counter_deltas(before, &after) {
            extra.insert(format!("kernel.{k}"), d);
        }
    }
    if a.json {
        let mut v = serde_json::to_value(&report.counters)?;
        v["duration_s"] = serde_json::json!(secs);
        for (k, x) in &extra {
            v[k] = serde_json::json!(x);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let c = &report.counters;
        println!(
            "served {secs:.1} s: {} connections accepted, {} requests ({:.0}/s), {} bad requests, {} datagrams in, {} out, {} bytes in, {} bytes out, {} stream verify errors, {} connections reset by their peer, {} closed idle, {} I/O errors",
            c.accepted,
            c.requests,
            c.requests as f64 / secs.max(1e-9),
            c.bad_requests,
            c.udp_in,
            c.udp_out,
            c.bytes_in,
            c.bytes_out,
            c.stream_verify_errors,
            c.peer_resets,
            c.idle_timeouts,
            c.io_errors
        );
        for (k, x) in &extra {
            println!("{k}={x}");
        }
    }
    Ok(0)
}

/// Where `bypass serve --path kernel` serves: the lab's server namespace,
/// or this host at `--addr`.
fn serve_on_the_kernel(
    a: &ServeArgs,
    server_cpus: Vec<usize>,
) -> Result<(side::Engine, side::Placement, String)> {
    let (bind, netns) = if a.lab {
        lab::require_root("`bypass serve --lab`")?;
        let Some(l) = lab::Lab::find_persistent()? else {
            return Err(usage("no lab is up: run `bypass lab up` first"));
        };
        (
            a.addr.unwrap_or(IpAddr::V4(l.info.server.addr)),
            Some(l.info.server.netns.clone()),
        )
    } else {
        if let (Some(iface), Some(addr)) = (&a.iface, a.addr) {
            sys::check_hardware(iface, addr, None)?;
        }
        if a.iface.is_some() && a.addr.is_none() {
            return Err(usage("--iface needs --addr: the address to serve on"));
        }
        (
            a.addr
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            None,
        )
    };
    let place = side::Placement {
        netns,
        iface: String::new(),
        kernel_addr: Some(bind),
        stack: None,
        aliases: None,
        cpus: server_cpus,
        trust_checksums: false,
    };
    Ok((
        side::Engine::Kernel(datapath::KernelMode::Default),
        place,
        format!("on {bind}"),
    ))
}

/// Where `bypass serve --path bypass` serves: the userspace stack over
/// AF_XDP at its own address, TCP and UDP at once, on the kernel server's
/// ports.
fn serve_on_the_stack(
    a: &ServeArgs,
    server_cpus: Vec<usize>,
) -> Result<(side::Engine, side::Placement, String)> {
    let (netns, iface, addr, prefix_len, trust_checksums) = if a.lab {
        lab::require_root("`bypass serve --lab`")?;
        let Some(l) = lab::Lab::find_persistent()? else {
            return Err(usage("no lab is up: run `bypass lab up` first"));
        };
        (
            Some(l.info.server.netns.clone()),
            l.info.server.iface.clone(),
            lab::STACK_ADDR,
            lab::PREFIX_LEN,
            !l.info.full_checksums,
        )
    } else {
        let (Some(iface), Some(IpAddr::V4(addr))) = (&a.iface, a.addr) else {
            return Err(usage(
                "--path bypass needs --lab, or --iface IF with --addr A: an IPv4 address for the stack in IF's subnet that the kernel does not use",
            ));
        };
        let p = sys::check_stack_addr(iface, addr, "--addr")?;
        // a NIC's receive checksums are not trusted (yet): each is verified
        (None, iface.clone(), addr, p, false)
    };
    let place = side::Placement {
        netns,
        iface: iface.clone(),
        kernel_addr: None,
        stack: Some((addr, prefix_len)),
        aliases: None,
        cpus: server_cpus,
        trust_checksums,
    };
    Ok((
        side::Engine::Bypass,
        place,
        format!("over the bypass path on {iface}: {addr}"),
    ))
}

fn cmd_lab(cmd: LabCmd) -> Result<i32> {
    match cmd {
        LabCmd::Up {
            queues,
            clients: Some(n),
            json,
            ..
        } => {
            lab::require_root("`bypass lab up`")?;
            let info = lab::HostsLab::create(n, queues, true)?.keep();
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!(
                    "lab {} up: controller at {} in {}",
                    info.id, info.controller_addr, info.switch_netns
                );
                for h in &info.hosts {
                    println!(
                        "  {} in {}: data {}/{} on {} (stack address {}), management {} on {}",
                        h.role,
                        h.netns,
                        h.addr,
                        h.prefix_len,
                        h.iface,
                        h.stack_addr,
                        h.mgmt_addr,
                        h.mgmt_iface
                    );
                }
                println!(
                    "start an agent in each host namespace (ip netns exec NS bypass agent --listen MGMT:7000 --allow-iface IF --stack-addr A) and the controller in {} (`bypass run --server ... --client ...`); `bypass lab down` removes it all",
                    info.switch_netns
                );
            }
            Ok(0)
        }
        LabCmd::Up {
            queues,
            clients: None,
            verify_checksums,
            mtu,
            json,
        } => {
            lab::require_root("`bypass lab up`")?;
            if let Some(l) = lab::Lab::find_persistent()? {
                return Err(usage(format!(
                    "a lab is already up ({}, {}): use it, or remove it with `bypass lab down`",
                    l.info.server.netns, l.info.client.netns
                )));
            }
            let mut l = lab::Lab::create(queues, true)?;
            if verify_checksums {
                l.full_checksums()?;
            }
            if let Some(m) = mtu {
                l.set_mtu(m)?;
            }
            let info = l.keep();
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!(
                    "lab {} up: server {} in {} ({}), client {} in {} ({}), {} queue(s)",
                    info.id,
                    info.server.addr,
                    info.server.netns,
                    info.server.iface,
                    info.client.addr,
                    info.client.netns,
                    info.client.iface,
                    info.queues
                );
                if info.full_checksums {
                    println!("every checksum complete on the wire (TX checksum offload off): the stack verifies each");
                }
                if info.mtu != lab::DEFAULT_MTU {
                    println!("MTU {} on both veth ends", info.mtu);
                }
            }
            Ok(0)
        }
        LabCmd::Down { name, all, json } => {
            let which = match (name, all) {
                (Some(n), _) => lab::Which::Named(n),
                (None, true) => lab::Which::All,
                (None, false) => lab::Which::Unused,
            };
            let done = lab::down(&which)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&done)?);
                return Ok(0);
            }
            if done.removed.is_empty() {
                println!("no lab to remove");
            } else {
                println!("removed {}", done.removed.join(", "));
            }
            for k in &done.kept {
                let users: Vec<String> = k
                    .users
                    .iter()
                    .map(|u| format!("pid {} ({})", u.pid, u.command))
                    .collect();
                println!(
                    "kept lab {} ({}): in use by {}; `bypass lab down {}` removes it anyway",
                    k.id,
                    k.namespaces.join(", "),
                    users.join(", "),
                    k.id
                );
            }
            Ok(0)
        }
        LabCmd::Status { json } => {
            let st = lab::status()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&st)?);
            } else if st.labs.is_empty() && st.hosts_labs.is_empty() {
                println!("no lab is up (`bypass lab up` makes one)");
            } else {
                for l in &st.labs {
                    println!(
                        "lab {}: server {}/{} on {} in {}; client {}/{} on {} in {}; queues {:?}",
                        l.info.id,
                        l.info.server.addr,
                        l.info.server.prefix_len,
                        l.info.server.iface,
                        l.info.server.netns,
                        l.info.client.addr,
                        l.info.client.prefix_len,
                        l.info.client.iface,
                        l.info.client.netns,
                        l.queue_counts
                    );
                }
            }
            if !json {
                for h in &st.hosts_labs {
                    println!(
                        "lab {} of hosts: controller {} in {}; {}",
                        h.id,
                        h.controller_addr,
                        h.switch_netns,
                        h.hosts
                            .iter()
                            .map(|x| format!(
                                "{} {} ({}, management {})",
                                x.role, x.netns, x.addr, x.mgmt_addr
                            ))
                            .collect::<Vec<_>>()
                            .join("; ")
                    );
                }
            }
            if !json && !st.leftovers.is_empty() {
                println!(
                    "leftovers of killed runs (removed by `bypass lab down`): {}",
                    st.leftovers.join(", ")
                );
            }
            Ok(0)
        }
    }
}

/// `bypass doctor`: the checklist of each interface asked for (or of every
/// interface but loopback). Exit 0 whatever it finds: the warnings are
/// findings, not errors; `--json` gives them to a script.
fn cmd_doctor(a: cli::DoctorArgs) -> Result<i32> {
    let (server, client) = a.place.resolve()?;
    if let Some(ns) = &a.netns {
        if !lab::netns_exists(ns) {
            return Err(usage(format!(
                "--netns {ns}: no such network namespace (see `ip netns list`)"
            )));
        }
    }
    let netns = a.netns.as_deref();
    let ifaces = if a.ifaces.is_empty() {
        lab::in_ns_opt(netns, sys::interfaces)??
            .into_iter()
            .filter(|i| i != "lo")
            .collect()
    } else {
        a.ifaces.clone()
    };
    let known = lab::in_ns_opt(netns, sys::interfaces)??;
    let mut all = Vec::new();
    for i in &ifaces {
        if !known.contains(i) {
            return Err(usage(format!(
                "--iface {i}: no such interface{} (have: {})",
                netns.map(|n| format!(" in netns {n}")).unwrap_or_default(),
                known.join(", ")
            )));
        }
        all.push(doctor::check(&doctor::Target {
            netns,
            iface: i,
            cpus: &server,
            other_cpus: &client,
        }));
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        for p in &all {
            print!("{}", p.render());
        }
    }
    Ok(0)
}
