#!/usr/bin/env bash
# Stream server CPU per 64 KiB and frames per 64 KiB on the lab veth, in one
# persistent lab (`bypass lab up`), alternating:
#   kernel-on   kernel server (bypass serve --lab), veth offloads as the lab sets them
#   kernel-off  the same with tso/gso/gro (and tx-scatter-gather-fraglist) off on both veth ends
#   bypass      the stack's server (bypass serve --lab --path bypass)
# The client is always `bypass run stream --path kernel` in hardware mode from
# the client namespace (CPU 0); the server is on CPU 1.
# CPU: the server thread's run time (/proc/PID/task/TID/schedstat, ns), its
# tick-sampled utime/stime (/proc/PID/task/TID/stat), and CPU 1's /proc/stat
# counters (user, system, softirq, ...).
#   offload-compare.sh OUTDIR ROUNDS [SECS]
set -euo pipefail
out=$1 rounds=$2 secs=${3:-3}
B=${B:-/work/target-profile/release/bypass}
mkdir -p "$out"
st=$($B lab status --json)
cns=$(jq -r '.labs[0].client.netns' <<<"$st"); cif=$(jq -r '.labs[0].client.iface' <<<"$st")
sns=$(jq -r '.labs[0].server.netns' <<<"$st"); sif=$(jq -r '.labs[0].server.iface' <<<"$st")
offload() { # on|off
  ip netns exec "$sns" ethtool -K "$sif" tso $1 gso $1 gro $1
  ip netns exec "$cns" ethtool -K "$cif" tso $1 gso $1 gro $1
}
# the lab's defaults, restored after the off runs
default_gro_s=$(ip netns exec "$sns" ethtool -k "$sif" | awk '/^generic-receive-offload:/ {print $2}')
default_gro_c=$(ip netns exec "$cns" ethtool -k "$cif" | awk '/^generic-receive-offload:/ {print $2}')
restore() {
  ip netns exec "$sns" ethtool -K "$sif" tso on gso on gro $default_gro_s
  ip netns exec "$cns" ethtool -K "$cif" tso on gso on gro $default_gro_c
}
snap() { # file
  { grep '^cpu1 ' /proc/stat
    echo "thread $(cut -d' ' -f1 /proc/$sp/task/$tid/schedstat)"
    echo "ticks $(awk '{print $14, $15}' /proc/$sp/task/$tid/stat)"
    echo "srv $(ip -n "$sns" -s -j link show "$sif" | jq -c '.[0].stats64 | [.rx.packets,.rx.bytes,.tx.packets,.tx.bytes]')"
    echo "cli $(ip -n "$cns" -s -j link show "$cif" | jq -c '.[0].stats64 | [.rx.packets,.rx.bytes,.tx.packets,.tx.bytes]')"
  } > "$1"
}
one() { # case round
  local c=$1 i=$2 tag=$1-$2 peer path thr
  case $c in
    kernel-*) peer=198.18.0.1 path=kernel thr=srv- ;;
    bypass) peer=198.18.0.3 path=bypass thr=byp-tcp-srv ;;
  esac
  [ $c = kernel-off ] && offload off
  $B serve --lab --path $path --server-cpus 1 --duration 60 > "$out/$tag-serve.txt" 2> "$out/$tag-serve.err" &
  sp=$!
  for _ in $(seq 100); do grep -q "serving" "$out/$tag-serve.err" && break; sleep 0.1; done
  sleep 0.5
  tid=$(for t in /proc/$sp/task/*; do grep -q "^$thr" $t/comm && basename $t; done | head -1)
  ip netns exec "$cns" ethtool -k "$cif" | grep -E '^(tcp-segmentation-offload|generic-segmentation-offload|generic-receive-offload):' > "$out/$tag-offloads-cli.txt"
  ip netns exec "$sns" ethtool -k "$sif" | grep -E '^(tcp-segmentation-offload|generic-segmentation-offload|generic-receive-offload):' > "$out/$tag-offloads-srv.txt"
  # the warm-up second is left out: snapshots bracket the measured seconds only roughly,
  # so take them around the whole client run and divide by everything the server got
  snap "$out/$tag-before.txt"
  ip netns exec "$cns" $B run stream --path kernel --iface "$cif" --addr 198.18.0.2 --peer $peer \
    --client-cpus 0 --duration $secs --warmup 1 --json --out "$out/runs" --name $tag > "$out/$tag-client.json" || true
  snap "$out/$tag-after.txt"
  kill -INT $sp; wait $sp || true
  [ $c = kernel-off ] && restore
  cat /proc/loadavg > "$out/$tag-loadavg.txt"
}
for i in $(seq "$rounds"); do
  for c in kernel-on kernel-off bypass; do one $c $i; done
done
echo "done: $out"
