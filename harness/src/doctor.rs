//! `bypass doctor`: a preflight of a host, before its figures are trusted.
//! Each check reads one thing a reviewer would ask about (the driver, what
//! it offers XDP and AF_XDP, queues against shards, where the queues'
//! interrupts land, CPU frequency and SMT, offloads and MTU, the sysctls
//! that shape a run) and says `ok`, `warn` (with the fix) or `info` (a fact
//! with no verdict, e.g. a VM that hides its CPU frequency). A run records
//! the preflight of its server interface in its env, and a warning there
//! puts the caution flag `preflight` on every run.
//!
//! Everything is read, nothing is changed.

use std::collections::BTreeMap;
use std::fs;

use serde::{Deserialize, Serialize};

/// A check's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Info,
}

impl Status {
    fn tag(self) -> &'static str {
        match self {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Info => "info",
        }
    }
}

/// What a check looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    Driver,
    XdpFeatures,
    Queues,
    IrqAffinity,
    Irqbalance,
    CpuFrequency,
    Smt,
    Offloads,
    Mtu,
    Sysctls,
}

impl CheckKind {
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::Driver => "driver",
            CheckKind::XdpFeatures => "xdp_features",
            CheckKind::Queues => "queues",
            CheckKind::IrqAffinity => "irq_affinity",
            CheckKind::Irqbalance => "irqbalance",
            CheckKind::CpuFrequency => "cpu_frequency",
            CheckKind::Smt => "smt",
            CheckKind::Offloads => "offloads",
            CheckKind::Mtu => "mtu",
            CheckKind::Sysctls => "sysctls",
        }
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub check: CheckKind,
    pub status: Status,
    pub finding: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn ok(check: CheckKind, finding: impl Into<String>) -> Check {
        Check {
            check,
            status: Status::Ok,
            finding: finding.into(),
            fix: None,
        }
    }
    fn info(check: CheckKind, finding: impl Into<String>) -> Check {
        Check {
            status: Status::Info,
            ..Check::ok(check, finding)
        }
    }
    fn warn(check: CheckKind, finding: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            check,
            status: Status::Warn,
            finding: finding.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The preflight of one interface and the CPUs that serve it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Preflight {
    pub iface: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// The CPUs of the shards (or threads) on this interface.
    pub cpus: Vec<usize>,
    pub checks: Vec<Check>,
}

impl Preflight {
    pub fn warnings(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Warn)
    }

    /// The checklist as `bypass doctor` prints it.
    pub fn render(&self) -> String {
        let mut s = format!(
            "bypass doctor: {}{}, CPUs under test {:?}\n",
            self.iface,
            self.netns
                .as_deref()
                .map(|n| format!(" (netns {n})"))
                .unwrap_or_default(),
            self.cpus
        );
        for c in &self.checks {
            s += &format!(
                "  [{}] {:<13} {}\n",
                c.status.tag(),
                c.check.name(),
                c.finding
            );
            if let Some(f) = &c.fix {
                s += &format!("         {:<13} fix: {f}\n", "");
            }
        }
        let w = self.warnings().count();
        s += &if w == 0 {
            "no warnings\n".to_string()
        } else {
            format!("{w} warning(s): figures taken now carry the caution flag `preflight`\n")
        };
        s
    }
}

/// What to check: an interface (in a namespace, or this one), the CPUs
/// that will serve it, and the other CPUs the run uses on this host (the
/// load generator in a lab), which should not be their SMT siblings.
pub struct Target<'a> {
    pub netns: Option<&'a str>,
    pub iface: &'a str,
    pub cpus: &'a [usize],
    pub other_cpus: &'a [usize],
}

/// The sysctls that shape a run, reported as the host holds them.
pub const SYSCTLS: &[&str] = &[
    "net.core.busy_poll",
    "net.core.busy_read",
    "net.core.somaxconn",
    "net.core.netdev_budget",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_tw_reuse",
];

/// The largest MTU a single-buffer XDP frame carries on most drivers: a
/// 4 KiB page less the headroom (256) and `skb_shared_info` (320), less the
/// Ethernet header and a VLAN tag. Above it the bypass path needs
/// multi-buffer XDP from the driver (`rx-sg`) and multi-buffer AF_XDP from
/// the kernel (`XDP_USE_SG`, 6.6).
pub const XDP_SINGLE_BUFFER_MTU: u32 = 3498;

/// The first kernel with multi-buffer AF_XDP (major, minor).
const AF_XDP_SG_KERNEL: (u32, u32) = (6, 6);

/// Runs every check. Nothing fails: what cannot be read is a finding.
pub fn check(t: &Target) -> Preflight {
    let io = Io { netns: t.netns };
    let driver = io.ethtool(&["-i", t.iface]).unwrap_or_default();
    let drv = field(&driver, "driver").unwrap_or_default();
    let veth = drv == "veth";
    let features = crate::lab::in_ns_opt(t.netns, || xdp::netdev::dev_features_by_name(t.iface))
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| r);
    let checks = vec![
        driver_check(&driver),
        xdp_check(&features, veth),
        queues_check(&io, t),
        irq_check(&io, t, veth),
        irqbalance_check(),
        freq_check(t.cpus),
        smt_check(t.cpus, t.other_cpus),
        offloads_check(io.ethtool(&["-k", t.iface]).ok().as_deref(), t.iface),
        mtu_check(
            io.read(&format!("/sys/class/net/{}/mtu", t.iface)),
            &features,
            t.iface,
            &crate::sys::kernel(),
        ),
        sysctls_check(&io),
    ];
    Preflight {
        iface: t.iface.to_string(),
        netns: t.netns.map(str::to_string),
        cpus: t.cpus.to_vec(),
        checks,
    }
}

/// Reads from the interface's namespace: sysfs is per namespace only as
/// `ip netns exec` mounts it, so reads there go through it.
struct Io<'a> {
    netns: Option<&'a str>,
}

impl Io<'_> {
    fn run(&self, cmd: &str, args: &[&str]) -> anyhow::Result<String> {
        crate::sys::sh_in(self.netns, cmd, args)
    }
    fn ethtool(&self, args: &[&str]) -> anyhow::Result<String> {
        self.run("ethtool", args)
    }
    /// A file under /sys or /proc/sys as the namespace sees it.
    fn read(&self, path: &str) -> Option<String> {
        match self.netns {
            Some(_) => self.run("cat", &[path]).ok(),
            None => fs::read_to_string(path).ok(),
        }
        .map(|s| s.trim().to_string())
    }
    /// The entries of a directory as the namespace sees it.
    fn list(&self, dir: &str) -> Vec<String> {
        match self.netns {
            Some(_) => self
                .run("ls", &[dir])
                .map(|s| s.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            None => fs::read_dir(dir)
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// `key: value` of ethtool's output.
fn field(out: &str, key: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

fn driver_check(ethtool_i: &str) -> Check {
    let get = |k| field(ethtool_i, k).filter(|v| !v.is_empty());
    match get("driver") {
        None => Check::warn(
            CheckKind::Driver,
            "the driver is unknown (`ethtool -i` failed)",
            "install ethtool (Debian: apt-get install ethtool) and name an existing interface",
        ),
        Some(d) => Check::info(
            CheckKind::Driver,
            format!(
                "{d} {}, firmware {}, bus {}",
                get("version").unwrap_or_else(|| "?".into()),
                get("firmware-version").unwrap_or_else(|| "n/a".into()),
                get("bus-info").unwrap_or_else(|| "n/a".into())
            ),
        ),
    }
}

fn xdp_check(f: &std::io::Result<xdp::netdev::DevFeatures>, veth: bool) -> Check {
    let f = match f {
        Ok(f) => f,
        Err(e) => {
            return Check::warn(
                CheckKind::XdpFeatures,
                format!("the kernel does not say what the device offers XDP: {e}"),
                "Linux 6.3+ reports XDP features over netlink; on an older kernel check the driver's documentation",
            )
        }
    };
    let xsk = match f.xsk {
        Some(_) if f.xsk_names().is_empty() => "none".to_string(),
        Some(_) => f.xsk_names().join(","),
        None => "unknown (kernel < 6.8)".to_string(),
    };
    let rx = if f.rx_metadata_names().is_empty() {
        "none".to_string()
    } else {
        f.rx_metadata_names().join(",")
    };
    let xdp = if f.xdp_names().is_empty() {
        "none".to_string()
    } else {
        f.xdp_names().join(",")
    };
    let finding = format!("xdp {xdp}; rx metadata {rx}; xsk tx metadata {xsk}");
    let native =
        f.xdp & xdp::netdev::xdp_act::BASIC != 0 && f.xdp & xdp::netdev::xdp_act::REDIRECT != 0;
    if !native {
        Check::warn(
            CheckKind::XdpFeatures,
            format!("{finding}: no native XDP redirect, the bypass path runs in generic mode (an skb per frame)"),
            "use a driver with native XDP (mlx5, ice, i40e, ixgbe, virtio_net, veth)",
        )
    } else if !f.zero_copy() && veth {
        Check::info(
            CheckKind::XdpFeatures,
            format!("{finding} (veth: AF_XDP in copy mode only)"),
        )
    } else if !f.zero_copy() {
        Check::warn(
            CheckKind::XdpFeatures,
            format!("{finding}: no AF_XDP zero-copy, every frame is copied"),
            "a driver with xsk-zerocopy (mlx5, ice, i40e; virtio_net from Linux 6.13) gives the bypass path its real figures",
        )
    } else {
        Check::ok(CheckKind::XdpFeatures, finding)
    }
}

/// Receive queues in use: `ethtool -l`'s current combined plus RX-only
/// channels, else the device's `num_rx_queues`.
fn rx_queues(io: &Io, iface: &str) -> Option<u64> {
    crate::sys::rx_channels(io.netns, iface).or_else(|| {
        Some(io.list(&format!("/sys/class/net/{iface}/queues")))
            .map(|q| q.iter().filter(|e| e.starts_with("rx-")).count() as u64)
            .filter(|n| *n > 0)
    })
}

fn queues_check(io: &Io, t: &Target) -> Check {
    let shards = t.cpus.len() as u64;
    match rx_queues(io, t.iface) {
        None => Check::warn(
            CheckKind::Queues,
            "the receive queues could not be read",
            "check `ethtool -l IF`",
        ),
        Some(q) if q < shards => Check::warn(
            CheckKind::Queues,
            format!(
                "{q} receive queue(s) for {shards} shard(s): {} shard(s) would get no queue",
                shards - q
            ),
            format!(
                "`ethtool -L {} combined {shards}` (or run with --cores {q})",
                t.iface
            ),
        ),
        Some(q) => Check::ok(
            CheckKind::Queues,
            format!("{q} receive queue(s) for {shards} shard(s)"),
        ),
    }
}

/// The queue an interrupt's name serves (`virtio0-input.1`,
/// `ice-eth0-TxRx-3`, `mlx5_comp2@pci:...`), if it names one.
pub fn irq_queue(name: &str) -> Option<u32> {
    let tail = ["-input.", "-TxRx-", "mlx5_comp", "-rx-", "-rxtx-"]
        .iter()
        .find_map(|m| name.split_once(m).map(|(_, t)| t))?;
    let digits: String = tail.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

fn irq_check(io: &Io, t: &Target, veth: bool) -> Check {
    if veth {
        return Check::info(
            CheckKind::IrqAffinity,
            "no device interrupts (veth: the sender's CPU does the receive work)",
        );
    }
    let dev = format!("/sys/class/net/{}/device", t.iface);
    let mut irqs = io.list(&format!("{dev}/msi_irqs"));
    if irqs.is_empty() {
        // virtio: the net device's parent is the PCI function
        irqs = io.list(&format!("{dev}/../msi_irqs"));
    }
    if irqs.is_empty() {
        return Check::info(
            CheckKind::IrqAffinity,
            "the device's interrupts could not be found (no MSI-X under sysfs)",
        );
    }
    let names = interrupt_names();
    let in_use = rx_queues(io, t.iface).unwrap_or(u64::MAX);
    let mut wrong = Vec::new();
    let mut seen = Vec::new();
    for irq in &irqs {
        let Some(name) = names.get(irq.as_str()) else {
            continue;
        };
        let Some(q) = irq_queue(name) else { continue };
        if q as u64 >= in_use {
            // a queue the channels leave idle (`ethtool -L`)
            continue;
        }
        let Some(aff) = fs::read_to_string(format!("/proc/irq/{irq}/smp_affinity_list")).ok()
        else {
            continue;
        };
        let aff = aff.trim().to_string();
        let want = t.cpus[q as usize % t.cpus.len().max(1)];
        let cpus = crate::sys::parse_cpu_list(&aff)
            .map(|l| l.0)
            .unwrap_or_default();
        seen.push(format!("{name}→{aff}"));
        if cpus != [want] {
            wrong.push((irq.clone(), name.clone(), aff, want));
        }
    }
    if seen.is_empty() {
        return Check::info(
            CheckKind::IrqAffinity,
            "no per-queue interrupts found among the device's",
        );
    }
    if wrong.is_empty() {
        return Check::ok(
            CheckKind::IrqAffinity,
            format!(
                "each queue's interrupt on its shard's CPU ({})",
                seen.join(", ")
            ),
        );
    }
    let what: Vec<String> = wrong
        .iter()
        .map(|(_, n, a, w)| format!("{n} on CPUs {a}, its shard on {w}"))
        .collect();
    let fix: Vec<String> = wrong
        .iter()
        .map(|(i, _, _, w)| format!("echo {w} > /proc/irq/{i}/smp_affinity_list"))
        .collect();
    Check::warn(CheckKind::IrqAffinity, what.join("; "), fix.join("; "))
}

/// IRQ number -> its name (the last field of /proc/interrupts).
fn interrupt_names() -> BTreeMap<String, String> {
    let text = fs::read_to_string("/proc/interrupts").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (n, rest) = l.trim_start().split_once(':')?;
            let name = rest.split_whitespace().last()?;
            n.parse::<u32>().ok()?;
            Some((n.to_string(), name.to_string()))
        })
        .collect()
}

fn irqbalance_check() -> Check {
    let running = fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .any(|e| {
                    fs::read_to_string(e.path().join("comm"))
                        .map(|c| c.trim() == "irqbalance")
                        .unwrap_or(false)
                })
        })
        .unwrap_or(false);
    if running {
        Check::warn(
            CheckKind::Irqbalance,
            "irqbalance is running: it moves the queues' interrupts during a run",
            "systemctl stop irqbalance (and pin each queue's IRQ to its shard's CPU)",
        )
    } else {
        Check::ok(CheckKind::Irqbalance, "irqbalance is not running")
    }
}

fn freq_check(cpus: &[usize]) -> Check {
    let mut govs = Vec::new();
    let mut slow = Vec::new();
    for &c in cpus {
        let base = format!("/sys/devices/system/cpu/cpu{c}/cpufreq");
        let Ok(g) = fs::read_to_string(format!("{base}/scaling_governor")) else {
            continue;
        };
        let g = g.trim().to_string();
        let khz = fs::read_to_string(format!("{base}/scaling_cur_freq"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        govs.push(format!(
            "CPU {c}: {g}{}",
            khz.map(|k| format!(" at {} MHz", k / 1000))
                .unwrap_or_default()
        ));
        if g != "performance" {
            slow.push(c);
        }
    }
    if govs.is_empty() {
        let mhz = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| field(&s.replace('\t', ""), "cpu MHz"));
        return Check::info(
            CheckKind::CpuFrequency,
            format!(
                "no cpufreq in this system (a VM: the host sets the frequency){}",
                mhz.map(|m| format!("; /proc/cpuinfo says {m} MHz"))
                    .unwrap_or_default()
            ),
        );
    }
    if slow.is_empty() {
        Check::ok(CheckKind::CpuFrequency, govs.join(", "))
    } else {
        Check::warn(
            CheckKind::CpuFrequency,
            govs.join(", "),
            format!(
                "`cpupower -c {} frequency-set -g performance`: a governor that scales changes the figures between runs",
                slow.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",")
            ),
        )
    }
}

fn siblings(cpu: usize) -> Vec<usize> {
    fs::read_to_string(format!(
        "/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list"
    ))
    .ok()
    .and_then(|s| crate::sys::parse_cpu_list(s.trim()).ok())
    .map(|l| l.0)
    .unwrap_or_else(|| vec![cpu])
}

fn smt_check(cpus: &[usize], others: &[usize]) -> Check {
    let mut shared = Vec::new();
    let all: Vec<usize> = cpus.iter().chain(others).copied().collect();
    for &c in cpus {
        for s in siblings(c) {
            if s != c && all.contains(&s) {
                shared.push((c, s));
            }
        }
    }
    let smt = fs::read_to_string("/sys/devices/system/cpu/smt/active")
        .map(|s| s.trim() == "1")
        .unwrap_or(false);
    if shared.is_empty() {
        Check::ok(
            CheckKind::Smt,
            format!(
                "no two CPUs under test share a core (SMT {})",
                if smt { "on" } else { "off" }
            ),
        )
    } else {
        let pairs: Vec<String> = shared.iter().map(|(a, b)| format!("{a}+{b}")).collect();
        Check::warn(
            CheckKind::Smt,
            format!("SMT siblings both under test: {}", pairs.join(", ")),
            "put the server's and the client's threads on different cores (--server-cpus, --client-cpus), or `echo off > /sys/devices/system/cpu/smt/control`",
        )
    }
}

fn offloads_check(ethtool_k: Option<&str>, iface: &str) -> Check {
    let Some(k) = ethtool_k else {
        return Check::warn(
            CheckKind::Offloads,
            "the offloads could not be read (`ethtool -k` failed)",
            "install ethtool",
        );
    };
    let on = |key: &str| field(k, key).map(|v| v.starts_with("on"));
    let show = |key: &str, label: &str| match on(key) {
        Some(true) => format!("{label} on"),
        Some(false) => format!("{label} off"),
        None => format!("{label} ?"),
    };
    let finding = [
        show("large-receive-offload", "LRO"),
        show("generic-receive-offload", "GRO"),
        show("rx-gro-hw", "HW-GRO"),
        show("tcp-segmentation-offload", "TSO"),
        show("rx-checksumming", "rx-csum"),
        show("tx-checksumming", "tx-csum"),
    ]
    .join(", ");
    if on("large-receive-offload") == Some(true) {
        Check::warn(
            CheckKind::Offloads,
            format!("{finding}: native XDP cannot attach while the NIC merges segments (LRO)"),
            format!("ethtool -K {iface} lro off"),
        )
    } else {
        Check::info(
            CheckKind::Offloads,
            format!("{finding} (the kernel path uses them; the bypass path does its own segmentation and checksums; a driver turns HW-GRO off while XDP is attached)"),
        )
    }
}

/// (major, minor) of a kernel release such as "6.18.44-fc x86_64".
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(['.', '-', ' ']);
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The MTU (from sysfs, as read) against what XDP and AF_XDP take.
fn mtu_check(
    mtu: Option<String>,
    features: &std::io::Result<xdp::netdev::DevFeatures>,
    iface: &str,
    kernel: &str,
) -> Check {
    let Some(mtu) = mtu.and_then(|s| s.trim().parse::<u32>().ok()) else {
        return Check::warn(
            CheckKind::Mtu,
            "the MTU could not be read",
            "name an existing interface",
        );
    };
    if mtu <= XDP_SINGLE_BUFFER_MTU {
        return Check::ok(
            CheckKind::Mtu,
            format!("MTU {mtu} (single-buffer XDP takes up to {XDP_SINGLE_BUFFER_MTU})"),
        );
    }
    let fix = format!("ip link set {iface} mtu {XDP_SINGLE_BUFFER_MTU} (on both ends), or a driver and kernel with multi-buffer XDP");
    let sg = features
        .as_ref()
        .is_ok_and(|f| f.xdp & xdp::netdev::xdp_act::RX_SG != 0);
    let kernel_ok = kernel_version(kernel).is_some_and(|v| v >= AF_XDP_SG_KERNEL);
    match (sg, kernel_ok) {
        (true, true) => Check::ok(
            CheckKind::Mtu,
            format!("MTU {mtu}: above {XDP_SINGLE_BUFFER_MTU}, frames come in several buffers: the driver takes multi-buffer XDP (rx-sg) and the bypass path binds multi-buffer AF_XDP (XDP_USE_SG)"),
        ),
        (false, _) => Check::warn(
            CheckKind::Mtu,
            format!("MTU {mtu}: above {XDP_SINGLE_BUFFER_MTU}, and the driver does not say it takes multi-buffer XDP (rx-sg): the program cannot attach natively, or frames over a page are lost"),
            fix,
        ),
        (true, false) => Check::warn(
            CheckKind::Mtu,
            format!("MTU {mtu}: above {XDP_SINGLE_BUFFER_MTU}, and kernel {kernel} is older than {}.{}, which brought multi-buffer AF_XDP (XDP_USE_SG)", AF_XDP_SG_KERNEL.0, AF_XDP_SG_KERNEL.1),
            fix,
        ),
    }
}

fn sysctls_check(io: &Io) -> Check {
    let vals: Vec<String> = SYSCTLS
        .iter()
        .map(|k| {
            // the host-wide ones (busy_poll, netdev_budget) only in the
            // initial namespace
            let v = io
                .read(&crate::sys::sysctl_path(k))
                .or_else(|| crate::sys::read_sysctl(k).ok())
                .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|| "n/a (host-wide, not seen from this namespace)".into());
            format!("{k}={v}")
        })
        .collect();
    Check::info(CheckKind::Sysctls, vals.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupt_name_gives_its_queue() {
        assert_eq!(irq_queue("virtio0-input.1"), Some(1));
        assert_eq!(irq_queue("virtio0-output.1"), None);
        assert_eq!(irq_queue("virtio0-config"), None);
        assert_eq!(irq_queue("ice-ens1f0-TxRx-12"), Some(12));
        assert_eq!(irq_queue("mlx5_comp3@pci:0000:3b:00.0"), Some(3));
        assert_eq!(irq_queue("mlx5_async0@pci:0000:3b:00.0"), None);
    }

    #[test]
    fn lro_on_is_a_warning_with_its_fix_and_plain_offloads_are_facts() {
        let k = "Features for eth0:\nrx-checksumming: on\ntx-checksumming: on\ntcp-segmentation-offload: on\ngeneric-receive-offload: on\nlarge-receive-offload: on\nrx-gro-hw: off [fixed]\n";
        let c = offloads_check(Some(k), "eth0");
        assert_eq!(c.status, Status::Warn);
        assert_eq!(c.fix.as_deref(), Some("ethtool -K eth0 lro off"));
        let c = offloads_check(
            Some(&k.replace(
                "large-receive-offload: on",
                "large-receive-offload: off [fixed]",
            )),
            "eth0",
        );
        assert_eq!(c.status, Status::Info);
        assert!(
            c.finding.contains("LRO off, GRO on, HW-GRO off, TSO on"),
            "{}",
            c.finding
        );
    }

    #[test]
    fn no_zero_copy_warns_except_on_veth_and_no_native_xdp_always_warns() {
        use xdp::netdev::{xdp_act, DevFeatures};
        let copy = DevFeatures {
            xdp: xdp_act::BASIC | xdp_act::REDIRECT | xdp_act::NDO_XMIT,
            ..Default::default()
        };
        assert_eq!(xdp_check(&Ok(copy), false).status, Status::Warn);
        assert_eq!(xdp_check(&Ok(copy), true).status, Status::Info);
        let zc = DevFeatures {
            xdp: copy.xdp | xdp_act::XSK_ZEROCOPY,
            xsk: Some(2),
            ..Default::default()
        };
        let c = xdp_check(&Ok(zc), false);
        assert_eq!(c.status, Status::Ok);
        assert!(c.finding.contains("xsk-zerocopy") && c.finding.contains("tx-checksum"));
        assert_eq!(
            xdp_check(&Ok(DevFeatures::default()), true).status,
            Status::Warn
        );
    }

    #[test]
    fn an_mtu_over_a_page_needs_rx_sg_and_a_kernel_with_multi_buffer_af_xdp() {
        use xdp::netdev::{xdp_act, DevFeatures};
        let sg = DevFeatures {
            xdp: xdp_act::BASIC | xdp_act::REDIRECT | xdp_act::RX_SG,
            ..Default::default()
        };
        let plain = DevFeatures {
            xdp: xdp_act::BASIC | xdp_act::REDIRECT,
            ..Default::default()
        };
        let k = "6.18.44-fc-v1147 x86_64";
        let at = |mtu: &str, f: &DevFeatures, kernel: &str| {
            mtu_check(Some(format!("{mtu}\n")), &Ok(*f), "eth0", kernel)
        };
        assert_eq!(at("1500", &plain, k).status, Status::Ok);
        assert_eq!(at("3498", &plain, "5.15.0 x86_64").status, Status::Ok);
        let c = at("9000", &sg, k);
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.finding.contains("XDP_USE_SG"), "{c:?}");
        let c = at("9000", &plain, k);
        assert_eq!(c.status, Status::Warn, "{c:?}");
        assert!(c.finding.contains("rx-sg"), "{c:?}");
        assert!(c.fix.as_deref().unwrap().contains("mtu 3498"), "{c:?}");
        let c = at("9000", &sg, "6.1.0-28-amd64 x86_64");
        assert_eq!(c.status, Status::Warn, "{c:?}");
        assert!(c.finding.contains("6.6"), "{c:?}");
        assert_eq!(mtu_check(None, &Ok(sg), "eth0", k).status, Status::Warn);
        assert_eq!(kernel_version("7.3.4+deb13-amd64 x86_64"), Some((7, 3)));
    }

    #[test]
    fn a_rendered_checklist_names_each_check_and_its_fix() {
        let p = Preflight {
            iface: "eth0".into(),
            netns: None,
            cpus: vec![1],
            checks: vec![
                Check::ok(CheckKind::Mtu, "MTU 1500"),
                Check::warn(
                    CheckKind::Irqbalance,
                    "running",
                    "systemctl stop irqbalance",
                ),
            ],
        };
        let s = p.render();
        assert!(s.contains("[ok  ] mtu"), "{s}");
        assert!(s.contains("[warn] irqbalance"), "{s}");
        assert!(s.contains("fix: systemctl stop irqbalance"), "{s}");
        assert!(s.contains("1 warning(s)"), "{s}");
        let back: Preflight = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
