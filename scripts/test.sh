#!/usr/bin/env bash
# The tests: install what is missing, check format and lints, run every test
# (unit, property, and the end-to-end lab tests, which need root), and check
# that no lab was left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
before=$(ls /run/netns 2>/dev/null | grep -E '^byp-' || true)
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --no-fail-fast
# every lab a test made must be gone: leftovers of this run would show here
after=$(ls /run/netns 2>/dev/null | grep -E '^byp-' || true)
left=$(comm -13 <(echo "$before") <(echo "$after") | grep . || true)
if [ -n "$left" ]; then
    ./target/debug/bypass lab status || true
    echo "test: lab namespaces left behind: $left" >&2
    exit 1
fi
