# A hostile client against `bypass serve` (run inside the lab's client
# namespace). Usage: bounded_servers.py http|echo ADDR PORT SERVER_PID
#   http: a body announced at 10^12 bytes followed by 1 MiB gets 413 and a
#         close; a head that never ends gets 431; pipelined requests from a
#         client that never reads stall the client (back-pressure) while the
#         server's memory stays put; a normal request is answered after all.
#   echo: a TCP stream of 1 MiB comes back byte for byte; UDP datagrams of
#         1..1400 bytes come back whole.
#   idle: (against an echo server with --idle-timeout 1) a connection that
#         sends nothing is closed by the server within 3 s, while one that
#         sends every 0.3 s is still answered after that.
# Prints one line of results as JSON; exits non-zero on a failure.
import json
import os
import select
import socket
import sys
import time

mode, addr, port, pid = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
out = {}


def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS")


def connect():
    s = socket.create_connection((addr, port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_until_close(s, limit=1 << 20):
    got = b""
    s.settimeout(5)
    try:
        while len(got) < limit:
            d = s.recv(65536)
            if not d:
                return got, True
            got += d
    except ConnectionResetError:
        return got, True  # closed with unread data: a reset
    except socket.timeout:
        return got, False
    return got, False


def status(resp):
    return resp[:12].decode(errors="replace")


def refused(name, first, filler, count):
    """Sends a request's start and `count` fillers (the server may close
    meanwhile), then records the answer's status and whether it closed."""
    s = connect()
    s.sendall(first)
    try:
        for _ in range(count):
            s.sendall(filler)
    except (BrokenPipeError, ConnectionResetError):
        pass
    resp, closed = read_until_close(s)
    out[name] = status(resp)
    out[name + "_closed"] = closed
    s.close()


def http():
    # a huge declared body, and data after it: refused at once, closed
    refused("body", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n",
            b"b" * 65536, 16)
    # a head that never ends
    refused("head", b"GET / HTTP/1.1\r\nHost: x\r\n", b"X-Filler: " + b"a" * 1000 + b"\r\n", 64)

    # pipelining from a client that never reads
    before = rss_kib()
    s = connect()
    s.setblocking(False)
    req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 256
    sent, stalled = 0, False
    deadline = time.time() + 20
    while sent < 200 << 20 and time.time() < deadline:
        try:
            sent += s.send(req)
        except BlockingIOError:
            _, w, _ = select.select([], [s], [], 2.0)
            if not w:
                stalled = True
                break
    out["pipelined_sent"] = sent
    out["pipelined_stalled"] = stalled
    out["rss_growth_kib"] = rss_kib() - before
    s.close()

    # and a normal request is still answered
    s = connect()
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    resp, _ = read_until_close(s)
    out["after"] = status(resp)
    s.close()
    ok = (
        out["body"] == "HTTP/1.1 413"
        and out["body_closed"]
        and out["head"] == "HTTP/1.1 431"
        and out["head_closed"]
        and stalled
        and out["rss_growth_kib"] < 32 * 1024
        and out["after"] == "HTTP/1.1 200"
    )
    return ok


def echo():
    s = connect()
    data = os.urandom(1 << 20)
    got = bytearray()
    s.setblocking(False)
    sent = 0
    deadline = time.time() + 20
    while len(got) < len(data) and time.time() < deadline:
        r, w, _ = select.select([s], [s] if sent < len(data) else [], [], 1.0)
        if w:
            sent += s.send(data[sent : sent + 65536])
        if r:
            d = s.recv(65536)
            if not d:
                break
            got += d
    out["tcp_echoed"] = len(got)
    out["tcp_same"] = bytes(got) == data
    s.close()

    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(0.5)
    whole = 0
    for i in range(100):
        m = os.urandom(1 + (i * 37) % 1400)
        for _ in range(3):
            u.sendto(m, (addr, port))
            try:
                d, _ = u.recvfrom(65536)
            except socket.timeout:
                continue
            whole += d == m
            break
    out["udp_whole"] = whole
    return out["tcp_same"] and whole >= 99


def idle():
    quiet = connect()
    busy = connect()
    start = time.time()
    closed_at = None
    quiet.setblocking(False)
    while time.time() - start < 3:
        busy.sendall(b"ping")
        busy.settimeout(2)
        got = b""
        while len(got) < 4:
            d = busy.recv(4 - len(got))
            if not d:
                break
            got += d
        if got != b"ping":
            out["busy_lost"] = time.time() - start
            return False
        if closed_at is None:
            try:
                if quiet.recv(1) == b"":
                    closed_at = time.time() - start
            except BlockingIOError:
                pass
            except ConnectionResetError:
                closed_at = time.time() - start
        time.sleep(0.3)
    out["quiet_closed_after_s"] = closed_at
    out["busy_alive"] = True
    return closed_at is not None and closed_at >= 0.9


ok = {"http": http, "echo": echo, "idle": idle}[mode]()
print(json.dumps(out))
sys.exit(0 if ok else 1)
