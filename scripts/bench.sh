#!/usr/bin/env bash
# The main job: install what is missing, build, and run the default benchmark
# suite (every workload, both paths) in a lab of namespaces + veth that the run
# builds and removes. Extra arguments go to `bypass run` (e.g. --duration 3).
# Results land in results/<UTC time>-default/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
cargo build --release --quiet
exec ./target/release/bypass run --name default "$@"
