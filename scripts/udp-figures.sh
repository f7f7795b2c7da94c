#!/usr/bin/env bash
# The UDP figures of the bypass path against the kernel path, from one
# sitting in the lab:
#   - udp-stream at rising offered rates, every path in each step (kernel,
#     bypass = the server on the stack, bypass-client = the client on it):
#     the highest rate each path received without loss;
#   - udp-stream at a fixed offered load: server CPU ns per datagram;
#   - udp-rr, closed loop: latency p50/p99.
# Writes results/<UTC time>-udp/ (every run's result directory + summary.md).
# Usage: scripts/udp-figures.sh [SECONDS per run, default 3] [FIXED RATE, default 100000]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
secs=${1:-3}
fixed=${2:-100000}
cargo build --release --quiet
B=$PWD/target/release/bypass
out=results/$(date -u +%Y%m%dT%H%M%SZ)-udp
mkdir -p "$out"
rates="50000 100000 150000 200000 300000 400000 500000 600000 800000"
for r in $rates; do
    "$B" run udp-stream --path both --rate "$r" --duration "$secs" --warmup 1 --json \
        --out "$out/runs" --name "stream-$r" > "$out/udp-stream-$r.json" || true
done
"$B" run udp-stream --path both --rate "$fixed" --duration $((secs * 2)) --warmup 1 --json \
    --out "$out/runs" --name "fixed-$fixed" > "$out/udp-stream-fixed.json" || true
"$B" run udp-rr --path both --duration $((secs * 2)) --warmup 1 --json \
    --out "$out/runs" --name "udp-rr" > "$out/udp-rr.json" || true
python3 - "$out" "$rates" "$fixed" "$secs" "$(git rev-parse --short HEAD)" <<'PY' > "$out/summary.md"
import json, sys
out, rates, fixed, secs, rev = sys.argv[1], [int(r) for r in sys.argv[2].split()], sys.argv[3], sys.argv[4], sys.argv[5]
paths = ["kernel", "bypass", "bypass-client"]
def runs(f):
    try:
        return {r["path"]: r for r in json.load(open(f))["runs"]}
    except Exception:
        return {}
print("# UDP: bypass path against kernel path\n")
print(f"`scripts/udp-figures.sh {secs} {fixed}` (git {rev}). `bypass`: the server on the userspace stack over AF_XDP, the client on the kernel; `bypass-client`: the other way round. One sitting, paths alternating within each step.\n")
print("## udp-stream: loss at rising offered rates\n")
print("| offered/s | " + " | ".join(f"{p} received/s | {p} loss % | {p} flags" for p in paths) + " |")
print("| ---: |" + " ---: | ---: | --- |" * len(paths))
best = {p: None for p in paths}
for r in rates:
    rs = runs(f"{out}/udp-stream-{r}.json")
    cells = []
    for p in paths:
        x = rs.get(p)
        if not x:
            cells += ["-", "-", "-"]
            continue
        loss = x.get("loss_pct") or 0.0
        flags = ", ".join(x["flags"]) or "-"
        cells += [f"{x['ops_per_s']:.0f}", f"{loss:.3f}", flags]
        reached = "generator_saturated" not in x["flags"]
        if loss < 0.01 and reached:
            best[p] = max(best[p] or 0, r)
    print(f"| {r} | " + " | ".join(cells) + " |")
print("\nHighest offered rate received without loss (< 0.01 %) with the generator keeping up:\n")
print("| path | loss-free rate/s | ratio to kernel |")
print("| --- | ---: | ---: |")
for p in paths:
    b = best[p]
    ratio = f"{b / best['kernel']:.2f}" if b and best["kernel"] else "-"
    print(f"| {p} | {b if b else '-'} | {ratio} |")
print(f"\nA step whose generator fell short of the offered rate (`generator_saturated`) does not count: the loss-free rate is then bounded by the generator, not by the receiver.\n")
rs = runs(f"{out}/udp-stream-fixed.json")
print(f"## udp-stream at {fixed} datagrams/s: CPU per datagram\n")
print("| path | received/s | server ns/datagram | server work ns/datagram | client ns/datagram | loss % |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
k = rs.get("kernel", {})
for p in paths:
    x = rs.get(p)
    if not x:
        continue
    c = x["cpu"]
    f = lambda v: f"{v * 1000:.0f}" if v is not None else "-"
    print(f"| {p} | {x['ops_per_s']:.0f} | {f(c.get('server_us_per_op'))} | {f(c.get('server_work_us_per_op'))} | {f(c.get('client_us_per_op'))} | {(x.get('loss_pct') or 0):.3f} |")
if k and rs.get("bypass"):
    kb = k["cpu"]["server_us_per_op"]; bb = rs["bypass"]["cpu"]["server_us_per_op"]
    print(f"\nServer CPU per datagram, bypass / kernel: **{bb / kb:.2f}**")
if k and rs.get("bypass-client"):
    kc = k["cpu"]["client_us_per_op"]; bc = rs["bypass-client"]["cpu"]["client_us_per_op"]
    print(f"\nClient CPU per datagram, bypass-client / kernel: **{bc / kc:.2f}**")
rs = runs(f"{out}/udp-rr.json")
print("\n## udp-rr (closed loop, 1 socket, 64 B): latency\n")
print("| path | transactions/s | p50 µs | p99 µs | p99.9 µs | server µs/op | client µs/op |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for p in paths:
    x = rs.get(p)
    if not x:
        continue
    l = x["latency_us"] or {}
    c = x["cpu"]
    print(f"| {p} | {x['ops_per_s']:.0f} | {l.get('p50', 0):.1f} | {l.get('p99', 0):.1f} | {l.get('p999', 0):.1f} | {c.get('server_us_per_op') or 0:.2f} | {c.get('client_us_per_op') or 0:.2f} |")
if rs.get("kernel") and rs.get("bypass"):
    a, b = rs["kernel"]["latency_us"], rs["bypass"]["latency_us"]
    print(f"\np50 bypass / kernel: **{b['p50'] / a['p50']:.2f}**, p99: **{b['p99'] / a['p99']:.2f}**")
PY
cat "$out/summary.md"
echo "udp figures: $out"
