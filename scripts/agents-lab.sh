#!/usr/bin/env bash
# A run across hosts, in the lab: a lab of hosts (a server and CLIENTS client
# namespaces on a data bridge and a management bridge), a `bypass agent` in
# each host namespace, and the controller (`bypass run --server --client`) in
# the switch namespace, speaking the agents' protocol over the management
# network. Everything it starts it stops (by process id), and the lab goes
# with it. Results land in results/<UTC time>-agents/.
#
#   scripts/agents-lab.sh [CLIENTS] [bypass run arguments]   (default: 2 crr rr)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
cargo build --release --quiet
B=$PWD/target/release/bypass
clients=2
if [[ ${1:-} =~ ^[0-9]+$ ]]; then clients=$1; shift; fi
[ $# -gt 0 ] || set -- crr rr

work=$(mktemp -d /tmp/byp-agents.XXXXXX)
export BYPASS_LAB_STATE=$work/labs
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    "$B" lab down >/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$B" lab up --clients "$clients" --json > "$work/lab.json"
head -c 32 /dev/urandom | base64 > "$work/secret"
n=$(jq '.hosts | length' "$work/lab.json")
args=()
for ((i = 0; i < n; i++)); do
    h() { jq -r ".hosts[$i].$1" "$work/lab.json"; }
    ip netns exec "$(h netns)" "$B" agent --listen "$(h mgmt_addr):7000" \
        --allow-iface "$(h iface)" --stack-addr "$(h stack_addr)" \
        --secret-file "$work/secret" 2> "$work/agent-$i.log" &
    pids+=($!)
    if [ "$i" = 0 ]; then args+=(--server "$(h mgmt_addr):7000"); else args+=(--client "$(h mgmt_addr):7000"); fi
done
for ((i = 0; i < n; i++)); do
    for _ in $(seq 100); do grep -q "listening on" "$work/agent-$i.log" && break; sleep 0.1; done
done
rc=0
ip netns exec "$(jq -r .switch_netns "$work/lab.json")" "$B" run --name agents \
    --secret-file "$work/secret" "${args[@]}" "$@" || rc=$?
if [ "$rc" != 0 ]; then
    for ((i = 0; i < n; i++)); do echo "--- agent $i:" >&2; cat "$work/agent-$i.log" >&2; done
fi
exit "$rc"
