#!/usr/bin/env bash
# Instructions per byte of bulk TCP in memory (the loopback bench's four
# ways, one at a time) under callgrind: counts that do not drift with the
# machine. Writes results/<UTC time>-callgrind/ (each way's callgrind.out,
# its top functions, and callgrind.md).
# Usage: scripts/callgrind-loopback.sh [BYTES, default 67108864] [MTU, default 1500]
set -euo pipefail
cd "$(dirname "$0")/.."
bytes=${1:-67108864}
mtu=${2:-1500}
command -v valgrind > /dev/null || apt-get install -y -q valgrind > /dev/null
cargo bench -p stack --bench loopback --no-run 2> /dev/null
bin=$(ls -t target/release/deps/loopback-* | grep -v '\.d$' | head -1)
out=results/$(date -u +%Y%m%dT%H%M%SZ)-callgrind
mkdir -p "$out"
{
    echo "# Instructions per byte, bulk TCP in memory (callgrind)"
    echo
    echo "Command: \`scripts/callgrind-loopback.sh $bytes $mtu\` (git $(git rev-parse --short HEAD)): the loopback bench's \`only WAY $bytes $mtu\`, setup and handshake included."
    echo
    echo "| way | instructions | bytes | instructions per byte |"
    echo "| --- | ---: | ---: | ---: |"
} > "$out/callgrind.md"
for way in bypass bypass-in-place smoltcp-copy smoltcp; do
    valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out.$way" \
        "$bin" only "$way" "$bytes" "$mtu" > /dev/null 2> "$out/valgrind.$way.log"
    ir=$(callgrind_annotate "$out/callgrind.out.$way" 2> /dev/null | awk '/PROGRAM TOTALS/ && !n {gsub(",", "", $1); print $1; n = 1}')
    callgrind_annotate "$out/callgrind.out.$way" 2> /dev/null | sed -n 1,40p > "$out/top.$way.txt"
    echo "| $way | $ir | $bytes | $(python3 -c "print(f'{$ir / $bytes:.2f}')") |" >> "$out/callgrind.md"
done
cat "$out/callgrind.md"
echo "callgrind: $out"
