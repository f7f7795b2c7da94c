#!/usr/bin/env bash
# Cross-checks the kernel path's figures against independent tools in one lab:
#   - wrk against `bypass serve --proto http`, keep-alive (rr) and
#     `Connection: close` (crr), alternating with `bypass run` driving the
#     same server (hardware mode from inside the lab's client namespace);
#   - iperf3 (against iperf3 -s) and `bypass run stream` (against the same
#     `bypass serve`'s stream sink), alternating;
#   - sockperf ping-pong (UDP and TCP, full round trips) against `bypass serve
#     --proto sockperf` on each path's server (kernel, and the userspace
#     stack), alternating with `bypass run udp-rr` and `rr` (one connection,
#     64 bytes) against `bypass serve --proto echo` on the same path.
# Writes results/<UTC time>-validation/ (raw outputs + validation.md).
# Usage: scripts/validate.sh [SECONDS per run, default 5] [PAIRS, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
secs=${1:-5}
pairs=${2:-3}
command -v sockperf >/dev/null || {
    echo "validate: installing sockperf" >&2
    apt-get install -y -qq --no-install-recommends sockperf >/dev/null
}
cargo build --release --quiet
B=$PWD/target/release/bypass
out=results/$(date -u +%Y%m%dT%H%M%SZ)-validation
mkdir -p "$out"
export BYPASS_LAB_STATE=$(mktemp -d)
serve_pid=""
iperf_pid=""
stop_serve() {
    [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true
    serve_pid=""
}
# start_serve LOG ARGS...: `bypass serve --lab ARGS` in the background, until
# it says it is serving (bounded)
start_serve() {
    local log=$1
    shift
    "$B" serve --lab --server-cpus 1 "$@" > "$log" 2>&1 &
    serve_pid=$!
    for _ in $(seq 100); do
        grep -q '^serving' "$log" && return 0
        kill -0 "$serve_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "validate: bypass serve $* did not start:" >&2
    cat "$log" >&2
    exit 1
}
cleanup() {
    [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true
    [ -n "$iperf_pid" ] && kill "$iperf_pid" 2>/dev/null && wait "$iperf_pid" 2>/dev/null || true
    "$B" lab down >/dev/null || true
    rm -rf "$BYPASS_LAB_STATE"
}
trap cleanup EXIT
"$B" lab up --json > "$out/lab.json"
field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
sns=$(field "$out/lab.json" "d['server']['netns']")
cns=$(field "$out/lab.json" "d['client']['netns']")
cif=$(field "$out/lab.json" "d['client']['iface']")
srv=198.18.0.1
cli=198.18.0.2
port=7100
conns=8

"$B" serve --lab --proto http --port $port --server-cpus 1 > "$out/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 50); do
    ip netns exec "$cns" curl -s -m 1 -o /dev/null "http://$srv:$port/" && break
    sleep 0.1
done

{
echo "# Kernel path validation against independent tools"
echo
echo "Lab: server $srv in $sns (CPU 1), client $cli in $cns (CPU 0), veth. Each pair runs the"
echo "independent tool, then bypass, ${secs} s each, 1 connection for rr and $conns for crr; the ratio is bypass/tool, pair by pair."
echo "Command: \`scripts/validate.sh $secs $pairs\` (git $(git rev-parse --short HEAD))."
echo
echo "| workload | pair | tool | tool ops/s | bypass ops/s | bypass/tool |"
echo "| --- | ---: | --- | ---: | ---: | ---: |"
} > "$out/validation.md"

ratio() { python3 -c "import sys; print(f'{float(sys.argv[2])/float(sys.argv[1]):.3f}')" "$1" "$2"; }
for wl in rr crr; do
    hdr=()
    [ $wl = crr ] && hdr=(-H "Connection: close")
    # rr on one connection: each request's round trip is what both tools
    # measure; with several, both generators run out of CPU 0 first and the
    # figure compares their own costs per request (wrk's is about twice
    # ours), not the server's rate
    c=$conns
    [ $wl = rr ] && c=1
    for i in $(seq "$pairs"); do
        ip netns exec "$cns" taskset -c 0 wrk -t1 -c$c -d${secs}s "${hdr[@]}" "http://$srv:$port/" > "$out/wrk-$wl-$i.txt"
        w=$(awk '/Requests\/sec/ {print $2}' "$out/wrk-$wl-$i.txt")
        ip netns exec "$cns" "$B" run $wl --path kernel --proto http --iface "$cif" --addr $cli --peer $srv --port $port \
            --connections $c --client-cpus 0 --duration $secs --warmup 1 --json --out "$out/runs" \
            --name "$wl-$i" > "$out/bypass-$wl-$i.json" || true
        b=$(field "$out/bypass-$wl-$i.json" "d['runs'][0]['ops_per_s']")
        echo "| $wl (http) | $i | wrk | $w | $b | $(ratio "$w" "$b") |" >> "$out/validation.md"
    done
done

ip netns exec "$sns" taskset -c 1 iperf3 -s -B $srv -p 5201 > "$out/iperf3-server.log" 2>&1 &
iperf_pid=$!
sleep 1
for i in $(seq "$pairs"); do
    ip netns exec "$cns" taskset -c 0 iperf3 -c $srv -p 5201 -t "$secs" -J > "$out/iperf3-$i.json"
    t=$(field "$out/iperf3-$i.json" "d['end']['sum_received']['bits_per_second']")
    ip netns exec "$cns" "$B" run stream --path kernel --iface "$cif" --addr $cli --peer $srv --port $port \
        --client-cpus 0 --duration $secs --warmup 1 --json --out "$out/runs" --name "stream-$i" \
        > "$out/bypass-stream-$i.json" || true
    b=$(field "$out/bypass-stream-$i.json" "d['runs'][0]['bits_per_s']")
    printf '| stream (Gbit/s) | %s | iperf3 | %.2f | %.2f | %s |\n' "$i" \
        "$(python3 -c "print($t/1e9)")" "$(python3 -c "print($b/1e9)")" "$(ratio "$t" "$b")" >> "$out/validation.md"
done
stop_serve
kill "$iperf_pid" 2>/dev/null && wait "$iperf_pid" 2>/dev/null || true
iperf_pid=""

# sockperf against each path's server: its ping-pong's median full round
# trip, and bypass's (1 connection, closed loop, 64-byte messages) against
# the same path's echo server, pair by pair
sp_port=7200
echo >> "$out/validation.md"
{
echo "Latency against each path's server: sockperf ping-pong (\`--full-rtt\`, 64 bytes) against"
echo "\`bypass serve --proto sockperf\`, then \`bypass run\` (kernel client, 1 connection, 64 bytes) against"
echo "\`bypass serve --proto echo\` on the same path; median round trips in µs, ratio bypass/tool."
echo
echo "| workload | pair | tool | tool p50 µs | bypass p50 µs | bypass/tool |"
echo "| --- | ---: | --- | ---: | ---: | ---: |"
} >> "$out/validation.md"
sp_p50() { awk '/percentile 50.000/ {print $NF}' "$1"; }
for path in kernel bypass; do
    addr=$srv
    [ $path = bypass ] && addr=198.18.0.3
    for i in $(seq "$pairs"); do
        start_serve "$out/serve-sockperf-$path-$i.log" --path $path --proto sockperf --port $sp_port
        for t in udp tcp; do
            flag=()
            [ $t = tcp ] && flag=(--tcp)
            ip netns exec "$cns" taskset -c 0 timeout $((secs + 20)) sockperf ping-pong -i $addr -p $sp_port \
                "${flag[@]}" -t "$secs" -m 64 --full-rtt > "$out/sockperf-$t-$path-$i.txt" 2>&1 || true
        done
        stop_serve
        start_serve "$out/serve-echo-$path-$i.log" --path $path --proto echo --port $sp_port
        for wl in udp-rr rr; do
            ip netns exec "$cns" "$B" run $wl --path kernel --iface "$cif" --addr $cli --peer $addr --port $sp_port \
                --connections 1 --size 64 --client-cpus 0 --duration $secs --warmup 1 --json --out "$out/runs" \
                --name "$wl-$path-$i" > "$out/bypass-$wl-$path-$i.json" || true
        done
        stop_serve
        for t in udp tcp; do
            wl=rr
            [ $t = udp ] && wl=udp-rr
            s=$(sp_p50 "$out/sockperf-$t-$path-$i.txt")
            b=$(field "$out/bypass-$wl-$path-$i.json" "d['runs'][0]['latency_us']['p50']")
            echo "| $wl ($path server) | $i | sockperf | $s | $(printf %.1f "$b") | $(ratio "$s" "$b") |" >> "$out/validation.md"
        done
    done
done

python3 - "$out/validation.md" <<'PY' >> "$out/validation.md"
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    cells = [c.strip() for c in line.strip().strip('|').split('|')]
    if len(cells) == 6 and cells[1].isdigit():
        rows.setdefault(cells[0], []).append(float(cells[5]))
print()
print("| workload | median bypass/tool | min | max |")
print("| --- | ---: | ---: | ---: |")
for w, r in rows.items():
    print(f"| {w} | {statistics.median(r):.3f} | {min(r):.3f} | {max(r):.3f} |")
PY
echo >> "$out/validation.md"
echo "Raw outputs beside this file; bypass's own result documents under runs/." >> "$out/validation.md"
cat "$out/validation.md"
echo "validation: $out"
