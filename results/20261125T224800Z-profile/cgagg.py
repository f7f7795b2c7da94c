#!/usr/bin/env python3
"""Aggregate a callgrind output file by function symbol (ignoring the source
file that inlining attributes each line to), and attribute cost to categories.

usage: cgagg.py FILE [--per N UNIT] [--top K]
Prints: totals; top-K by inclusive and by self Ir; a category breakdown in
which libc mem*/bcmp calls and syscall wrappers are charged to their caller's
category (and shown separately as "copy/compare" and "syscalls")."""
import re
import sys
from collections import defaultdict

args = sys.argv[1:]
path = args[0]
per = None
unit = "op"
top = 15
if "--per" in args:
    i = args.index("--per")
    per = float(args[i + 1])
    unit = args[i + 2]
if "--top" in args:
    top = int(args[args.index("--top") + 1])

names = {}  # id -> name for fn/cfn compression


def name_of(s):
    m = re.match(r"\((\d+)\)(?:\s+(.*))?", s)
    if not m:
        return s.strip()
    if m.group(2) is not None:
        names[m.group(1)] = m.group(2).strip()
    return names[m.group(1)]


events = []
selfc = defaultdict(lambda: None)
calls = defaultdict(lambda: defaultdict(lambda: None))  # caller -> callee -> cost
ncalls = defaultdict(lambda: defaultdict(int))
cur = None
pending_call = None


def add(a, b):
    if a is None:
        return list(b)
    for i, x in enumerate(b):
        a[i] += x
    return a


def costs(tok):
    v = [int(x) for x in tok]
    v += [0] * (len(events) - len(v))
    return v


for line in open(path):
    line = line.rstrip("\n")
    if not line or line.startswith("#"):
        continue
    if line.startswith("events:"):
        events = line.split()[1:]
        continue
    if line.startswith("fn="):
        cur = name_of(line[3:])
        continue
    if line.startswith("cfn="):
        callee = name_of(line[4:])
        continue
    if line.startswith("calls="):
        pending_call = (callee, int(line[6:].split()[0]))
        continue
    if line[0].isdigit() or line[0] in "+-*":
        tok = line.split()
        c = costs(tok[1:])
        if pending_call:
            callee, n = pending_call
            calls[cur][callee] = add(calls[cur][callee], c)
            ncalls[cur][callee] += n
            pending_call = None
        else:
            selfc[cur] = add(selfc[cur], c)
        continue
    # ob=, fl=, fi=, fe=, cob=, cfi=, cfl=, summary:, totals:, etc.
    if line.startswith(("cfi=", "cfl=")):
        name_of(line[4:]) if False else None

E = len(events)
zero = [0] * E
fns = set(selfc) | set(calls)
for c in calls.values():
    fns |= set(c)
S = {f: (selfc[f] or zero) for f in fns}
total = [0] * E
for f in fns:
    total = [a + b for a, b in zip(total, S[f])]
incl = {}
for f in fns:
    v = list(S[f])
    for g, c in calls[f].items():
        if g != f:
            v = [a + b for a, b in zip(v, c)]
    incl[f] = v

ir = events.index("Ir")
sc = events.index("sysCount") if "sysCount" in events else None
st = events.index("sysTime") if "sysTime" in events else None
scpu = events.index("sysCpuTime") if "sysCpuTime" in events else None


def short(n, w=100):
    n = re.sub(r"<[^<>]*>", "<>", n) if len(n) > w else n
    return n if len(n) <= w else n[: w - 1] + "…"


def fmt(v):
    s = f"{v[ir]:>13,}  {100.0 * v[ir] / total[ir]:5.1f}%"
    if per:
        s += f"  {v[ir] / per:>10,.0f}"
    return s


print(f"file: {path}")
print(f"events: {events}")
print(f"total: Ir={total[ir]:,}")
if per:
    print(f"per {unit}: Ir={total[ir] / per:,.0f}")
FRAMES = re.compile(r"^(std::sys::backtrace::__rust_begin_short_backtrace|start_thread|clone|core::ops::function::FnOnce::call_once\{\{vtable.shim\}\}|<std::sys::thread::unix::Thread>::new::thread_start|\(below main\))$")
hdr = f"{'Ir':>13}  {'%':>6}" + (f"  {'Ir/' + unit:>10}" if per else "")
print(f"\n## top {top} by inclusive Ir (thread entry frames left out: they are 100 %)\n\n{hdr}  function")
for f in [f for f in sorted(fns, key=lambda f: -incl[f][ir]) if not FRAMES.match(f)][:top]:
    print(f"{fmt(incl[f])}  {short(f)}")
print(f"\n## top {top} by self Ir\n\n{hdr}  function")
for f in sorted(fns, key=lambda f: -S[f][ir])[:top]:
    print(f"{fmt(S[f])}  {short(f)}")

# categories
LIBC_MEM = re.compile(r"^__(mem(cpy|move|set|cmp)|bcmp|memcmp)|^(memcpy|memmove|memset|memcmp|bcmp)$|__memcmp|__memset|__memmove|__memcpy")
SYSCALL = re.compile(r"^(__GI_)?(__)?(poll|ppoll|sendto|__libc_sendto|__poll|recvfrom|clock_gettime|__clock_gettime|syscall|getsockopt|__getsockopt|__libc_recvfrom|__sendto|__GI___poll|__GI___clock_gettime)$|^(__)?(libc_)?(poll|sendto)")
ALLOC = re.compile(r"malloc|free|realloc|calloc|__rust_alloc|__rust_dealloc|__rust_realloc|alloc::raw_vec|RawVec|_int_malloc|_int_free|cfree|memalign|posix_memalign")


def cat(f):
    if ALLOC.search(f) and not f.startswith(("stack::", "bypass::", "xdp::")):
        return "allocation"
    if f.startswith("xdp::"):
        return "XSK rings / UMEM (xdp)"
    if f.startswith(("stack::wire", "stack::frame", "<stack::wire", "stack::iface::Link")):
        return "frame parse/emit (stack::wire, stack::frame)"
    if f.startswith(("stack::storage", "<stack::storage")):
        return "ring buffer (stack::storage)"
    if f.startswith(("stack::tcp", "<stack::tcp")):
        return "TCP (stack::tcp)"
    if f.startswith(("stack::flow", "<stack::flow")):
        return "flow lookup (stack::flow)"
    if f.startswith(("stack::", "<stack::")):
        return "stack other (iface loop, timers, events)"
    if f.startswith(("bypass::app", "bypass::workload", "<bypass::app", "<bypass::workload")):
        return "app read/verify (harness app.rs, workload.rs)"
    if "hdrhistogram" in f or f.startswith("bypass::metrics"):
        return "metrics (histograms)"
    if f.startswith(("bypass::", "<bypass::", "std::sys::backtrace")):
        return "harness loop (bypass/tcp.rs)"
    if "std::time" in f or "Instant" in f or "clock_gettime" in f or "vdso" in f.lower():
        return "clock (Instant::now)"
    if "HashMap" in f or "hashbrown" in f or "SipHash" in f or "Hasher" in f:
        return "harness HashMap"
    return "other: " + f


catv = defaultdict(lambda: [0] * E)
memv = defaultdict(lambda: [0] * E)
sysv = defaultdict(lambda: [0] * E)
# self cost of every function except libc mem* and syscall wrappers goes to its category;
# those are charged to the caller's category (via call edges), and also listed apart
special = {f for f in fns if LIBC_MEM.search(f) or SYSCALL.search(f)}
for f in fns:
    if f in special:
        continue
    c = cat(f)
    catv[c] = [a + b for a, b in zip(catv[c], S[f])]
    for g, cost in calls[f].items():
        if g in special:
            c2 = cat(f)
            if "memcpy" in g or "memmove" in g:
                if f == "stack::tcp::tcb::Tcb::receive_data":
                    c2 = "ring buffer copy in (stack::storage, inlined in Tcb::receive_data)"
                elif f == "stack::tcp::tcb::Tcb::recv":
                    c2 = "ring buffer copy out to the app's buffer (Tcb::recv)"
            catv[c2] = [a + b for a, b in zip(catv[c2], cost)]
            key = f"{g.split('[')[0]} <- {c2}"
            if LIBC_MEM.search(g):
                memv[key] = [a + b for a, b in zip(memv[key], cost)]
            else:
                sysv[key] = [a + b for a, b in zip(sysv[key], cost)]
print(f"\n## by category (libc mem*/syscall wrappers charged to the caller)\n\n{hdr}  category")
for c, v in sorted(catv.items(), key=lambda kv: -kv[1][ir]):
    if v[ir] * 1000 < total[ir]:
        continue
    print(f"{fmt(v)}  {c}")
print(f"\n## libc copies/compares by calling category\n\n{hdr}  call")
for c, v in sorted(memv.items(), key=lambda kv: -kv[1][ir]):
    if v[ir] * 1000 < total[ir]:
        continue
    print(f"{fmt(v)}  {c}")
if sc is not None:
    # from the call edges into the libc wrappers: after `callgrind_control -z` the
    # wrappers' own syscall columns keep counts from before the zeroing
    print("\n## syscalls (callgrind --collect-systime), from calls into the libc wrappers\n")
    agg = defaultdict(lambda: [0, [0] * E])
    wrappers = {g for f in fns for g in calls[f] if SYSCALL.search(g) or g.startswith(("poll", "sendto", "clock_", "madvise", "mmap", "munmap", "recvfrom"))}
    for f in fns:
        if f in wrappers:
            continue
        for g, cost in calls[f].items():
            if g in wrappers:
                agg[g][0] += ncalls[f][g]
                agg[g][1] = [a + b for a, b in zip(agg[g][1], cost)]
    print(f"{'calls':>8} {'per ' + unit:>9} {'elapsed ms':>11} {'sys CPU ms':>11}  wrapper")
    for g, (k, v) in sorted(agg.items(), key=lambda kv: -kv[1][0])[:10]:
        pu = f"{k / per:>9.3f}" if per else f"{'':>9}"
        print(f"{k:>8,} {pu} {v[st] / 1e6:>11.1f} {v[scpu] / 1e6:>11.1f}  {short(g, 60)}")
