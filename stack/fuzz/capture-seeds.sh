#!/usr/bin/env bash
# Capture real frames from the kernel as fuzz seeds, in a throwaway lab.
#
# Two network namespaces joined by a veth pair, addresses from the
# benchmarking range 198.18.0.0/15 only (RFC 2544). Traffic: ping (ICMP echo,
# with the ARP that resolves it), a TCP connection that sends, receives and
# closes (SYN, SYN-ACK, data, FIN), a connection to a closed port (RST), a
# UDP datagram. tcpdump records in the server's namespace; extract-seeds.py
# writes each kind of frame to seeds/. Everything created is removed by its
# exact name on exit. Needs root, ip, tcpdump, ethtool and python3.
#
#   sudo stack/fuzz/capture-seeds.sh
set -euo pipefail
cd "$(dirname "$0")"

suffix=$$
ns_a="bypfz${suffix}a"
ns_b="bypfz${suffix}b"
veth_a="bypfz${suffix}a"
veth_b="bypfz${suffix}b"
addr_a=198.18.9.1
addr_b=198.18.9.2
work=$(mktemp -d)
pids=()

cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    ip netns del "$ns_a" 2>/dev/null || true
    ip netns del "$ns_b" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$ns_a"
ip netns add "$ns_b"
ip link add "$veth_a" netns "$ns_a" type veth peer name "$veth_b" netns "$ns_b"
ip -n "$ns_a" addr add "$addr_a/24" dev "$veth_a"
ip -n "$ns_b" addr add "$addr_b/24" dev "$veth_b"
for ns in "$ns_a" "$ns_b"; do ip -n "$ns" link set lo up; done
ip -n "$ns_a" link set "$veth_a" up
ip -n "$ns_b" link set "$veth_b" up
# Checksums computed in software, so that the captured frames carry real
# ones (with offload on, a veth hands tcpdump partial checksums).
ip netns exec "$ns_a" ethtool -K "$veth_a" tx off >/dev/null
ip netns exec "$ns_b" ethtool -K "$veth_b" tx off >/dev/null

ip netns exec "$ns_b" timeout 30 tcpdump -i "$veth_b" -U -s 0 -w "$work/lab.pcap" 2>/dev/null &
pids+=($!)
sleep 1

# Servers in B: a TCP server that answers once and closes, a UDP sink.
ip netns exec "$ns_b" timeout 15 python3 - "$addr_b" <<'PY' &
import socket, sys
addr = sys.argv[1]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((addr, 9999))
t = socket.socket()
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind((addr, 8080))
t.listen(1)
c, _ = t.accept()
c.recv(100)
c.sendall(b"pong\n")
c.close()
u.settimeout(5)
u.recv(100)
PY
pids+=($!)
sleep 1

# Client traffic from A, every step bounded by a timeout.
ip netns exec "$ns_a" timeout 15 python3 - "$addr_b" <<'PY'
import os, socket, struct, sys, time
peer = sys.argv[1]

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

# ICMP echo (the kernel resolves the peer by ARP first).
icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
icmp.settimeout(3)
body = b"bypass-seed-ping"
hdr = struct.pack("!BBHHH", 8, 0, 0, os.getpid() & 0xFFFF, 1)
icmp.sendto(struct.pack("!BBHHH", 8, 0, csum(hdr + body), os.getpid() & 0xFFFF, 1) + body, (peer, 0))
icmp.recv(200)

# TCP: connect, send, receive, close (SYN, SYN-ACK, ACK, data, FIN).
s = socket.create_connection((peer, 8080), timeout=3)
s.sendall(b"ping\n")
s.recv(100)
s.close()

# TCP to a closed port: the kernel answers with RST.
try:
    socket.create_connection((peer, 8081), timeout=3)
except OSError:
    pass

# UDP.
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"bypass-seed-udp", (peer, 9999))
time.sleep(1)
PY

sleep 1
kill "${pids[0]}" 2>/dev/null || true
wait "${pids[0]}" 2>/dev/null || true
python3 extract-seeds.py "$work/lab.pcap" seeds
