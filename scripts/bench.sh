#!/usr/bin/env bash
# The main job: install what is missing, build, and run the default benchmark
# suite in a lab of namespaces + veth that the run builds and removes: every
# workload over every path (the kernel at its defaults, busy polling and on
# io_uring; the stack as server, as client and on both ends), 5 rounds of
# 2 s (after 0.5 s of warm-up), the order rotating from round to round, the
# bypass servers busy polling as kernel-busy does (each path at its best).
# About 7 minutes on a 2-vCPU VM. Extra arguments go to `bypass run` and
# replace the defaults they name (e.g. --rounds 3, --duration 3, rr crr).
# Results land in results/<UTC time>-default/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
cargo build --release --quiet
defaults=()
has() { local f=$1; shift; for a in "$@"; do [[ $a == "$f" || $a == "$f="* ]] && return 0; done; return 1; }
has --path "$@" || defaults+=(--path all)
has --rounds "$@" || defaults+=(--rounds 5)
has --duration "$@" || defaults+=(--duration 2)
has --warmup "$@" || defaults+=(--warmup 0.5)
has --name "$@" || defaults+=(--name default)
has --busy-poll "$@" || defaults+=(--busy-poll)
exec ./target/release/bypass run "${defaults[@]}" "$@"
