//! Runs across hosts, in a lab of hosts (`bypass lab up --clients N`): an
//! agent (`bypass agent`) in each host's namespace, the controller in the
//! switch namespace, the control connections over the management bridge.
//! Real processes speaking the real protocol. They need root; as another
//! user they say so and skip.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// One lab of hosts at a time: the machine has two CPUs.
static ONE_LAB: Mutex<()> = Mutex::new(());

const PORT: u16 = 7000;

mod common;

fn is_root() -> bool {
    common::root("runs across agents")
}

/// A lab of hosts with an agent running in each host namespace; dropping it
/// stops the agents (by their process ids) and removes the lab.
struct Hosts {
    dir: tempfile::TempDir,
    lab: Value,
    procs: Vec<Option<Child>>,
}

impl Hosts {
    fn up(clients: usize) -> Hosts {
        let h = Hosts::lab_only(clients);
        h.start_agents()
    }

    /// The lab alone, no agent started.
    fn lab_only(clients: usize) -> Hosts {
        let dir = tempfile::tempdir().unwrap();
        let mut h = Hosts {
            dir,
            lab: Value::Null,
            procs: Vec::new(),
        };
        let o = h.bypass(&["lab", "up", "--clients", &clients.to_string(), "--json"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        h.lab = serde_json::from_slice(&o.stdout).unwrap();
        fs::write(h.secret(), "one shared secret of this test run\n").unwrap();
        fs::write(
            h.dir.path().join("other-secret"),
            "another secret, not the agents'\n",
        )
        .unwrap();
        h
    }

    fn start_agents(mut self) -> Hosts {
        let h = &mut self;
        for i in 0..h.hosts().len() {
            let host = h.hosts()[i].clone();
            let s = |k: &str| host[k].as_str().unwrap().to_string();
            let log = fs::File::create(h.log_path(i)).unwrap();
            let child = Command::new("ip")
                .args(["netns", "exec", &s("netns"), env!("CARGO_BIN_EXE_bypass")])
                .args(["agent", "--listen", &format!("{}:{PORT}", s("mgmt_addr"))])
                .args([
                    "--allow-iface",
                    &s("iface"),
                    "--stack-addr",
                    &s("stack_addr"),
                ])
                .arg("--secret-file")
                .arg(h.secret())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            h.procs.push(Some(child));
        }
        for i in 0..h.procs.len() {
            h.wait_log(i, "listening on", 1, Duration::from_secs(10));
        }
        self
    }

    fn bypass(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_bypass"))
            .args(args)
            .env("BYPASS_LAB_STATE", self.dir.path().join("labs"))
            .output()
            .unwrap()
    }

    fn hosts(&self) -> &Vec<Value> {
        self.lab["hosts"].as_array().unwrap()
    }

    fn secret(&self) -> PathBuf {
        self.dir.path().join("secret")
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("agent-{i}.log"))
    }

    fn log(&self, i: usize) -> String {
        fs::read_to_string(self.log_path(i)).unwrap_or_default()
    }

    /// Waits (bounded) until agent `i`'s log holds `what` `n` times.
    fn wait_log(&self, i: usize, what: &str, n: usize, limit: Duration) {
        let t0 = Instant::now();
        while self.log(i).matches(what).count() < n {
            assert!(
                t0.elapsed() < limit,
                "agent {i} never logged `{what}` {n} times:\n{}",
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn agent(&self, i: usize) -> String {
        format!("{}:{PORT}", self.hosts()[i]["mgmt_addr"].as_str().unwrap())
    }

    /// The controller, in the switch namespace: `bypass run ARGS --server
    /// .. --client ..` with the result in the test's directory.
    fn controller(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.lab["switch_netns"].as_str().unwrap()])
            .arg(env!("CARGO_BIN_EXE_bypass"))
            .arg("run")
            .args(args)
            .args(["--server", &self.agent(0)]);
        for i in 1..self.hosts().len() {
            c.args(["--client", &self.agent(i)]);
        }
        c.arg("--out")
            .arg(self.dir.path().join("results"))
            .current_dir(self.dir.path());
        c
    }

    /// The controller started in the background with the agents' secret,
    /// its result document on a pipe.
    fn spawn_controller(&self, args: &[&str]) -> Child {
        self.controller(args)
            .arg("--secret-file")
            .arg(self.secret())
            .arg("--json")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Whether an XDP program is attached to each host's data interface.
    fn xdp(&self) -> Vec<bool> {
        self.hosts()
            .iter()
            .map(|h| {
                let o = Command::new("ip")
                    .args(["-n", h["netns"].as_str().unwrap(), "-d", "-j", "link"])
                    .args(["show", "dev", h["iface"].as_str().unwrap()])
                    .output()
                    .unwrap();
                let v: Value = serde_json::from_slice(&o.stdout).unwrap();
                !v[0]["xdp"].is_null()
            })
            .collect()
    }

    fn alive(&mut self, i: usize) -> bool {
        self.procs[i]
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    fn signal(&mut self, i: usize, sig: nix::sys::signal::Signal) {
        if let Some(c) = &self.procs[i] {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), sig);
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for i in 0..self.procs.len() {
            self.signal(i, nix::sys::signal::Signal::SIGTERM);
        }
        for c in self.procs.iter_mut().flatten() {
            let _ = c.wait();
        }
        let o = self.bypass(&["lab", "down"]);
        if !o.status.success() {
            eprintln!("lab down: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
}

fn namespaces(lab: &Value) -> Vec<String> {
    std::iter::once(lab["switch_netns"].as_str().unwrap().to_string())
        .chain(
            lab["hosts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["netns"].as_str().unwrap().to_string()),
        )
        .collect()
}

fn assert_namespaces_gone(lab: &Value) {
    for ns in namespaces(lab) {
        assert!(
            !std::path::Path::new("/run/netns").join(&ns).exists(),
            "namespace {ns} left behind"
        );
    }
}

#[test]
fn one_server_and_two_clients_make_one_merged_result() {
    if !is_root() {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let h = Hosts::up(2);
    let o = h
        .spawn_controller(&[
            "crr",
            "rr",
            "--path",
            "both",
            "--duration",
            "1",
            "--warmup",
            "0.3",
        ])
        .wait_with_output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(doc["failure"].is_null(), "{}", doc["failure"]);
    assert_eq!(doc["env"]["mode"], "agents");
    let hosts = doc["env"]["hosts"].as_array().unwrap();
    let roles: Vec<(&str, &str)> = hosts
        .iter()
        .map(|x| (x["role"].as_str().unwrap(), x["agent"].as_str().unwrap()))
        .collect();
    let (a0, a1, a2) = (h.agent(0), h.agent(1), h.agent(2));
    assert_eq!(
        roles,
        vec![
            ("server", a0.as_str()),
            ("client", a1.as_str()),
            ("client", a2.as_str())
        ]
    );
    for x in hosts {
        assert!(!x["kernel"].as_str().unwrap().is_empty());
        assert_eq!(x["ifaces"].as_array().unwrap().len(), 1, "{x}");
    }
    let runs = doc["runs"].as_array().unwrap();
    let got: Vec<(&str, &str)> = runs
        .iter()
        .map(|r| (r["workload"].as_str().unwrap(), r["path"].as_str().unwrap()))
        .collect();
    let paths = ["kernel", "bypass", "bypass-client", "bypass-both"];
    let want: Vec<(&str, &str)> = ["crr", "rr"]
        .iter()
        .flat_map(|w| paths.iter().map(move |p| (*w, *p)))
        .collect();
    assert_eq!(got, want);
    for r in runs {
        let name = format!("{} over {}", r["workload"], r["path"]);
        let c = &r["counters"];
        let ops = r["ops"].as_u64().unwrap();
        let (c0, c1) = (
            c["client.0.ops"].as_u64().unwrap(),
            c["client.1.ops"].as_u64().unwrap(),
        );
        // both load generators worked, and the result is their sum
        assert!(c0 > 0 && c1 > 0, "{name}: {c0} {c1}");
        assert_eq!(ops, c0 + c1, "{name}");
        // every operation has its latency: the histograms merged exactly
        assert_eq!(r["latency_us"]["count"].as_u64(), Some(ops), "{name}");
        // the server answered at least what the clients counted
        assert!(c["server.requests"].as_u64().unwrap() >= ops, "{name}");
        assert_eq!(r["errors"].as_u64(), Some(0), "{name}: {r}");
        assert_eq!(r["params"]["client_agent.0"].as_str(), Some(a1.as_str()));
        assert_eq!(r["params"]["client_agent.1"].as_str(), Some(a2.as_str()));
        assert!(
            r["cpu"]["server_us_per_op"].as_f64().unwrap() > 0.0,
            "{name}"
        );
        let path = r["path"].as_str().unwrap();
        if matches!(path, "bypass" | "bypass-both") {
            assert!(c["server.xdp.steered"].as_u64().unwrap() > 0, "{name}");
            assert_eq!(c["server.kernel.Tcp.PassiveOpens"].as_u64(), None, "{name}");
        }
        if matches!(path, "bypass-client" | "bypass-both") {
            assert!(c["client.xdp.steered"].as_u64().unwrap() > 0, "{name}");
        }
        let hlog = h
            .dir
            .path()
            .join("results")
            .read_dir()
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
            .join(r["hlog"].as_str().unwrap());
        assert!(hlog.exists(), "{}", hlog.display());
    }
    // each side was stopped: no program is left on any interface
    assert_eq!(h.xdp(), vec![false; 3]);
    let lab = h.lab.clone();
    drop(h);
    assert_namespaces_gone(&lab);
}

#[test]
fn a_wrong_secret_a_wrong_version_a_busy_agent_and_a_killed_agent_end_cleanly() {
    if !is_root() {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let mut h = Hosts::up(2);
    let other = h.dir.path().join("other-secret");

    // a wrong secret: refused, said on both ends, nothing touched
    let o = h
        .controller(&["crr", "--secret-file", other.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("agent {} refused", h.agent(0)))
            && err.contains("wrong shared secret"),
        "{err}"
    );
    h.wait_log(0, "wrong shared secret", 1, Duration::from_secs(5));

    // a controller of another protocol version: refused before any secret
    let o = h
        .controller(&["crr", "--secret-file", h.secret().to_str().unwrap()])
        .env("BYPASS_PROTOCOL_VERSION", "4")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("protocol version 3, the controller 4"),
        "{err}"
    );
    h.wait_log(
        0,
        "protocol version 3, the controller 4",
        1,
        Duration::from_secs(5),
    );
    assert_eq!(h.xdp(), vec![false; 3]);
    assert!(
        (0..3).all(|i| h.alive(i)),
        "a refusal must not end an agent"
    );

    // a second controller while one runs: turned away, the first unharmed
    let secret = h.secret();
    let secret = secret.to_str().unwrap();
    let first = h.spawn_controller(&["rr", "--path", "kernel", "--duration", "2"]);
    h.wait_log(
        0,
        "started the server side of rr over the kernel path",
        1,
        Duration::from_secs(30),
    );
    let o = h
        .controller(&["rr", "--secret-file", secret])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("busy: this agent serves the controller at"),
        "{err}"
    );
    let first = first.wait_with_output().unwrap();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(h.log(0).contains("turned the controller at"));

    // a client agent killed while every side runs on the bypass path
    let started_before = h
        .log(0)
        .matches("started the server side of crr over the bypass path")
        .count();
    let mut ctl = h.spawn_controller(&[
        "crr",
        "--path",
        "bypass",
        "--duration",
        "3",
        "--warmup",
        "0.3",
    ]);
    // the bypass path's server side, then bypass-both's
    h.wait_log(
        0,
        "started the server side of crr over the bypass path",
        started_before + 2,
        Duration::from_secs(60),
    );
    h.wait_log(
        2,
        "started the client side of crr over the bypass path",
        2,
        Duration::from_secs(10),
    );
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(h.xdp(), vec![true; 3], "bypass-both attaches on every host");
    h.signal(1, nix::sys::signal::Signal::SIGKILL);
    let killed_at = chrono::Utc::now();
    let t0 = Instant::now();
    let out = loop {
        if let Some(_st) = ctl.try_wait().unwrap() {
            break ctl.wait_with_output().unwrap();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the controller did not end"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("client agent {}", h.agent(1))) && err.contains("was lost"),
        "{err}"
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let fail = &doc["failure"];
    assert_eq!(fail["agent"].as_str(), Some(h.agent(1).as_str()), "{fail}");
    assert_eq!(fail["role"], "client");
    assert_eq!(fail["workload"], "crr");
    assert_eq!(fail["path"], "bypass-both");
    let at = chrono::DateTime::parse_from_rfc3339(fail["at_utc"].as_str().unwrap()).unwrap();
    let lag = at.signed_duration_since(killed_at).num_milliseconds();
    assert!(
        (-1000..10_000).contains(&lag),
        "failed at {at}, killed at {killed_at}"
    );
    // the two paths before it are in the result
    let paths: Vec<&str> = doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, vec!["bypass", "bypass-client"]);
    // the others aborted their sides: no program left anywhere (the killed
    // agent's went with its process)
    assert_eq!(h.xdp(), vec![false; 3]);
    assert!(h
        .log(0)
        .contains("ending the server side of crr over the bypass path"));
    assert!(h.alive(0) && h.alive(2) && !h.alive(1));
    let lab = h.lab.clone();
    drop(h);
    assert_namespaces_gone(&lab);
}

/// Processes whose command line mentions `what`.
fn processes_mentioning(what: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains(what) {
                found.push(format!("{}: {c}", e.file_name().to_string_lossy()));
            }
        }
    }
    found
}

#[test]
fn ssh_starts_the_agents_hands_them_the_secret_on_stdin_and_stops_them() {
    if !is_root() {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let h = Hosts::lab_only(1);
    // Stands in for ssh (no sshd here): `-o BatchMode=yes USER@HOST CMD..`
    // runs CMD in HOST's namespace, standard input passed through, as ssh
    // runs it in a remote shell.
    let mut cases = String::new();
    for x in h.hosts() {
        cases.push_str(&format!(
            "  {}) ns={} ;;\n",
            x["mgmt_addr"].as_str().unwrap(),
            x["netns"].as_str().unwrap()
        ));
    }
    let ssh = h.dir.path().join("ssh");
    fs::write(
        &ssh,
        format!(
            "#!/bin/sh\n[ \"$1 $2\" = \"-o BatchMode=yes\" ] || exit 255\nshift 2\nhost=${{1#*@}}\nshift\ncase $host in\n{cases}  *) echo \"ssh: $host: unknown\" >&2; exit 255 ;;\nesac\nexec ip netns exec \"$ns\" sh -c \"$*\"\n"
        ),
    )
    .unwrap();
    fs::set_permissions(&ssh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let agent = |i: usize| {
        let x = &h.hosts()[i];
        format!(
            "root@{}:{PORT},iface={},stack-addr={}",
            x["mgmt_addr"].as_str().unwrap(),
            x["iface"].as_str().unwrap(),
            x["stack_addr"].as_str().unwrap()
        )
    };
    let run = |client: &str| {
        Command::new("ip")
            .args(["netns", "exec", h.lab["switch_netns"].as_str().unwrap()])
            .arg(env!("CARGO_BIN_EXE_bypass"))
            .args(["run", "rr", "--path", "both", "--duration", "0.5"])
            .args(["--warmup", "0.2", "--server", &agent(0), "--client", client])
            .arg("--ssh")
            .arg("--ssh-program")
            .arg(&ssh)
            .args(["--ssh-binary", env!("CARGO_BIN_EXE_bypass"), "--json"])
            .arg("--out")
            .arg(h.dir.path().join("results"))
            .env("BYPASS_SECRET", "a secret from the environment")
            .output()
            .unwrap()
    };
    // an agent that cannot start says why, and the run ends at once
    let mgmt1 = h.hosts()[1]["mgmt_addr"].as_str().unwrap();
    let t0 = Instant::now();
    let o = run(&format!("root@{mgmt1}:{PORT},iface=nosuch0"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--allow-iface nosuch0: no such interface"),
        "{err}"
    );
    assert!(err.contains("before it listened"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    let o = run(&agent(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    // the agents ran (their log is the controller's stderr) and ended
    assert_eq!(
        err.matches("bypass agent: listening on").count(),
        2,
        "{err}"
    );
    assert_eq!(err.matches("is done").count(), 2 * 4 + 2, "{err}");
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["config"]["ssh"], "true");
    assert_eq!(doc["runs"].as_array().unwrap().len(), 4);
    for r in doc["runs"].as_array().unwrap() {
        assert!(r["ops"].as_u64().unwrap() > 0, "{r}");
    }
    let id = h.lab["id"].as_str().unwrap().to_string();
    assert_eq!(
        processes_mentioning(&format!("byp{id}d")),
        Vec::<String>::new()
    );
    // and the secret was on no command line
    assert!(!err.contains("a secret from the environment"));
    assert_eq!(h.xdp(), vec![false; 2]);
}

#[test]
fn an_interrupted_controller_stops_every_side_and_keeps_what_it_measured() {
    if !is_root() {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let mut h = Hosts::up(1);
    let ctl = h.spawn_controller(&[
        "rr",
        "crr",
        "--path",
        "bypass",
        "--duration",
        "2",
        "--warmup",
        "0.3",
    ]);
    // rr's bypass path is done once bypass-client's sides have started
    h.wait_log(
        1,
        "started the client side of rr over the bypass path",
        1,
        Duration::from_secs(60),
    );
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        h.xdp(),
        vec![false, true],
        "bypass-client attaches on the client"
    );
    // Ctrl-C, to the controller this test started
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ctl.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = ctl.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["interrupted"], true);
    assert_eq!(doc["failure"]["agent"], "");
    assert_eq!(doc["failure"]["path"], "bypass-client");
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "rr over the bypass path was measured");
    assert!(runs[0]["ops"].as_u64().unwrap() > 0);
    assert_eq!(h.xdp(), vec![false, false]);
    assert!(h
        .log(1)
        .contains("ending the client side of rr over the bypass path"));
    assert!(
        h.alive(0) && h.alive(1),
        "the agents wait for the next controller"
    );
    let lab = h.lab.clone();
    drop(h);
    assert_namespaces_gone(&lab);
}
