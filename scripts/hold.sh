#!/usr/bin/env bash
# How a stack server shard accepts new connections while it holds many:
# `bypass run crr --path bypass-both` on an empty server and with
# `--hold N` idle connections (from the client stack's 32 aliases, opened
# in the warm-up and held through the window), the two in turn, CYCLES
# times, in one sitting. One server shard (one queue), one client shard.
# Writes results/<UTC time>-hold/ (each run's result + hold.md).
# Usage: scripts/hold.sh [N, default 1000000] [CYCLES, default 3] [SECONDS measured, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
hold=${1:-1000000}
cycles=${2:-3}
secs=${3:-5}
# the warm-up opens the hold: about 20-30 k connections/s here, with margin
warm=$(( hold / 15000 + 5 ))
cargo build --release --quiet
B=$PWD/target/release/bypass
out=results/$(date -u +%Y%m%dT%H%M%SZ)-hold
mkdir -p "$out/runs"
for c in $(seq "$cycles"); do
    echo "hold: cycle $c, empty" >&2
    "$B" run crr --path bypass-both --queues 1 --duration "$secs" --warmup 1 \
        --name "hold-empty-$c" --out "$out/runs" > /dev/null
    echo "hold: cycle $c, $hold held (warm-up ${warm} s)" >&2
    "$B" run crr --path bypass-both --queues 1 --duration "$secs" --warmup "$warm" \
        --hold "$hold" --name "hold-held-$c" --out "$out/runs" > /dev/null
done
python3 - "$out" "$hold" "$cycles" "$secs" "$(git rev-parse --short HEAD)" <<'EOF'
import glob, json, statistics, sys
out, hold, cycles, secs, rev = sys.argv[1:]
runs = {}   # cond -> [(cycle, run)]
for f in sorted(glob.glob(f"{out}/runs/*/result.json")):
    d = json.load(open(f))
    _, cond, cycle = d["name"].split("-")
    for r in d["runs"]:
        runs.setdefault(cond, []).append((int(cycle), r))
def med(cond, f):
    v = [f(r) for _, r in runs[cond]]
    return statistics.median(v), min(v), max(v)
fmt = lambda t, p="{:,.0f}": f"{p.format(t[0])} [{p.format(t[1])}, {p.format(t[2])}]"
with open(f"{out}/hold.md", "w") as o:
    o.write(f"# New connections on a stack server shard holding {int(hold):,} connections\n\n")
    o.write(f"Command: `scripts/hold.sh {hold} {cycles} {secs}` (git {rev}, with this script's own commit): `bypass run crr --path bypass-both --queues 1`, "
            f"{secs} s measured, an empty server and one holding `--hold {hold}` idle connections in turn, {cycles} times. "
            "crr's latency is a whole connection: connect, request, answer, close.\n\n")
    o.write("| server | held at t0 / end | fill s | crr ops/s | p50 µs | p99 µs | p99.9 µs |\n")
    o.write("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
    for cond in ["empty", "held"]:
        c = lambda k: med(cond, lambda r: r["counters"].get(k, 0))
        o.write(f"| {cond} | {c('client.held_at_t0')[0]:,.0f} / {c('client.held')[0]:,.0f} | {c('client.hold_fill_ms')[0] / 1000:.1f} | "
                f"{fmt(med(cond, lambda r: r['ops_per_s']))} | {fmt(med(cond, lambda r: r['latency_us']['p50']))} | "
                f"{fmt(med(cond, lambda r: r['latency_us']['p99']))} | {fmt(med(cond, lambda r: r['latency_us']['p999']))} |\n")
    pairs = {}
    for cond in ["empty", "held"]:
        for cy, r in runs[cond]:
            pairs.setdefault(cy, {})[cond] = r
    ratios = sorted(p["held"]["latency_us"]["p99"] / p["empty"]["latency_us"]["p99"] for p in pairs.values() if len(p) == 2)
    rates = sorted(p["held"]["ops_per_s"] / p["empty"]["ops_per_s"] for p in pairs.values() if len(p) == 2)
    o.write(f"\nMedians of the runs [min, max]. p99 held/empty, paired by cycle: median {statistics.median(ratios):.2f} "
            f"[{ratios[0]:.2f}, {ratios[-1]:.2f}]; crr rate held/empty: {statistics.median(rates):.2f} [{rates[0]:.2f}, {rates[-1]:.2f}].\n")
print(open(f"{out}/hold.md").read())
print(f"hold: {out}")
EOF
