//! Facts about the machine that a result records, and checks of the
//! environment that turn into clear errors.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::process::Command;

use anyhow::{anyhow, bail, Result};

use crate::error::{usage, UsageError};

/// Runs a command and returns its stdout; on failure the error carries the
/// command line and its stderr.
pub fn sh(cmd: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(cmd).args(args).output().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            anyhow!(UsageError(format!(
                "`{cmd}` is not installed: install it (Debian: apt-get install iproute2 ethtool procps)"
            )))
        } else {
            anyhow!("running `{cmd}`: {e}")
        }
    })?;
    if !out.status.success() {
        bail!(
            "`{cmd} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// [`sh`] inside `netns` (through `ip netns exec`, which also mounts that
/// namespace's /sys) when given, else here.
pub fn sh_in(netns: Option<&str>, cmd: &str, args: &[&str]) -> Result<String> {
    match netns {
        Some(ns) => {
            let mut a = vec!["netns", "exec", ns, cmd];
            a.extend_from_slice(args);
            sh("ip", &a)
        }
        None => sh(cmd, args),
    }
}

pub fn kernel() -> String {
    nix::sys::utsname::uname()
        .map(|u| {
            format!(
                "{} {}",
                u.release().to_string_lossy(),
                u.machine().to_string_lossy()
            )
        })
        .unwrap_or_default()
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default()
}

/// CPUs this process may run on.
pub fn cpus() -> Vec<usize> {
    core_affinity::get_core_ids()
        .map(|v| v.into_iter().map(|c| c.id).collect())
        .unwrap_or_else(|| vec![0])
}

pub fn git_revision() -> String {
    env!("BYPASS_GIT_REV").to_string()
}

/// Driver of an interface (as `ethtool -i` reports it), run in `netns` when given.
pub fn driver(netns: Option<&str>, iface: &str) -> String {
    match sh_in(netns, "ethtool", &["-i", iface]) {
        Ok(s) => s
            .lines()
            .find_map(|l| l.strip_prefix("driver:"))
            .map(|d| d.trim().to_string())
            .unwrap_or_default(),
        // ethtool missing: sysfs still knows for physical devices
        Err(_) => fs::read_link(format!("/sys/class/net/{iface}/device/driver"))
            .ok()
            .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "unknown".into()),
    }
}

/// The receive channels in use (`ethtool -l`'s current combined plus
/// RX-only ones), run in `netns` when given; `None` where ethtool cannot
/// say. A device may have more queues than it uses (virtio_net with
/// `ethtool -L IF combined 2` of 4): binding an idle one fails.
pub fn rx_channels(netns: Option<&str>, iface: &str) -> Option<u64> {
    let out = sh_in(netns, "ethtool", &["-l", iface]).ok()?;
    let cur = out.split("Current hardware settings:").nth(1)?;
    let n = |k: &str| {
        cur.lines()
            .find_map(|l| l.trim().strip_prefix(k)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    match (n("Combined"), n("RX")) {
        (None, None) => None,
        (c, r) => Some(c.unwrap_or(0) + r.unwrap_or(0)).filter(|n| *n > 0),
    }
}

/// The interfaces of the calling thread's network namespace (`ip link`).
pub fn interfaces() -> Result<Vec<String>> {
    let out = sh("ip", &["-j", "link", "show"])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l["ifname"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// A list of CPU numbers, as `0,2-3` on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

/// Parses a CPU list such as `0,2-3`.
pub fn parse_cpu_list(s: &str) -> Result<CpuList, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("`{s}` is not a CPU list (examples: 1, 0,2, 2-3)");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) =
                    (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a > b || b - a > 4096 {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    if out.is_empty() {
        return Err(format!("`{s}` names no CPU"));
    }
    Ok(CpuList(out))
}

/// Checks CPUs against those this process may use.
pub fn check_cpus(list: &[usize], flag: &str) -> Result<()> {
    let avail = cpus();
    for c in list {
        if !avail.contains(c) {
            return Err(usage(format!(
                "{flag}: CPU {c} is not available here (available: {avail:?})"
            )));
        }
    }
    Ok(())
}

/// Interface addresses as (address, prefix length), from `ip -j addr`.
pub fn iface_addrs(iface: &str) -> Result<Vec<(IpAddr, u8)>> {
    let out = sh("ip", &["-j", "addr", "show", "dev", iface]).map_err(|_| {
        usage(format!(
            "no such interface `{iface}`: list them with `ip link` and pass one with --iface"
        ))
    })?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let mut addrs = Vec::new();
    if let Some(infos) = v[0]["addr_info"].as_array() {
        for a in infos {
            if let (Some(ip), Some(p)) = (a["local"].as_str(), a["prefixlen"].as_u64()) {
                if let Ok(ip) = ip.parse() {
                    addrs.push((ip, p as u8));
                }
            }
        }
    }
    Ok(addrs)
}

/// Whether `a` lies in `net`/`prefix`.
pub fn in_subnet(a: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (a, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let p = u32::from(prefix.min(32));
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let p = u32::from(prefix.min(128));
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Hardware mode: `addr` must be one of `iface`'s addresses and `peer` must
/// be in one of its subnets.
pub fn check_hardware(iface: &str, addr: IpAddr, peer: Option<IpAddr>) -> Result<()> {
    let addrs = iface_addrs(iface)?;
    if !addrs.iter().any(|(a, _)| *a == addr) {
        let have: Vec<String> = addrs.iter().map(|(a, p)| format!("{a}/{p}")).collect();
        return Err(usage(format!(
            "--addr {addr} is not an address of {iface} (it has: {}); pass one of them",
            if have.is_empty() {
                "none".into()
            } else {
                have.join(", ")
            }
        )));
    }
    if let Some(peer) = peer {
        if !addrs.iter().any(|(a, p)| in_subnet(peer, *a, *p)) {
            return Err(usage(format!(
                "--peer {peer} is outside the subnets of {iface}: the benchmark does not go through a router; give a peer on the same link"
            )));
        }
    }
    Ok(())
}

/// The bypass path on real hardware: `addr` is the stack's own address on
/// `iface`, which must be free (not the kernel's) and in one of `iface`'s
/// subnets. Returns the subnet's prefix length.
pub fn check_stack_addr(iface: &str, addr: std::net::Ipv4Addr, flag: &str) -> Result<u8> {
    let addrs = iface_addrs(iface)?;
    if addrs.iter().any(|(x, _)| *x == IpAddr::V4(addr)) {
        return Err(usage(format!(
            "{flag} {addr} is the kernel's own address on {iface}: give the stack an unused address of the subnet (the XDP program takes every IPv4 packet for it)"
        )));
    }
    addrs
        .iter()
        .find(|(x, p)| in_subnet(IpAddr::V4(addr), *x, *p))
        .map(|(_, p)| *p)
        .ok_or_else(|| usage(format!("{flag} {addr} is outside the subnets of {iface}")))
}

/// The file of a sysctl: `net.ipv4.tcp_tw_reuse` is
/// /proc/sys/net/ipv4/tcp_tw_reuse.
pub fn sysctl_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

/// A sysctl as the calling thread sees it (its network namespace:
/// /proc/sys/net follows the thread's namespace), whitespace runs as one
/// space ("1024 65535").
pub fn read_sysctl(key: &str) -> std::io::Result<String> {
    std::fs::read_to_string(sysctl_path(key))
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// A numeric sysctl as the calling thread sees it; None where the kernel
/// has no such setting.
pub fn own_sysctl(key: &str) -> Option<u64> {
    read_sysctl(key).ok()?.parse().ok()
}

/// Whether process `pid` is alive and runs bypass: this same executable,
/// or one whose command name is `bypass`.
/// The memory available for new allocations (`MemAvailable` in
/// /proc/meminfo), in bytes; `None` where the kernel does not say.
pub fn mem_available() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

pub fn is_bypass_process(pid: u32) -> bool {
    let proc = std::path::Path::new("/proc").join(pid.to_string());
    let same_exe = match (
        std::fs::read_link(proc.join("exe")),
        std::env::current_exe(),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    same_exe || std::fs::read_to_string(proc.join("comm")).is_ok_and(|c| c.trim() == "bypass")
}

/// Raises this process's open-file limit (soft and hard, as root may) to
/// `want`, at most the kernel's `fs.nr_open`: a kernel server holding
/// `--hold`'s connections needs a descriptor for each. Returns the soft
/// limit in force after.
pub fn raise_open_files(want: u64) -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let cap = read_sysctl("fs.nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 0;
    };
    let target = want.min(cap);
    if soft < target {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, target, hard.max(target));
    }
    getrlimit(Resource::RLIMIT_NOFILE).map_or(soft, |(s, _)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0,2-3").unwrap().0, vec![0, 2, 3]);
        assert_eq!(parse_cpu_list("1").unwrap().0, vec![1]);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
        assert!(parse_cpu_list("").is_err());
    }

    #[test]
    fn subnets() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_subnet(ip("198.18.0.2"), ip("198.18.0.1"), 24));
        assert!(!in_subnet(ip("198.18.1.2"), ip("198.18.0.1"), 24));
        assert!(in_subnet(ip("198.19.0.1"), ip("198.18.0.1"), 15));
        assert!(!in_subnet(ip("::1"), ip("198.18.0.1"), 24));
    }
}
