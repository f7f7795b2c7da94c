#!/usr/bin/env python3
"""Table of offload-compare.sh results: per 64 KiB received by the server,
the server thread's CPU, CPU 1's softirq, how much of it the harness's sum counts twice, and veth frames."""
import glob, json, os, re, sys
out = sys.argv[1]
HZ = 100  # USER_HZ of /proc/stat


def snap(p):
    d = {}
    for line in open(p):
        f = line.split()
        if f[0] == "cpu1":
            v = list(map(int, f[1:]))
            d["user"], d["nice"], d["system"], d["idle"], d["iowait"], d["irq"], d["softirq"], d["steal"] = v[:8]
        elif f[0] == "thread":
            d["thread_ns"] = int(f[1])
        elif f[0] == "ticks":
            d["utime"], d["stime"] = int(f[1]), int(f[2])
        else:
            d[f[0]] = json.loads(f[1])
    return d


def served_bytes(tag):
    t = open(f"{out}/{tag}-serve.txt").read()
    m = re.search(r"(\d+) bytes in", t)
    if m:
        return int(m.group(1))
    return json.loads(t)["bytes_in"]


rows = []
for b in sorted(glob.glob(f"{out}/*-before.txt")):
    tag = os.path.basename(b)[: -len("-before.txt")]
    case, rnd = tag.rsplit("-", 1)
    s0, s1 = snap(b), snap(f"{out}/{tag}-after.txt")
    d = lambda k: s1[k] - s0[k]
    nbytes = served_bytes(tag)
    ops = nbytes / 65536
    cl = json.load(open(f"{out}/{tag}-client.json"))["runs"][0]
    thr = d("thread_ns") / 1e3 / ops
    sirq = d("softirq") * 1e6 / HZ / ops
    harness = thr + sirq
    # everything CPU 1 ran (every process, softirq included), from its /proc/stat ticks
    busy = (d("user") + d("nice") + d("system") + d("irq") + d("softirq")) * 1e6 / HZ / ops
    # thread + softirq cannot exceed what CPU 1 ran unless softirq served in the
    # thread's context is in both (tick accounting, no IRQ_TIME_ACCOUNTING)
    dbl = max(0.0, harness - busy)
    cli_tx = s1["cli"][2] - s0["cli"][2]
    srv_rx = s1["srv"][0] - s0["srv"][0]
    srv_tx = s1["srv"][2] - s0["srv"][2]
    off = open(f"{out}/{tag}-offloads-cli.txt").read().split()
    rows.append((case, int(rnd), cl["bits_per_s"] / 1e9, thr, sirq, harness, busy, dbl, cli_tx / ops, srv_rx / ops, srv_tx / ops,
                 open(f"{out}/{tag}-loadavg.txt").read().split()[0], " ".join(x for x in off if x in ("on", "off"))))
print("| case | round | Gbit/s | server thread µs/64KiB | CPU 1 softirq µs/64KiB | thread + softirq (harness's sum) | CPU 1 busy, all processes | sum - busy (counted twice, at least) | client veth tx frames/64KiB | server veth rx frames/64KiB | server veth tx frames/64KiB | load avg | client tso/gso/gro |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for r in sorted(rows, key=lambda r: (r[1], r[0])):
    print(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.1f} | {r[4]:.1f} | {r[5]:.1f} | {r[6]:.1f} | {r[7]:.1f} | {r[8]:.1f} | {r[9]:.1f} | {r[10]:.1f} | {r[11]} | {r[12]} |")
