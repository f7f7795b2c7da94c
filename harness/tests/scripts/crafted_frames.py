# Crafted frames from a raw socket in the client namespace, around a
# legitimate connection that must go on. argv: iface, stack ip, port, client ip
import socket, struct, sys, time, fcntl

iface, stack_ip, port, client_ip = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
EVIL = bytes.fromhex("020000000066")

def mac_of(ifname):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    info = fcntl.ioctl(s.fileno(), 0x8927, struct.pack("256s", ifname.encode()[:15]))
    return info[18:24]

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF

def ip4(a):
    return socket.inet_aton(a)

def syn(src_mac, dst_mac, src_ip, dst_ip, sport, options=b"", bad_ip_csum=False):
    tcp = struct.pack("!HHIIBBHHH", sport, port, 1000, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = ip4(src_ip) + ip4(dst_ip) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    ihl = 5 + len(options) // 4
    hdr = struct.pack("!BBHHHBBH4s4s", (4 << 4) | ihl, 0, ihl * 4 + len(tcp), 1, 0x4000, 64, 6, 0,
                      ip4(src_ip), ip4(dst_ip)) + options
    c = csum(hdr)
    if bad_ip_csum:
        c ^= 0x5555
    hdr = hdr[:10] + struct.pack("!H", c) + hdr[12:]
    return dst_mac + src_mac + b"\x08\x00" + hdr + tcp

def arp_reply(src_mac, dst_mac, sender_ip, target_ip):
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, src_mac, ip4(sender_ip), dst_mac, ip4(target_ip))
    return dst_mac + src_mac + b"\x08\x06" + body

# the legitimate connection: one exchange before, one after
c = socket.create_connection((stack_ip, port), timeout=3)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
def exchange():
    c.sendall(b"q" * 64)
    got = b""
    while len(got) < 64:
        d = c.recv(64 - len(got))
        if not d:
            raise SystemExit("the server closed the legitimate connection")
        got += d
exchange()
stack_mac = None
for line in open("/proc/net/arp").read().splitlines()[1:]:
    f = line.split()
    if f[0] == stack_ip:
        stack_mac = bytes.fromhex(f[3].replace(":", ""))
assert stack_mac, "the client knows the stack's MAC"
me = mac_of(iface)
net = stack_ip.rsplit(".", 1)[0]
r = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
r.bind((iface, 0))
frames = [
    ("forged_syn", syn(EVIL, stack_mac, client_ip, stack_ip, 40999)),
    ("forged_arp_reply", arp_reply(EVIL, stack_mac, client_ip, stack_ip)),
    ("martian_zero_net", syn(me, stack_mac, "0.1.2.3", stack_ip, 41001)),
    ("martian_loopback", syn(me, stack_mac, "127.0.0.1", stack_ip, 41002)),
    ("martian_reserved", syn(me, stack_mac, "240.0.0.1", stack_ip, 41003)),
    ("martian_broadcast", syn(me, stack_mac, net + ".255", stack_ip, 41004)),
    ("martian_own_address", syn(me, stack_mac, stack_ip, stack_ip, 41005)),
    # LSRR (type 131), length 7, pointer 4, one hop, padded with an EOL
    ("source_routed", syn(me, stack_mac, client_ip, stack_ip, 41006,
                          options=bytes([131, 7, 4]) + ip4(client_ip) + b"\x00")),
    ("bad_ip_checksum", syn(me, stack_mac, client_ip, stack_ip, 41007, bad_ip_csum=True)),
]
for name, f in frames:
    r.send(f)
time.sleep(0.3)
exchange()
for _ in range(20):
    exchange()
print("ok")
