//! A throwaway lab for the XDP tests: two network namespaces joined by a veth
//! pair, addresses from 198.18.0.0/15, removed by exact name on `Drop`.
#![allow(dead_code)] // each test binary uses its own part of this module

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};

pub mod path;

/// The side `a` address (on `veth_a`, in namespace `a`).
pub const ADDR_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The side `b` address (on `veth_b`, in namespace `b`).
pub const ADDR_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

/// Two namespaces and a veth pair between them.
#[derive(Debug)]
pub struct Lab {
    pub a: String,
    pub b: String,
    pub veth_a: String,
    pub veth_b: String,
    made: Vec<String>,
    /// With an impaired path: the forwarder between the sides.
    path: Option<path::Forwarder>,
}

/// Runs `ip ARGS`; its stdout, or what went wrong.
pub fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Lab {
    /// Builds a lab, or returns `None` (after saying why) where the tests
    /// cannot run: not root.
    pub fn new(test: &str) -> Option<Lab> {
        Lab::with_queues(test, 1)
    }

    /// A lab whose veth ends have `queues` rx and tx queues each.
    pub fn with_queues(test: &str, queues: u32) -> Option<Lab> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED {test}: needs root (network namespaces and XDP)");
            return None;
        }
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let mut lab = Lab {
            a: format!("byp-x{pid}-{n}-a"),
            b: format!("byp-x{pid}-{n}-b"),
            // at most 15 bytes: "byp" + 6 hex digits of a pid + "-" + n + side
            veth_a: format!("byp{pid:x}-{n}a"),
            veth_b: format!("byp{pid:x}-{n}b"),
            made: Vec::new(),
            path: None,
        };
        assert!(
            lab.veth_a.len() <= 15,
            "interface name {} too long",
            lab.veth_a
        );
        lab.build(queues)
            .unwrap_or_else(|e| panic!("building lab for {test}: {e}"));
        Some(lab)
    }

    /// A lab whose two sides are joined through a third namespace that
    /// forwards every frame with `imp` (see [`path`]): the stand-in for
    /// netem on both veth ends where the kernel has no `sch_netem`.
    pub fn with_path(test: &str, imp: path::Impairment) -> Option<Lab> {
        let mut lab = Lab::with_queues(test, 1)?;
        // Rebuild the link: side a's veth now ends in the middle.
        let m = lab.a.replace("-a", "-m");
        let (mid_a, mid_b) = (
            format!("{}m", &lab.veth_a[..lab.veth_a.len() - 1]),
            format!("{}n", &lab.veth_a[..lab.veth_a.len() - 1]),
        );
        let build = |lab: &mut Lab| -> Result<(), String> {
            ip(&["-n", &lab.a, "link", "del", &lab.veth_a])?;
            ip(&["netns", "add", &m])?;
            lab.made.push(m.clone());
            sysctl_in(&m, "net.ipv6.conf.all.disable_ipv6", "1")?;
            sysctl_in(&m, "net.ipv6.conf.default.disable_ipv6", "1")?;
            let (a, b, va, vb) = (&lab.a, &lab.b, &lab.veth_a, &lab.veth_b);
            ip(&[
                "-n", a, "link", "add", va, "type", "veth", "peer", "name", &mid_a, "netns", &m,
            ])?;
            ip(&[
                "-n", &m, "link", "add", &mid_b, "type", "veth", "peer", "name", vb, "netns", b,
            ])?;
            ip(&["-n", a, "addr", "add", &format!("{ADDR_A}/24"), "dev", va])?;
            ip(&["-n", b, "addr", "add", &format!("{ADDR_B}/24"), "dev", vb])?;
            for (ns, dev) in [(a, va), (b, vb), (&m, &mid_a), (&m, &mid_b)] {
                ip(&["-n", ns, "link", "set", dev, "up"])?;
            }
            Ok(())
        };
        build(&mut lab).unwrap_or_else(|e| panic!("building the path for {test}: {e}"));
        lab.path = Some(path::Forwarder::start(&m, &mid_a, &mid_b, imp, 0x7061_7468));
        Some(lab)
    }

    /// What the impaired path did so far (stops it).
    pub fn stop_path(&mut self) -> Option<path::PathStats> {
        self.path.as_mut().map(path::Forwarder::stop)
    }

    fn build(&mut self, queues: u32) -> Result<(), String> {
        for ns in [self.a.clone(), self.b.clone()] {
            ip(&["netns", "add", &ns])?;
            self.made.push(ns);
        }
        let (a, b, va, vb) = (&self.a, &self.b, &self.veth_a, &self.veth_b);
        let q = queues.to_string();
        let q = ["numtxqueues", &q, "numrxqueues", &q];
        let mut args = vec!["-n", a, "link", "add", va];
        args.extend(q);
        args.extend(["type", "veth", "peer", "name", vb]);
        args.extend(q);
        args.extend(["netns", b]);
        ip(&args)?;
        ip(&["-n", a, "addr", "add", &format!("{ADDR_A}/24"), "dev", va])?;
        ip(&["-n", b, "addr", "add", &format!("{ADDR_B}/24"), "dev", vb])?;
        for (ns, dev) in [(a, va), (b, vb)] {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(())
    }

    /// `ip -n NS link show dev DEV`.
    pub fn link_show(&self, ns: &str, dev: &str) -> String {
        ip(&["-n", ns, "link", "show", "dev", dev]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Whether `ip link show` reports an XDP program on side a's veth.
    pub fn xdp_shown_on_a(&self) -> bool {
        self.link_show(&self.a, &self.veth_a).contains("prog/xdp")
    }
}

/// Sets a sysctl inside namespace `ns` (one the lab made): net.* sysctls
/// are per namespace, and /proc/sys/net shows the calling thread's.
fn sysctl_in(ns: &str, key: &str, value: &str) -> Result<(), String> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    in_ns(ns, || std::fs::write(&path, value)).map_err(|e| format!("{path} in {ns}: {e}"))
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The forwarder first: it lives in a namespace about to go.
        drop(self.path.take());
        // Deleting a namespace deletes its veth end, the peer, and any XDP
        // program attached there.
        for ns in self.made.drain(..).rev() {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                eprintln!("lab cleanup: {e}");
            }
        }
    }
}

/// Enters namespace `ns` on the calling thread (network namespaces are per
/// thread). Call it only on a thread made for the purpose.
pub fn enter(ns: &str) {
    let f =
        File::open(format!("/run/netns/{ns}")).unwrap_or_else(|e| panic!("open netns {ns}: {e}"));
    setns(f, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns {ns}: {e}"));
}

/// Runs `f` on a new thread inside namespace `ns` and returns its result.
pub fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(ns);
            f()
        })
        .join()
        .expect("the thread in the namespace panicked")
    })
}

/// A kernel TCP listener on side a (198.18.0.1, any port).
pub fn listen_a(lab: &Lab) -> TcpListener {
    in_ns(&lab.a, || TcpListener::bind((ADDR_A, 0))).expect("bind on side a")
}

/// Echo server on side a, client on side b: `rounds` messages of 1000 bytes
/// go b -> a -> b and must come back intact. Bounded by TIMEOUT throughout.
pub fn tcp_echo(lab: &Lab, listener: TcpListener, rounds: usize) {
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let server = thread::spawn(move || {
        let deadline = Instant::now() + TIMEOUT;
        let mut conn = loop {
            match listener.accept() {
                Ok((c, _)) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        Instant::now() < deadline,
                        "no connection within {TIMEOUT:?}"
                    );
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut buf = [0u8; 1000];
        for _ in 0..rounds {
            conn.read_exact(&mut buf).expect("server read");
            conn.write_all(&buf).expect("server write");
        }
    });
    let peer = SocketAddr::from((ADDR_A, port));
    let mut c = in_ns(&lab.b, || TcpStream::connect_timeout(&peer, TIMEOUT))
        .expect("kernel TCP connect from side b");
    c.set_read_timeout(Some(TIMEOUT)).unwrap();
    for i in 0..rounds {
        let msg: Vec<u8> = (0..1000).map(|j| (i * 7 + j) as u8).collect();
        c.write_all(&msg).expect("client write");
        let mut back = vec![0u8; msg.len()];
        c.read_exact(&mut back).expect("client read");
        assert_eq!(back, msg, "round {i} came back changed");
    }
    server.join().expect("echo server");
}

/// Turns off tx checksum offload on side b's veth, so its datagrams carry
/// full checksums (veth would otherwise send partial ones).
pub fn tx_csum_off(lab: &Lab) {
    let st = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.b,
            "ethtool",
            "-K",
            &lab.veth_b,
            "tx",
            "off",
        ])
        .output()
        .expect("run ethtool (scripts/setup.sh installs it)");
    assert!(
        st.status.success(),
        "ethtool: {}",
        String::from_utf8_lossy(&st.stderr)
    );
}

/// The MAC address of `dev` in namespace `ns`, from `ip link show`.
pub fn mac_of(ns: &str, dev: &str) -> [u8; 6] {
    let out = ip(&["-n", ns, "-o", "link", "show", "dev", dev]).unwrap_or_else(|e| panic!("{e}"));
    let text = out
        .split("link/ether ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no link/ether in: {out}"));
    let mut mac = [0u8; 6];
    for (i, part) in text.split(':').enumerate().take(6) {
        mac[i] = u8::from_str_radix(part, 16).unwrap_or_else(|e| panic!("{text}: {e}"));
    }
    mac
}

/// The steering program attached natively to side a's veth in own-address
/// mode for `addr`, and an XSK on queue 0 (auto bind: copy mode on veth) in
/// its map.
pub fn own_address_socket(lab: &Lab, addr: Ipv4Addr) -> (xdp::Steering, xdp::Xsk) {
    use std::os::fd::AsFd;
    use xdp::{Steer, SteerConfig, Steering, XdpMode, Xsk, XskConfig};
    let steer = SteerConfig {
        addr,
        aliases: None,
        multi_buffer: false,
        steer: Steer::OwnAddress,
    };
    let (steering, xsk) = in_ns(&lab.a, || {
        let s =
            Steering::attach(lab.veth_a.as_str(), XdpMode::Native, &steer, false).expect("attach");
        let x = Xsk::bind(lab.veth_a.as_str(), 0, &XskConfig::default()).expect("bind");
        (s, x)
    });
    steering
        .insert_socket(0, xsk.as_fd())
        .expect("XSKMAP insert");
    (steering, xsk)
}

/// Bound on every wait of the lab helpers.
pub const TIMEOUT: Duration = Duration::from_secs(10);
