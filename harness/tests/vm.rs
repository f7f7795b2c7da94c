//! The VM lab (`scripts/vm-lab.sh`): one QEMU guest with two multi-queue
//! virtio-net NICs joined back to back, the harness inside it. It needs root
//! and /dev/net/tun (and installs QEMU and fetches a guest kernel); the
//! script exits 77 where the host cannot, and the test then says so and
//! skips. A correctness run: under TCG it is ~70x slower than the veth lab.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod common;

fn result_docs(dir: &Path) -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "result.json") {
                let v = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                out.push((p, v));
            }
        }
    }
    out
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Boot, native XDP on virtio_net, rr/crr/udp-rr on every path across the
/// two NICs, then two client shards against the kernel server with ports
/// chosen by the NIC's RSS; nothing left on the host.
#[test]
#[ignore = "crr to the bypass server over virtio_net gets no connections yet (no_ops; see the README's VM lab): run with --ignored"]
fn the_vm_lab_runs_every_path_over_virtio_net_and_rss_keeps_each_shard_on_its_queue() {
    if !common::root("the VM lab") {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = Command::new("bash")
        .arg(repo.join("scripts/vm-lab.sh"))
        .args(["--out", out.path().to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    if o.status.code() == Some(77) {
        eprintln!("{}", err.trim());
        return;
    }
    assert_eq!(o.status.code(), Some(0), "{err}");
    let docs = result_docs(out.path());
    assert_eq!(docs.len(), 2, "{docs:?}");
    let (main, rss): (Vec<_>, Vec<_>) = docs.into_iter().partition(|(_, d)| d["name"] == "vm");
    let main = &main[0].1;
    for h in main["env"]["hosts"].as_array().unwrap() {
        assert_eq!(h["ifaces"][0]["driver"], "virtio_net", "{h}");
        assert_eq!(h["xdp_mode"], "native", "{h}");
        assert_eq!(h["ifaces"][0]["queues"], 2, "{h}");
        let pf = &h["preflight"]["checks"];
        let x = pf
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "xdp_features")
            .unwrap();
        assert!(x["finding"].as_str().unwrap().contains("redirect"), "{x}");
    }
    let runs = main["runs"].as_array().unwrap();
    let paths: std::collections::BTreeSet<&str> =
        runs.iter().map(|r| r["path"].as_str().unwrap()).collect();
    for p in [
        "kernel",
        "kernel-busy",
        "kernel-uring",
        "bypass",
        "bypass-client",
        "bypass-both",
    ] {
        assert!(paths.contains(p), "{p}: {paths:?}");
    }
    for r in runs {
        let flags: Vec<&str> = r["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        for bad in ["errors", "payload_mismatch", "no_ops", "interrupted"] {
            assert!(
                !flags.contains(&bad),
                "{} {}: {bad}: {r}",
                r["workload"],
                r["path"]
            );
        }
    }

    // RSS: both client shards connected, and no reply reached the wrong
    // shard (which would have reset a connection it does not know)
    let rss = &rss[0].1;
    let r = &rss["runs"][0];
    let c = &r["counters"];
    assert_eq!(r["path"], "bypass-client", "{r}");
    assert!(
        u(&c["client.0.ops"]) > 0 && u(&c["client.1.ops"]) > 0,
        "{c}"
    );
    assert_eq!(u(&c["client.stack.tcp.resets_sent"]), 0, "{c}");
    assert_eq!(u(&c["client.connect_errors"]), 0, "{c}");
    assert_eq!(u(&c["client.xsk.queues"]), 2, "{c}");

    // nothing of the lab left on the host
    let left: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("byp-vm-"))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}
