#!/usr/bin/env bash
# What a server keeps of its legitimate crr rate under a SYN flood, on the
# kernel path and on the stack, measured the same way: `bypass run crr` with
# no flood, with the control flood (the same frames as IP protocol 253, which
# every server drops on sight: the flood's load alone) and with the attack
# (spoofed SYNs at the server's port), the three conditions in turn, CYCLES
# times; inside each run the paths alternate round by round.
# Writes results/<UTC time>-synflood/ (each run's result + synflood.md).
# Usage: scripts/synflood.sh [RATE SYN/s, default 100000] [CYCLES, default 2] [ROUNDS, default 3] [CRR RATE]
# With CRR RATE the legitimate load is open loop at that many connections/s
# (wrk2-style), so that the client does not take the whole CPU it shares
# with the flood; without it, closed loop on 8 connections.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
rate=${1:-100000}
cycles=${2:-2}
rounds=${3:-3}
legit=${4:-}
load=()
[ -n "$legit" ] && load=(--rate "$legit")
paths=kernel,bypass,bypass-both
cargo build --release --quiet
B=$PWD/target/release/bypass
out=results/$(date -u +%Y%m%dT%H%M%SZ)-synflood
mkdir -p "$out/runs"
for c in $(seq "$cycles"); do
    for cond in none control server; do
        args=()
        [ "$cond" != none ] && args=(--syn-flood "$rate" --syn-flood-at "$cond")
        echo "synflood: cycle $c, $cond" >&2
        "$B" run crr --path "$paths" --rounds "$rounds" --duration 2 --warmup 0.5 \
            "${load[@]}" "${args[@]}" --name "synflood-$cond-$c" --out "$out/runs" > /dev/null
    done
done
python3 - "$out" "$rate" "$cycles" "$rounds" "$(git rev-parse --short HEAD)" "$legit" <<'EOF'
import glob, json, statistics, sys
out, rate, cycles, rounds, rev, legit = sys.argv[1:]
ops = {}    # (path, cond) -> [ops/s of each round]
sent = {}
for f in sorted(glob.glob(f"{out}/runs/*/result.json")):
    d = json.load(open(f))
    cond = d["name"].split("-")[1]
    for r in d["runs"]:
        ops.setdefault((r["path"], cond), []).append(r["ops_per_s"])
        if cond != "none":
            sent.setdefault(cond, []).append(r["counters"].get("flood.syns_per_s", 0))
paths = sorted({p for p, _ in ops}, key=lambda p: ["kernel", "bypass", "bypass-both"].index(p) if p in ["kernel", "bypass", "bypass-both"] else 9)
with open(f"{out}/synflood.md", "w") as o:
    o.write(f"# crr under a SYN flood of {int(rate):,} SYN/s\n\n")
    load = f"open loop at {int(legit):,} connections/s" if legit else "closed loop on 8 connections"
    o.write(f"Command: `scripts/synflood.sh {rate} {cycles} {rounds} {legit}` (git {rev}); every condition {cycles} runs of {rounds} rounds, 2 s each, crr {load}; the flood from the client's CPU. ")
    for cond, v in sent.items():
        o.write(f"Flood sent ({cond}): median {statistics.median(v):,.0f} frames/s. ")
    o.write("\n\n| path | no flood ops/s | control ops/s | attack ops/s | attack/none | attack/control | rounds |\n")
    o.write("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
    for p in paths:
        m = {c: statistics.median(ops.get((p, c), [0])) for c in ["none", "control", "server"]}
        lo = {c: min(ops.get((p, c), [0])) for c in ["none", "control", "server"]}
        hi = {c: max(ops.get((p, c), [0])) for c in ["none", "control", "server"]}
        r = lambda a, b: f"{a / b:.2f}" if b else "-"
        o.write(f"| {p} | {m['none']:,.0f} [{lo['none']:,.0f}, {hi['none']:,.0f}] | {m['control']:,.0f} [{lo['control']:,.0f}, {hi['control']:,.0f}] | "
                f"{m['server']:,.0f} [{lo['server']:,.0f}, {hi['server']:,.0f}] | {r(m['server'], m['none'])} | {r(m['server'], m['control'])} | {len(ops.get((p, 'server'), []))} |\n")
    o.write("\nMedians of the rounds [min, max]. attack/none: what the server keeps of its rate; attack/control: the same with the flood's load taken out.\n")
print(open(f"{out}/synflood.md").read())
print(f"synflood: {out}")
EOF
