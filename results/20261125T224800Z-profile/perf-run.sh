#!/usr/bin/env bash
# perf cpu-clock samples (2 kHz, kernel call chains) of both CPUs (server threads on CPU 1; every
# CPU so that the new process's mappings are recorded), over a whole `bypass run WORKLOAD --path both`
# (kernel, bypass, bypass-client, bypass-both, in its own lab). Samples are
# split afterwards by server thread (comm + tid, in the order the paths run).
#   perf-run.sh WORKLOAD OUTDIR [SECS]
set -euo pipefail
wl=$1 out=$2 secs=${3:-3}
B=${B:-/work/target-profile/release/bypass}
mkdir -p "$out"
perf record -e cpu-clock -F 2000 -g -a -o "$out/$wl.perf.data" -- \
  $B run $wl --path both --duration $secs --warmup 1 --server-cpus 1 --client-cpus 0 \
     --json --out "$out/runs" --name perf-$wl > "$out/$wl-result.json" 2> "$out/$wl-perf.err" || true
# samples per thread (comm, tid), most first
perf script -i "$out/$wl.perf.data" -F comm,tid 2>/dev/null | awk '{print $1, $2}' | sort | uniq -c | sort -rn | head -12 > "$out/$wl-threads.txt"
cat "$out/$wl-threads.txt"
