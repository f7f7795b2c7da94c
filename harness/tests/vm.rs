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
/// two NICs, then two client shards (one per queue) against the kernel
/// server with ports chosen by the NIC's RSS: both connect, and no reply
/// reaches the other shard (which would reset it); nothing left on the host.
#[test]
fn the_vm_lab_runs_every_path_over_virtio_net_and_rss_keeps_each_shard_on_its_queue() {
    if !common::root("the VM lab") {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = Command::new("bash")
        .arg(repo.join("scripts/vm-lab.sh"))
        .args(["--out", out.path().to_str().unwrap()])
        .env("BYPASS_BIN", env!("CARGO_BIN_EXE_bypass"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    if o.status.code() == Some(77) {
        eprintln!("{}", err.trim());
        return;
    }
    let docs = result_docs(out.path());
    if o.status.code() != Some(0) {
        // what each run of the result (if any) was flagged with
        for (p, d) in &docs {
            for r in d["runs"].as_array().into_iter().flatten() {
                eprintln!(
                    "{}: {} {} {}",
                    p.display(),
                    r["workload"],
                    r["path"],
                    r["flags"]
                );
                let flags = r["flags"].as_array().into_iter().flatten();
                if flags
                    .filter_map(Value::as_str)
                    .any(|f| !["preflight", "foreign_load"].contains(&f))
                {
                    // a flagged run's counters (both sides' sockets, stack
                    // and generator) are what tells a lost frame from a
                    // stalled queue: nothing of the guest outlives the run
                    eprintln!("  counters: {}", r["counters"]);
                }
            }
        }
        panic!("scripts/vm-lab.sh: {:?}\n{err}", o.status.code());
    }
    assert_eq!(docs.len(), 2, "{docs:?}");
    let (main, rss): (Vec<_>, Vec<_>) = docs.into_iter().partition(|(_, d)| d["name"] == "vm");
    let main = &main[0].1;
    for h in main["env"]["hosts"].as_array().unwrap() {
        assert_eq!(h["ifaces"][0]["driver"], "virtio_net", "{h}");
        // virtio_net has zero-copy AF_XDP from Linux 6.13: asked for on
        // such a guest, and a bind that fell back would have failed the run
        let k = h["kernel"].as_str().unwrap();
        let mut v = k
            .split(|c: char| !c.is_ascii_digit())
            .map(|x| x.parse::<u32>().unwrap_or(0));
        let (maj, min) = (v.next().unwrap_or(0), v.next().unwrap_or(0));
        let zc = (maj, min) >= (6, 13);
        assert_eq!(h["zero_copy"], zc, "{k}: {h}");
        assert_eq!(h["xdp_mode"], "native", "{h}");
        assert_eq!(h["ifaces"][0]["queues"], 2, "{h}");
        let pf = h["preflight"]["checks"].as_array().unwrap();
        let check = |kind: &str| pf.iter().find(|c| c["check"] == kind).unwrap();
        let x = check("xdp_features");
        let f = x["finding"].as_str().unwrap();
        assert!(f.contains("redirect"), "{x}");
        // the netdev family's word, which the bind then bore out
        assert_eq!(f.contains("xsk-zerocopy"), zc, "{x}");
        let irq = check("irq_affinity");
        // a real device's queues have interrupts (veth's have none)
        assert!(irq["finding"].as_str().unwrap().contains("input."), "{irq}");
    }
    let runs = main["runs"].as_array().unwrap();
    for r in runs.iter().filter(|r| r["path"] == "bypass") {
        // the sockets' statistics: nothing invalid, nothing dropped, every
        // frame for the stack found its queue's socket
        let c = &r["counters"];
        for k in [
            "server.xsk.rx_invalid_descs",
            "server.xsk.tx_invalid_descs",
            "server.xsk.rx_dropped",
            "server.xdp.no_socket",
        ] {
            assert_eq!(u(&c[k]), 0, "{} {k}: {c}", r["workload"]);
        }
        assert!(u(&c["server.xdp.steered"]) > 0, "{c}");
    }
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
    // shard (which would have counted it as for no connection, and reset it)
    let rss = &rss[0].1;
    let r = &rss["runs"][0];
    let c = &r["counters"];
    assert_eq!(r["path"], "bypass-client", "{r}");
    let shards: Vec<&Value> = r["cpu"]["threads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["role"] == "client")
        .collect();
    assert_eq!(shards.len(), 2, "{r}");
    for t in &shards {
        assert!(
            u(&t["ops"]) > 0,
            "a client shard without connections: {shards:?}"
        );
    }
    // (a reset may still answer data after the window's end closed a
    // connection: aborts_on_data)
    assert_eq!(u(&c["client.stack.tcp.no_connection"]), 0, "{c}");
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
