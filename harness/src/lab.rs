//! The lab: two network namespaces joined by a veth pair, addresses from the
//! benchmarking range 198.18.0.0/15 (RFC 2544).
//!
//! A [`Lab`] is a value whose `Drop` removes everything it made, by exact name.
//! Deleting a namespace deletes its veth end (and any XDP program on it), so
//! removing the two namespaces removes the whole lab. Labs made by
//! `bypass lab up` outlive the process: they are recorded in [`STATE_DIR`] so
//! that `bypass lab status|down` and `bypass serve --lab` find them.

use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};

use crate::error::UsageError;
use crate::sys::sh;

pub mod reap;
pub use reap::{down, leftovers, reap_leftovers, Which};

/// Where labs made by `bypass lab up` are recorded, unless the environment
/// variable `BYPASS_LAB_STATE` names another directory (tests use their own).
pub const STATE_DIR: &str = "/run/bypass/labs";

pub fn state_dir() -> PathBuf {
    std::env::var_os("BYPASS_LAB_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(STATE_DIR))
}
/// Every name the lab makes starts with this.
pub const PREFIX: &str = "byp";
/// The server's and the client's address, and the prefix length.
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const PREFIX_LEN: u8 = 24;
/// The userspace stack's own address on the server's veth (the bypass path):
/// the XDP program steers ARP for it and IPv4 to it, the kernel never has it.
pub const STACK_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
/// The stack's address on the client's veth (the client side on the bypass path).
pub const STACK_CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 4);
/// More addresses of the client's stack (its aliases), for `run --hold`:
/// the connections it holds open come from these, each with its own 64 K
/// ports to the server (32 addresses: room for about 2 M).
pub const STACK_CLIENT_ALIASES: std::ops::RangeInclusive<Ipv4Addr> = std::ops::RangeInclusive::new(
    Ipv4Addr::new(198, 18, 0, 200),
    Ipv4Addr::new(198, 18, 0, 231),
);

/// Most queues a lab veth may have (the kernel's veth limit is higher; a
/// benchmark on this kind of machine has no use for more).
pub const MAX_QUEUES: u32 = 64;

/// One side of the lab.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Side {
    /// Network namespace (as under /run/netns).
    pub netns: String,
    /// Its end of the veth pair.
    pub iface: String,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
}

/// Everything a script needs to find a lab, and what it set.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LabInfo {
    /// The unique suffix shared by every name of this lab.
    pub id: String,
    /// Process that made it.
    pub owner_pid: u32,
    /// Made by `bypass lab up` (outlives its process) or by a run.
    pub persistent: bool,
    pub server: Side,
    pub client: Side,
    pub queues: u32,
    /// Sysctls set inside the lab's namespaces: (namespace, key, value).
    pub sysctls: Vec<(String, String, String)>,
    /// Both veth ends compute every checksum before sending (TX checksum
    /// offload off, and with it TSO): the stack can verify each one.
    #[serde(default)]
    pub full_checksums: bool,
    /// Both veth ends' MTU (`--mtu`; above 3498 the bypass path takes
    /// frames in several buffers, multi-buffer AF_XDP).
    #[serde(default = "default_mtu")]
    pub mtu: u32,
}

/// A veth's MTU unless `--mtu` says otherwise.
pub const DEFAULT_MTU: u32 = 1500;

/// The MTUs `--mtu` takes: IPv4's least to what a multi-buffer frame of
/// 4 KiB buffers carries in 17 buffers with room to spare.
pub const MTU_RANGE: std::ops::RangeInclusive<u32> = 576..=65000;

fn default_mtu() -> u32 {
    DEFAULT_MTU
}

/// What a lab records about itself: its id, its namespaces (removing them
/// removes everything it made), and the extension of its record.
pub trait LabRecord: Serialize + serde::de::DeserializeOwned + Clone {
    const EXT: &'static str;
    fn id(&self) -> &str;
    fn namespaces(&self) -> Vec<String>;
}

impl LabRecord for LabInfo {
    const EXT: &'static str = "json";
    fn id(&self) -> &str {
        &self.id
    }
    fn namespaces(&self) -> Vec<String> {
        vec![self.server.netns.clone(), self.client.netns.clone()]
    }
}

/// A lab that is up. Dropping it removes it, by exact name.
#[derive(Debug)]
pub struct Up<I: LabRecord> {
    pub info: I,
    /// When false, `Drop` leaves the lab (it belongs to `lab up`).
    owned: bool,
}

/// The two-namespace lab.
pub type Lab = Up<LabInfo>;

impl<I: LabRecord> Up<I> {
    fn state_path(&self) -> PathBuf {
        state_dir().join(format!("{}.{}", self.info.id(), I::EXT))
    }

    /// Records the lab (for `lab status|down`, `serve --lab`).
    fn save(&self) -> Result<()> {
        let dir = state_dir();
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = self.state_path();
        fs::write(&path, serde_json::to_vec_pretty(&self.info)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Leaves the lab up when this value is dropped (for `lab up`).
    pub fn keep(mut self) -> I {
        self.owned = false;
        self.info.clone()
    }

    /// Removes the lab now: every namespace by exact name, all of them even
    /// when one fails (the first error is returned), and its record.
    pub fn destroy(&mut self) -> Result<()> {
        self.owned = false;
        let mut first_err = None;
        for ns in self.info.namespaces() {
            if let Err(e) = delete_netns(&ns) {
                first_err.get_or_insert(e);
            }
        }
        let _ = fs::remove_file(self.state_path());
        first_err.map_or(Ok(()), Err)
    }
}

impl<I: LabRecord> Drop for Up<I> {
    fn drop(&mut self) {
        if self.owned {
            if let Err(e) = self.destroy() {
                tracing::warn!("removing lab {}: {e:#}", self.info.id());
            }
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique_id() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // pid in hex (at most 6 digits: pid_max is 2^22) and a 2-digit per-process counter:
    // unique across concurrent processes and threads, and short enough that
    // "byp" + id + "s" fits the 15-byte interface name limit.
    format!("{:x}{:02x}", std::process::id(), n % 256)
}

/// Namespace names are `byp-<id>-srv` / `byp-<id>-cli`; the id starts with
/// the owner's pid in hex, which is how `lab down` tells leftovers of dead
/// processes from labs that are in use.
fn names(id: &str) -> (String, String, String, String) {
    (
        format!("{PREFIX}-{id}-srv"),
        format!("{PREFIX}-{id}-cli"),
        format!("{PREFIX}{id}s"),
        format!("{PREFIX}{id}c"),
    )
}

/// Fails with a usage error unless the process is root (the lab, XDP and the
/// namespaces all need CAP_NET_ADMIN/CAP_SYS_ADMIN).
pub fn require_root(what: &str) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Err(UsageError(format!(
            "{what} needs root (network namespaces, veth and sysctls): run it as root or with sudo"
        ))
        .into());
    }
    Ok(())
}

/// Checks what every lab needs (root, a queue count in range) and gives a
/// new lab its id.
fn new_lab_id(queues: u32, persistent: bool) -> Result<String> {
    require_root("the lab")?;
    if queues == 0 || queues > MAX_QUEUES {
        return Err(UsageError(format!(
            "--queues {queues} is out of range: use 1..={MAX_QUEUES}"
        ))
        .into());
    }
    // a killed run's namespaces last until the next lab is made
    reap_leftovers();
    // a lab of `lab up` outlives its maker: its id ends in `u`, which keeps
    // it out of the leftovers that `lab down` reaps by dead owner (whichever
    // state directory recorded it)
    Ok(if persistent {
        format!("{}u", unique_id())
    } else {
        unique_id()
    })
}

impl Lab {
    /// Builds a lab with `queues` queues on each veth end.
    pub fn create(queues: u32, persistent: bool) -> Result<Lab> {
        let id = new_lab_id(queues, persistent)?;
        let (sns, cns, sif, cif) = names(&id);
        let mut lab = Lab {
            info: LabInfo {
                id,
                owner_pid: std::process::id(),
                persistent,
                server: Side {
                    netns: sns.clone(),
                    iface: sif.clone(),
                    addr: SERVER_ADDR,
                    prefix_len: PREFIX_LEN,
                },
                client: Side {
                    netns: cns.clone(),
                    iface: cif.clone(),
                    addr: CLIENT_ADDR,
                    prefix_len: PREFIX_LEN,
                },
                queues,
                sysctls: Vec::new(),
                full_checksums: false,
                mtu: DEFAULT_MTU,
            },
            owned: true,
        };
        // From here on, an error drops `lab`, which removes what was made.
        sh("ip", &["netns", "add", &sns])?;
        sh("ip", &["netns", "add", &cns])?;
        veth_pair((&sif, &sns), (&cif, &cns), queues)?;
        for side in [&lab.info.server, &lab.info.client] {
            let cidr = format!("{}/{}", side.addr, side.prefix_len);
            sh(
                "ip",
                &["-n", &side.netns, "addr", "add", &cidr, "dev", &side.iface],
            )?;
            sh("ip", &["-n", &side.netns, "link", "set", "lo", "up"])?;
            sh("ip", &["-n", &side.netns, "link", "set", &side.iface, "up"])?;
        }
        tune_client(&cns, &mut lab.info.sysctls)?;
        // Fill the neighbour tables now so that the first packets of a run do
        // not wait for ARP.
        let peer = SERVER_ADDR.to_string();
        let _ = sh("ip", &["netns", "exec", &cns, "ping", "-c1", "-W1", &peer]);
        if persistent {
            lab.save()?;
        }
        Ok(lab)
    }

    /// Turns TX checksum offload (and with it TSO) off on both veth ends:
    /// a veth with it on hands its peer, and XDP there, TCP and UDP
    /// checksums left for hardware to finish, which the stack must then
    /// trust; without it every checksum is complete and verified. The
    /// kernel path pays for it too (software checksums, 1448-byte segments
    /// instead of 64 KiB ones).
    pub fn full_checksums(&mut self) -> Result<()> {
        for side in [&self.info.server, &self.info.client] {
            sh(
                "ip",
                &[
                    "netns",
                    "exec",
                    &side.netns,
                    "ethtool",
                    "-K",
                    &side.iface,
                    "tx",
                    "off",
                ],
            )?;
        }
        self.info.full_checksums = true;
        if self.info.persistent {
            self.save()?;
        }
        Ok(())
    }

    /// Sets both veth ends' MTU (before any XDP program is attached: veth
    /// refuses an MTU over a page under a program that is not frags-aware).
    pub fn set_mtu(&mut self, mtu: u32) -> Result<()> {
        let m = mtu.to_string();
        for side in [&self.info.server, &self.info.client] {
            sh(
                "ip",
                &[
                    "-n",
                    &side.netns,
                    "link",
                    "set",
                    "dev",
                    &side.iface,
                    "mtu",
                    &m,
                ],
            )?;
        }
        self.info.mtu = mtu;
        if self.info.persistent {
            self.save()?;
        }
        Ok(())
    }

    /// Finds the lab made by `bypass lab up`.
    pub fn find_persistent() -> Result<Option<Lab>> {
        Ok(load_states()?
            .into_iter()
            .next()
            .map(|info| Lab { info, owned: false }))
    }

    /// Current queue counts of the two veth ends (as the kernel reports them).
    pub fn queue_counts(&self) -> Result<Vec<(String, u64, u64)>> {
        [&self.info.server, &self.info.client]
            .into_iter()
            .map(|s| {
                let (rx, tx) = link_queues(&s.netns, &s.iface)?;
                Ok((s.iface.clone(), rx, tx))
            })
            .collect()
    }
}

/// A veth pair between two namespaces, `queues` queues on each end:
/// (name, namespace) of each end.
fn veth_pair(a: (&str, &str), b: (&str, &str), queues: u32) -> Result<()> {
    let q = queues.to_string();
    let end = |(name, ns): (&str, &str)| {
        [name, "netns", ns, "numtxqueues", &q, "numrxqueues", &q].map(str::to_string)
    };
    let mut args: Vec<String> = vec!["link".into(), "add".into()];
    args.extend(end(a));
    args.extend(["type", "veth", "peer", "name"].map(str::to_string));
    args.extend(end(b));
    sh("ip", &args.iter().map(String::as_str).collect::<Vec<_>>()).map(|_| ())
}

/// Deletes one namespace by exact name; a namespace that is already gone is fine.
pub fn delete_netns(ns: &str) -> Result<()> {
    if !Path::new("/run/netns").join(ns).exists() {
        return Ok(());
    }
    sh("ip", &["netns", "del", ns]).map(|_| ())
}

/// Sets a sysctl inside a namespace (net.* sysctls are per namespace, so the
/// setting vanishes with the namespace: nothing to restore).
pub fn set_sysctl(ns: &str, key: &str, value: &str) -> Result<()> {
    let path = crate::sys::sysctl_path(key);
    let value = value.to_string();
    in_netns(ns, move || {
        fs::write(&path, &value).with_context(|| format!("writing {path}"))
    })?
}

/// The sysctls a load generator's namespace gets, with the values: crr opens
/// a connection per transaction, and the client keeps each in TIME-WAIT.
/// - Without a wide port range and TIME-WAIT reuse it runs out of ports
///   within seconds.
/// - TIME-WAIT reuse waits `tcp_tw_reuse_delay` (1 s; recent kernels let it
///   be set): at 30k connections/s every port has then been used within the
///   last second, so each `connect()` scans the whole range for a port it
///   may reuse. That costs milliseconds of the generator's CPU per connect,
///   all connections stall, and the latency tail of crr (any server) grows
///   to 50 ms. 100 ms is still a thousand lab round trips.
fn client_sysctls() -> Vec<(&'static str, &'static str)> {
    let mut v = vec![
        ("net.ipv4.ip_local_port_range", "1024 65535"),
        ("net.ipv4.tcp_tw_reuse", "1"),
    ];
    if Path::new(&crate::sys::sysctl_path("net.ipv4.tcp_tw_reuse_delay")).exists() {
        v.push(("net.ipv4.tcp_tw_reuse_delay", "100"));
    }
    v
}

/// Sets [`client_sysctls`] in namespace `ns`, and records them.
fn tune_client(ns: &str, record: &mut Vec<(String, String, String)>) -> Result<()> {
    for (key, value) in client_sysctls() {
        set_sysctl(ns, key, value)?;
        record.push((ns.to_string(), key.to_string(), value.to_string()));
    }
    Ok(())
}

/// Reads a sysctl inside a namespace.
pub fn get_sysctl(ns: &str, key: &str) -> Result<String> {
    let key = key.to_string();
    in_netns(ns, move || {
        crate::sys::read_sysctl(&key)
            .with_context(|| format!("reading {}", crate::sys::sysctl_path(&key)))
    })?
}

/// Moves the calling thread into network namespace `ns` (by its name under
/// /run/netns). Only this thread moves: sockets it opens afterwards live there.
pub fn enter_netns(ns: &str) -> Result<()> {
    let path = Path::new("/run/netns").join(ns);
    let f = fs::File::open(&path).with_context(|| {
        format!(
            "opening network namespace {}: is the lab up? (`bypass lab status`)",
            path.display()
        )
    })?;
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("setns into {ns}"))?;
    Ok(())
}

/// Runs `f` on a short-lived thread inside namespace `ns`.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| -> Result<T> {
            enter_netns(ns)?;
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow!("thread in namespace {ns} panicked"))?
    })
}

/// (rx, tx) queue counts of an interface in a namespace.
pub fn link_queues(ns: &str, iface: &str) -> Result<(u64, u64)> {
    let out = sh("ip", &["-n", ns, "-d", "-j", "link", "show", "dev", iface])?;
    let v: serde_json::Value = serde_json::from_str(&out).context("parsing `ip -j link`")?;
    let l = &v[0];
    Ok((
        l["num_rx_queues"].as_u64().unwrap_or(1),
        l["num_tx_queues"].as_u64().unwrap_or(1),
    ))
}

/// Labs recorded by `bypass lab up`.
pub fn load_states() -> Result<Vec<LabInfo>> {
    records_from(&state_dir())
}

/// The records of one kind of lab in a state directory, by id.
pub(crate) fn records_from<I: LabRecord>(dir: &Path) -> Result<Vec<I>> {
    let mut out: Vec<I> = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).context(format!("reading {}", dir.display())),
    };
    for entry in rd.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == I::EXT) {
            match serde_json::from_slice::<I>(&fs::read(&path)?) {
                Ok(info) => out.push(info),
                Err(e) => tracing::warn!("ignoring {}: {e}", path.display()),
            }
        }
    }
    out.sort_by(|a, b| a.id().cmp(b.id()));
    Ok(out)
}

/// Every namespace that carries the lab's naming scheme.
pub fn lab_namespaces() -> Result<Vec<String>> {
    let mut out = Vec::new();
    match fs::read_dir("/run/netns") {
        Ok(d) => {
            for e in d.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if parse_ns_name(&n).is_some() {
                    out.push(n);
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).context("reading /run/netns"),
    }
    out.sort();
    Ok(out)
}

/// `byp-<id>-srv|cli|sw|h<N>` -> (id, owner pid).
pub(crate) fn parse_ns_name(n: &str) -> Option<(String, u32)> {
    let rest = n.strip_prefix("byp-")?;
    let id = rest
        .strip_suffix("-srv")
        .or_else(|| rest.strip_suffix("-cli"))
        .or_else(|| rest.strip_suffix("-sw"))
        .or_else(|| {
            let (id, h) = rest.rsplit_once("-h")?;
            (!h.is_empty() && h.len() <= 2 && h.chars().all(|c| c.is_ascii_digit())).then_some(id)
        })?;
    if id.len() < 3 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    // the pid is the id without its last two hex digits (the counter)
    let pid = u32::from_str_radix(&id[..id.len() - 2], 16).ok()?;
    Some((id.to_string(), pid))
}

// ------------------------------------------------------------ hosts lab

/// The first data address of a hosts lab (host i has .1+i), the first
/// stack address (.101+i), the management subnet (198.19.0.1+i) and the
/// controller's management address.
pub const HOSTS_DATA_BASE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const HOSTS_STACK_BASE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 101);
pub const HOSTS_MGMT_BASE: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
pub const HOSTS_CONTROLLER: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 254);
/// Most client hosts of a hosts lab.
pub const MAX_LAB_CLIENTS: usize = 8;

fn nth(base: Ipv4Addr, i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base) + i as u32)
}

/// One host of a hosts lab: its namespace, its data interface (on the data
/// switch) and its management interface (on the management switch).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LabHost {
    /// `server` or `client`.
    pub role: String,
    pub netns: String,
    pub iface: String,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    /// The address an agent here gives the stack (`--stack-addr`).
    pub stack_addr: Ipv4Addr,
    pub mgmt_iface: String,
    pub mgmt_addr: Ipv4Addr,
}

/// A lab of hosts for runs across agents: a namespace per host, each with
/// a data veth and a management veth into a switch namespace, which holds
/// the two bridges (data, management) and is where the controller runs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostsLabInfo {
    pub id: String,
    pub owner_pid: u32,
    pub persistent: bool,
    pub switch_netns: String,
    /// The controller's address on the management bridge.
    pub controller_addr: Ipv4Addr,
    /// The server's host first, then the clients'.
    pub hosts: Vec<LabHost>,
    pub queues: u32,
    pub sysctls: Vec<(String, String, String)>,
}

impl LabRecord for HostsLabInfo {
    const EXT: &'static str = "hosts";
    fn id(&self) -> &str {
        &self.id
    }
    fn namespaces(&self) -> Vec<String> {
        std::iter::once(self.switch_netns.clone())
            .chain(self.hosts.iter().map(|h| h.netns.clone()))
            .collect()
    }
}

/// A lab of hosts that is up; dropping it removes it (unless kept).
pub type HostsLab = Up<HostsLabInfo>;

impl HostsLab {
    /// A server host and `clients` client hosts, `queues` queues on each
    /// data veth.
    pub fn create(clients: usize, queues: u32, persistent: bool) -> Result<HostsLab> {
        if clients == 0 || clients > MAX_LAB_CLIENTS {
            return Err(UsageError(format!(
                "--clients {clients} is out of range: use 1..={MAX_LAB_CLIENTS}"
            ))
            .into());
        }
        let id = new_lab_id(queues, persistent)?;
        let sw = format!("{PREFIX}-{id}-sw");
        let hosts = (0..=clients)
            .map(|i| LabHost {
                role: if i == 0 { "server" } else { "client" }.into(),
                netns: format!("{PREFIX}-{id}-h{i}"),
                iface: format!("{PREFIX}{id}d{i}"),
                addr: nth(HOSTS_DATA_BASE, i),
                prefix_len: PREFIX_LEN,
                stack_addr: nth(HOSTS_STACK_BASE, i),
                mgmt_iface: format!("{PREFIX}{id}m{i}"),
                mgmt_addr: nth(HOSTS_MGMT_BASE, i),
            })
            .collect();
        let mut lab = HostsLab {
            info: HostsLabInfo {
                id: id.clone(),
                owner_pid: std::process::id(),
                persistent,
                switch_netns: sw.clone(),
                controller_addr: HOSTS_CONTROLLER,
                hosts,
                queues,
                sysctls: Vec::new(),
            },
            owned: true,
        };
        // From here on, an error drops `lab`, which removes what was made.
        sh("ip", &["netns", "add", &sw])?;
        for h in &lab.info.hosts {
            sh("ip", &["netns", "add", &h.netns])?;
        }
        let (bd, bm) = (format!("{PREFIX}{id}bd"), format!("{PREFIX}{id}bm"));
        sh("ip", &["-n", &sw, "link", "set", "lo", "up"])?;
        for b in [&bd, &bm] {
            sh("ip", &["-n", &sw, "link", "add", b, "type", "bridge"])?;
            sh("ip", &["-n", &sw, "link", "set", b, "up"])?;
        }
        let ctl = format!("{HOSTS_CONTROLLER}/{PREFIX_LEN}");
        sh("ip", &["-n", &sw, "addr", "add", &ctl, "dev", &bm])?;
        for (i, h) in lab.info.hosts.iter().enumerate() {
            let (dp, mp) = (format!("{PREFIX}{id}p{i}"), format!("{PREFIX}{id}n{i}"));
            veth_pair((&h.iface, &h.netns), (&dp, &sw), queues)?;
            veth_pair((&h.mgmt_iface, &h.netns), (&mp, &sw), 1)?;
            sh("ip", &["-n", &sw, "link", "set", &dp, "master", &bd, "up"])?;
            sh("ip", &["-n", &sw, "link", "set", &mp, "master", &bm, "up"])?;
            let data = format!("{}/{}", h.addr, h.prefix_len);
            let mgmt = format!("{}/{PREFIX_LEN}", h.mgmt_addr);
            sh(
                "ip",
                &["-n", &h.netns, "addr", "add", &data, "dev", &h.iface],
            )?;
            sh(
                "ip",
                &["-n", &h.netns, "addr", "add", &mgmt, "dev", &h.mgmt_iface],
            )?;
            for l in ["lo", &h.iface, &h.mgmt_iface] {
                sh("ip", &["-n", &h.netns, "link", "set", l, "up"])?;
            }
            // Another host's frames carry real checksums and come one MTU
            // at a time; a veth's kernel sender would leave checksums to an
            // offload that never happens and send 64 KiB GSO frames that
            // a peer's XDP cannot take. So: as on a wire.
            sh(
                "ip",
                &[
                    "netns", "exec", &h.netns, "ethtool", "-K", &h.iface, "tx", "off", "tso",
                    "off", "gso", "off",
                ],
            )?;
        }
        // as in the two-namespace lab: crr clients need ports
        let clients_ns: Vec<String> = lab.info.hosts[1..]
            .iter()
            .map(|h| h.netns.clone())
            .collect();
        for ns in clients_ns {
            tune_client(&ns, &mut lab.info.sysctls)?;
        }
        if persistent {
            lab.save()?;
        }
        Ok(lab)
    }
}

/// Hosts labs recorded by `bypass lab up --clients N` (in [`state_dir`]).
pub fn load_hosts_states() -> Result<Vec<HostsLabInfo>> {
    records_from(&state_dir())
}

/// What `bypass lab status` reports.
#[derive(Debug, Serialize)]
pub struct Status {
    pub labs: Vec<LabStatus>,
    /// Labs of hosts (`lab up --clients N`).
    pub hosts_labs: Vec<HostsLabInfo>,
    /// Namespaces of dead runs that `bypass lab down` would remove.
    pub leftovers: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct LabStatus {
    #[serde(flatten)]
    pub info: LabInfo,
    /// (interface, rx queues, tx queues) as the kernel reports them now.
    pub queue_counts: Vec<(String, u64, u64)>,
}

pub fn status() -> Result<Status> {
    let mut labs = Vec::new();
    for info in load_states()? {
        let lab = Lab { info, owned: false };
        let queue_counts = lab.queue_counts().unwrap_or_default();
        labs.push(LabStatus {
            info: lab.info.clone(),
            queue_counts,
        });
    }
    Ok(Status {
        labs,
        hosts_labs: load_hosts_states()?,
        leftovers: leftovers()?,
    })
}

/// Pins the calling thread to `cpu` (when given) and moves it into `netns`
/// (when given).
pub fn place_thread(cpu: Option<usize>, netns: Option<&str>) -> Result<()> {
    if let Some(cpu) = cpu {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
            return Err(anyhow!(
                "cannot pin a thread to CPU {cpu}: is it online and in this process's affinity mask?"
            ));
        }
    }
    if let Some(ns) = netns {
        enter_netns(ns)?;
    }
    Ok(())
}

/// Whether the named network namespace exists (`ip netns add` made it).
pub fn netns_exists(ns: &str) -> bool {
    !ns.contains('/') && Path::new("/run/netns").join(ns).exists()
}

/// Runs `f` inside `netns` when given, else on the calling thread.
pub fn in_ns_opt<T: Send>(netns: Option<&str>, f: impl FnOnce() -> T + Send) -> Result<T> {
    match netns {
        Some(ns) => in_netns(ns, f),
        None => Ok(f()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_limits() {
        let id = format!("{:x}{:02x}", 4_194_304u32, 255);
        let (s, c, si, ci) = names(&id);
        assert!(si.len() <= 15 && ci.len() <= 15, "{si} {ci}");
        assert!(s.starts_with("byp-") && c.starts_with("byp-"));
        assert_eq!(parse_ns_name(&s).unwrap().0, id);
        assert!(parse_ns_name("byp-zz-srv").is_none());
        // labs of `lab up` are never taken for leftovers of a dead process
        let up = format!("{id}u");
        let (s2, _, si2, _) = names(&up);
        assert!(si2.len() <= 15);
        assert!(parse_ns_name(&s2).is_none());
        assert!(parse_ns_name("other-12-srv").is_none());
    }

    #[test]
    fn hosts_lab_names_fit_and_are_reaped_by_their_owner() {
        // the longest id: a 6-digit pid, the counter, and `u` (lab up)
        let id = format!("{:x}{:02x}u", 4_194_304u32, 255);
        for n in [
            format!("{PREFIX}{id}bd"),
            format!("{PREFIX}{id}d{}", MAX_LAB_CLIENTS),
            format!("{PREFIX}{id}n{}", MAX_LAB_CLIENTS),
        ] {
            assert!(n.len() <= 15, "{n}");
        }
        // a run's (no `u`): its namespaces belong to its pid
        let run = format!("{:x}{:02x}", 4_194_304u32, 7);
        for ns in [
            format!("byp-{run}-sw"),
            format!("byp-{run}-h0"),
            format!("byp-{run}-h8"),
        ] {
            assert_eq!(parse_ns_name(&ns), Some((run.clone(), 4_194_304)), "{ns}");
        }
        assert!(parse_ns_name(&format!("byp-{id}-sw")).is_none());
        assert!(parse_ns_name(&format!("byp-{run}-hx")).is_none());
        assert!(parse_ns_name(&format!("byp-{run}-h")).is_none());
        for i in 0..=MAX_LAB_CLIENTS {
            for base in [HOSTS_DATA_BASE, HOSTS_STACK_BASE, HOSTS_MGMT_BASE] {
                let o = nth(base, i).octets();
                assert!(o[0] == 198 && (o[1] == 18 || o[1] == 19), "{o:?}");
            }
        }
    }

    #[test]
    fn ids_are_unique_within_a_process() {
        let a = unique_id();
        let b = unique_id();
        assert_ne!(a, b);
    }

    #[test]
    fn lab_addresses_are_in_the_benchmarking_range() {
        for a in [SERVER_ADDR, CLIENT_ADDR, STACK_ADDR, STACK_CLIENT_ADDR] {
            let o = a.octets();
            assert!(o[0] == 198 && (o[1] == 18 || o[1] == 19), "{a}");
        }
    }
}
