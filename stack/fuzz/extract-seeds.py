#!/usr/bin/env python3
"""Split a pcap of lab traffic into one raw frame per kind, as fuzz seeds.

Usage: extract-seeds.py LAB.pcap SEEDS_DIR

Writes SEEDS_DIR/parse_frame/<kind>.bin and SEEDS_DIR/views/<kind>.bin (the
whole Ethernet frame), and SEEDS_DIR/tcp_options/<kind>.bin (the option
bytes of each TCP segment that has some). Kinds: arp-request, arp-reply,
icmp-echo-request, icmp-echo-reply, tcp-syn, tcp-syn-ack, tcp-ack-data,
tcp-fin, tcp-rst, udp. The first frame of each kind is kept.
"""
import os
import struct
import sys


def frames(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    link = struct.unpack(endian + "I", data[20:24])[0]
    if link != 1:
        raise SystemExit(f"link type {link} is not Ethernet")
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        off += 16
        yield data[off:off + incl]
        off += incl


def kind(frame):
    ethertype = struct.unpack("!H", frame[12:14])[0]
    if ethertype == 0x0806:
        op = struct.unpack("!H", frame[20:22])[0]
        return {1: "arp-request", 2: "arp-reply"}.get(op), None
    if ethertype != 0x0800:
        return None, None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    proto = ip[9]
    l4 = ip[ihl:]
    if proto == 1:
        return {8: "icmp-echo-request", 0: "icmp-echo-reply"}.get(l4[0]), None
    if proto == 17:
        return "udp", None
    if proto == 6:
        flags = l4[13]
        options = l4[20:(l4[12] >> 4) * 4]
        payload = len(ip) - ihl - (l4[12] >> 4) * 4
        syn, ack, fin, rst = flags & 2, flags & 0x10, flags & 1, flags & 4
        if syn and not ack:
            return "tcp-syn", options
        if syn and ack:
            return "tcp-syn-ack", options
        if rst:
            return "tcp-rst", options
        if fin:
            return "tcp-fin", options
        if payload > 0:
            return "tcp-ack-data", options
    return None, None


def main():
    pcap, out = sys.argv[1], sys.argv[2]
    for sub in ("parse_frame", "views", "tcp_options"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    seen = set()
    for frame in frames(pcap):
        name, options = kind(frame)
        if name is None or name in seen:
            continue
        seen.add(name)
        for sub in ("parse_frame", "views"):
            with open(os.path.join(out, sub, name + ".bin"), "wb") as f:
                f.write(frame)
        if options:
            with open(os.path.join(out, "tcp_options", name + ".bin"), "wb") as f:
                f.write(options)
    print("seeds:", ", ".join(sorted(seen)))
    want = {"arp-request", "arp-reply", "icmp-echo-request", "icmp-echo-reply", "tcp-syn",
            "tcp-syn-ack", "tcp-ack-data", "tcp-fin", "tcp-rst", "udp"}
    missing = want - seen
    if missing:
        raise SystemExit("missing: " + ", ".join(sorted(missing)))


if __name__ == "__main__":
    main()
