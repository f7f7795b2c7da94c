#!/usr/bin/env bash
# Inside the VM lab's guest (started by scripts/vm-lab.sh, as root, the
# host's root shared read-only, WORK shared read-write): each virtio-net NIC
# into its own namespace, a management veth to each, `bypass doctor` on
# both, the RSS check, a `bypass agent` per namespace and `bypass run
# --server --client` from the guest's own namespace. Writes WORK/rc last.
#
#   vm-guest.sh WORK [bypass run arguments]
set -uo pipefail
work=$1
shift
B=${BYPASS:?}
exec > "$work/guest.log" 2>&1
set -x
pids=()
finish() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    echo "${1:-1}" > "$work/rc"
    exit 0
}
set -eE
trap 'finish 1' ERR
uname -r
# io_uring registers its files: the guest's default limit (1024) is too low
ulimit -n 65536
modprobe virtio_net
modprobe veth
for _ in $(seq 50); do [ -e /sys/class/net/eth1 ] && break; sleep 0.1; done
nic() { grep -l "$1" /sys/class/net/*/address | head -1 | xargs dirname | xargs basename; }
srv_if=$(nic 52:54:00:18:00:01)
cli_if=$(nic 52:54:00:18:00:02)
i=0
for side in srv cli; do
    i=$((i + 1))
    ns=bypv$side
    ifc=$([ $side = srv ] && echo "$srv_if" || echo "$cli_if")
    ip netns add $ns
    ip link set "$ifc" netns $ns
    ip -n $ns link set lo up
    # two queue pairs, both in use: with spare pairs virtio_net's XDP attach
    # takes them for its transmit queues and the device then spreads
    # received frames over queues that have no AF_XDP socket (counted as
    # xdp.no_socket); with none spare XDP transmits in a shared, locked mode
    ip netns exec $ns ethtool -L "$ifc" combined 2
    ip -n $ns addr add 198.18.0.$i/24 dev "$ifc"
    ip -n $ns link set "$ifc" up
    # QEMU 7.2's RSS drops every frame until the table is sent again
    ip netns exec $ns ethtool -X "$ifc" equal 2
    ip link add bypm$side type veth peer name bypm$side-p
    ip link set bypm$side-p netns $ns
    ip addr add 198.19.$i.1/30 dev bypm$side
    ip link set bypm$side up
    ip -n $ns addr add 198.19.$i.2/30 dev bypm$side-p
    ip -n $ns link set bypm$side-p up
done
for _ in 1 2 3 4 5; do ip netns exec bypvcli ping -c 1 -W 2 198.18.0.1 && break; done
ip netns exec bypvcli ping -c 1 -W 2 198.18.0.1

for side in srv cli; do
    ifc=$([ $side = srv ] && echo "$srv_if" || echo "$cli_if")
    ip netns exec bypv$side "$B" doctor --iface "$ifc" > "$work/doctor-$side.txt"
    ip netns exec bypv$side "$B" doctor --iface "$ifc" --json > "$work/doctor-$side.json"
done
cat "$work/doctor-srv.txt"

# the NIC's RSS, and the ports a client shard of each queue would pick
ip netns exec bypvcli ethtool -x "$cli_if" > "$work/ethtool-x.txt" || true

ip netns exec bypvsrv "$B" agent --listen 198.19.1.2:7000 --allow-iface "$srv_if" \
    --stack-addr 198.18.0.11 --secret-file "$work/secret" 2> "$work/agent-srv.log" &
pids+=($!)
ip netns exec bypvcli "$B" agent --listen 198.19.2.2:7000 --allow-iface "$cli_if" \
    --stack-addr 198.18.0.12 --secret-file "$work/secret" 2> "$work/agent-cli.log" &
pids+=($!)
for f in agent-srv agent-cli; do
    for _ in $(seq 300); do grep -q "listening on" "$work/$f.log" && break; sleep 0.1; done
done
set +e
"$B" run --name vm --out "$work/results" --secret-file "$work/secret" \
    --server 198.19.1.2:7000 --client 198.19.2.2:7000 --xdp-mode native "$@"
rc=$?
if [ "$rc" = 0 ] && [ "${BYPASS_VM_RSS:-1}" = 1 ]; then
    # RSS from the device: two client shards, one per queue, against the
    # kernel server; each picks ports whose replies the NIC hashes to its
    # own queue (the other shard would reset a reply it does not know)
    "$B" run --name vm-rss --out "$work/results" --secret-file "$work/secret" \
        --server 198.19.1.2:7000 --client 198.19.2.2:7000 --xdp-mode native \
        crr --path bypass-client --cores 2 --duration 1 --warmup 5
    rc=$?
fi
cat "$work/agent-srv.log" "$work/agent-cli.log"
finish $rc
