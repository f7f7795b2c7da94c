//! The interface settings that make the kernel's busy polling effective
//! (the kernel's busy-poll documentation, "preferred busy polling"), set
//! on a side's interface for a `kernel-busy` run and restored when the side
//! stops (or is dropped):
//!
//! - `napi_defer_hard_irqs` = 2 and `gro_flush_timeout` = 200 µs: after a
//!   NAPI poll the device's interrupt stays masked while a busy poller may
//!   come back, so the spinning application, not the softirq, processes the
//!   packets (with `SO_PREFER_BUSY_POLL` on the sockets);
//! - on a veth, GRO on and TSO off: a veth has a NAPI context (which busy
//!   polling spins on) only with XDP or GRO on, and even with GRO on it
//!   passes a TCP segment from a TSO-capable peer straight to the stack,
//!   around NAPI (`veth_skb_is_eligible_for_gro`). Without both, a socket's
//!   `SO_INCOMING_NAPI_ID` stays 0 and `SO_BUSY_POLL` does nothing on veth
//!   (measured: `TcpExt.BusyPollRxPackets` stays 0). A NIC has NAPI anyway,
//!   and its GRO and TSO are left as they are.
//!
//! `irq_suspend_timeout` (6.13) is a per-NAPI setting given over netlink,
//! not sysfs: it is not set here.

use anyhow::{Context, Result};

use crate::sys::sh;

/// The values a busy side sets.
pub const DEFER_HARD_IRQS: &str = "2";
pub const GRO_FLUSH_TIMEOUT_NS: &str = "200000";

/// What an interface held before, restored on drop.
#[derive(Debug)]
pub struct NapiTuning {
    netns: Option<String>,
    iface: String,
    defer: String,
    flush: String,
    /// Offloads changed (ethtool feature, what it was), restored in reverse.
    features: Vec<(&'static str, bool)>,
}

/// Runs a shell snippet in `netns` (with /sys remounted for it, as `ip
/// netns exec` does) or here.
fn shell(netns: Option<&str>, script: &str) -> Result<String> {
    match netns {
        Some(ns) => sh("ip", &["netns", "exec", ns, "sh", "-c", script]),
        None => sh("sh", &["-c", script]),
    }
}

/// Whether `ethtool -k` says the offload (its long name) is on.
fn feature_on(netns: Option<&str>, iface: &str, long: &str) -> Result<bool> {
    let k = shell(netns, &format!("ethtool -k {iface}"))?;
    Ok(k.lines()
        .any(|l| l.trim_start().starts_with(&format!("{long}: on"))))
}

fn check_name(iface: &str) -> Result<()> {
    anyhow::ensure!(
        !iface.is_empty()
            && iface
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
        "interface name `{iface}` is not one this tool will put in a command"
    );
    Ok(())
}

impl NapiTuning {
    /// Sets the interface up for busy polling; returns what restores it.
    pub fn apply(netns: Option<&str>, iface: &str) -> Result<NapiTuning> {
        check_name(iface)?;
        let dir = format!("/sys/class/net/{iface}");
        let now = shell(
            netns,
            &format!("cat {dir}/napi_defer_hard_irqs {dir}/gro_flush_timeout"),
        )
        .with_context(|| format!("reading {iface}'s NAPI settings"))?;
        let mut v = now.split_whitespace();
        let (defer, flush) = (
            v.next().unwrap_or("0").to_string(),
            v.next().unwrap_or("0").to_string(),
        );
        let mut t = NapiTuning {
            netns: netns.map(str::to_string),
            iface: iface.to_string(),
            defer,
            flush,
            features: Vec::new(),
        };
        let veth = shell(netns, &format!("ethtool -i {iface}"))?
            .lines()
            .any(|l| l.trim() == "driver: veth");
        if veth {
            // (short name, long name, wanted)
            for (short, long, want) in [
                ("gro", "generic-receive-offload", true),
                ("tso", "tcp-segmentation-offload", false),
            ] {
                let was = feature_on(netns, iface, long)?;
                if was != want {
                    let v = if want { "on" } else { "off" };
                    shell(netns, &format!("ethtool -K {iface} {short} {v}"))
                        .with_context(|| format!("turning {short} {v} on {iface}"))?;
                    t.features.push((short, was));
                }
            }
        }
        if !veth {
            shell(
                netns,
                &format!(
                    "echo {DEFER_HARD_IRQS} > {dir}/napi_defer_hard_irqs && echo {GRO_FLUSH_TIMEOUT_NS} > {dir}/gro_flush_timeout"
                ),
            )
            .with_context(|| format!("setting {iface}'s NAPI for busy polling"))?;
        }
        Ok(t)
    }
}

impl Drop for NapiTuning {
    fn drop(&mut self) {
        let (ns, iface) = (self.netns.as_deref(), &self.iface);
        let dir = format!("/sys/class/net/{iface}");
        let mut script = format!(
            "echo {} > {dir}/napi_defer_hard_irqs; echo {} > {dir}/gro_flush_timeout",
            self.defer, self.flush
        );
        for (short, was) in self.features.iter().rev() {
            let v = if *was { "on" } else { "off" };
            script.push_str(&format!("; ethtool -K {iface} {short} {v}"));
        }
        if let Err(e) = shell(ns, &script) {
            // a lab's interface may be gone already (its namespace removed)
            tracing::debug!("restoring {iface}'s NAPI settings: {e:#}");
        }
    }
}
