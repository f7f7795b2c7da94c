#!/usr/bin/env bash
# Profiles the bypass TCP server (`bypass serve --lab --path bypass`, CPU 1)
# while a kernel client (`bypass run WORKLOAD --path kernel`, hardware mode
# from the lab's client namespace, CPU 0) drives it.
#   profile-bypass.sh callgrind stream|crr OUTDIR   instruction profile of the server process
#   profile-bypass.sh perf      stream|crr OUTDIR   perf cpu-clock samples of CPU 1 (server thread + its softirq)
#   profile-bypass.sh native    stream|crr OUTDIR   no profiler: server thread CPU from /proc
# Needs a lab from `bypass lab up` (BYPASS_LAB_STATE selects its records).
set -euo pipefail
mode=$1 wl=$2 out=$3
B=${B:-/work/target-profile/release/bypass}
secs=${SECS:-3}
mkdir -p "$out"
st=$($B lab status --json)
cns=$(jq -r '.labs[0].client.netns' <<<"$st"); cif=$(jq -r '.labs[0].client.iface' <<<"$st")
sns=$(jq -r '.labs[0].server.netns' <<<"$st"); sif=$(jq -r '.labs[0].server.iface' <<<"$st")
tag=$mode-$wl
case $mode in
  callgrind)
    # rep movsb is counted by valgrind as one instruction per byte: make glibc's
    # memcpy/memset use vector loops so instruction counts mean instructions
    GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=1073741824:glibc.cpu.x86_rep_stosb_threshold=1073741824 \
    valgrind --tool=callgrind --collect-systime=nsec --callgrind-out-file="$out/$tag.cg" \
      $B serve --lab --path bypass --server-cpus 1 --duration 300 > "$out/$tag-serve.json" 2> "$out/$tag-serve.err" & ;;
  *)
    $B serve --lab --path bypass --server-cpus 1 --duration 120 > "$out/$tag-serve.json" 2> "$out/$tag-serve.err" & ;;
esac
sp=$!
for _ in $(seq 600); do grep -q "serving over" "$out/$tag-serve.err" && break; kill -0 $sp; sleep 0.1; done
grep -q "serving over" "$out/$tag-serve.err"
sleep 1
ip -n "$sns" -s link show "$sif" > "$out/$tag-link-before.txt"
[ "$mode" = callgrind ] && callgrind_control -z $sp > /dev/null
if [ "$mode" = perf ]; then
  perf record -e cpu-clock -F 2000 -g -C 1 -o "$out/$tag.perf.data" -- sleep $((secs + 2)) 2> "$out/$tag-perf.err" &
  pp=$!
fi
if [ "$mode" = native ]; then
  tid=$(ls /proc/$sp/task | while read t; do grep -q byp-tcp-srv /proc/$sp/task/$t/comm && echo $t; done | head -1)
  awk '{print $14, $15}' /proc/$sp/task/$tid/stat > "$out/$tag-cpu-before.txt"
  grep '^cpu1 ' /proc/stat > "$out/$tag-stat-before.txt"
fi
ip netns exec "$cns" $B run $wl --path kernel --iface "$cif" --addr 198.18.0.2 --peer 198.18.0.3 \
  --client-cpus 0 --duration $secs --warmup 1 --json --out "$out/runs" --name $tag > "$out/$tag-client.json" || true
[ "$mode" = callgrind ] && callgrind_control -d window $sp > /dev/null
if [ "$mode" = native ]; then
  awk '{print $14, $15}' /proc/$sp/task/$tid/stat > "$out/$tag-cpu-after.txt"
  grep '^cpu1 ' /proc/stat > "$out/$tag-stat-after.txt"
fi
[ "$mode" = perf ] && wait $pp
ip -n "$sns" -s link show "$sif" > "$out/$tag-link-after.txt"
kill -INT $sp
wait $sp || true
echo "done: $out/$tag*"
