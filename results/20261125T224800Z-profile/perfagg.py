#!/usr/bin/env python3
"""Classify perf cpu-clock samples of one thread (by comm) into where its CPU
goes: user-space code by crate, and kernel time by what the kernel was doing
(the TX kick's softirq work, page faults, poll, ...).

usage: perf script -i perf.data --tid TID -F comm,tid,ip,sym,dso | perfagg.py [--us-per-op X]
(--us-per-op: the thread's CPU per operation from the run, to scale the shares)
Kernel call chains are complete (frame pointers); user chains are not (the
Rust binary has no frame pointers), so user samples are classified by their
leaf symbol."""
import re
import sys
from collections import Counter

args = sys.argv[1:]
per = float(args[args.index("--per") + 1]) if "--per" in args else None
unit = args[args.index("--per") + 2] if "--per" in args else "op"
hz = float(args[args.index("--hz") + 1]) if "--hz" in args else None
scale = float(args[args.index("--us-per-op") + 1]) if "--us-per-op" in args else None


def user_cat(sym):
    if re.search(r"mem(cpy|move)", sym):
        return "user: libc memcpy/memmove (copies)"
    if re.search(r"memset", sym):
        return "user: libc memset (zeroing new buffers)"
    if re.search(r"memcmp|bcmp", sym):
        return "user: libc memcmp (pattern verification)"
    if re.search(r"malloc|free|calloc|realloc|sysmalloc|unlink_chunk|__rust_alloc|__rdl_", sym):
        return "user: allocator (glibc malloc/free)"
    if re.search(r"clock_gettime|vdso", sym):
        return "user: clock_gettime (vDSO)"
    if sym.startswith(("xdp::", "<xdp::")):
        return "user: XSK rings (xdp)"
    if re.match(r"<?stack::(wire|frame)", sym):
        return "user: frame parse/emit (stack::wire, stack::frame)"
    if re.match(r"<?stack::tcp", sym):
        return "user: TCP (stack::tcp)"
    if re.match(r"<?stack::storage", sym):
        return "user: ring buffer (stack::storage)"
    if re.match(r"<?stack::flow", sym):
        return "user: flow lookup (stack::flow)"
    if re.match(r"<?stack::", sym):
        return "user: stack other (iface loop, events)"
    if re.match(r"<?bypass::(app|workload)", sym):
        return "user: app read/verify (app.rs, workload.rs)"
    if re.match(r"<?(bypass::|std::sys::backtrace)", sym):
        return "user: harness loop (bypass/tcp.rs)"
    if re.search(r"hash|Hash", sym):
        return "user: hashing (harness HashMap)"
    if re.search(r"sendto|poll|madvise|recvfrom", sym):
        return "user: libc syscall wrappers"
    return "user: other"


def kern_cat(chain):
    s = set(chain)
    sysname = None
    for f in reversed(chain):  # outermost first
        m = re.match(r"__x64_sys_(\w+)", f)
        if m:
            sysname = m.group(1)
            break
    if sysname is None:
        if "asm_exc_page_fault" in s or "exc_page_fault" in s:
            return "kernel: page faults (first touch of fresh heap pages)"
        if "net_rx_action" in s or "handle_softirqs" in s:
            return "kernel: softirq on interrupt exit"
        if s & {"asm_sysvec_apic_timer_interrupt", "asm_sysvec_reschedule_ipi", "irqentry_exit_to_user_mode",
                "asm_sysvec_call_function_single", "asm_common_interrupt"}:
            return "kernel: interrupts, scheduling"
        return "kernel: other (" + (chain[-1] if chain else "?") + ")"
    if sysname == "sendto" and "xsk_sendmsg" in s:
        sysname = "sendto (XSK TX kick)"
    if "net_rx_action" in s:
        if s & {"veth_xdp_rcv", "veth_xdp_rcv_skb", "__xsk_rcv", "xdp_do_redirect", "__xsk_map_flush"}:
            what = "veth NAPI rx of frames for the AF_XDP socket: XDP, page_pool copy, copy into UMEM"
        elif s & {"process_backlog", "ip_rcv", "tcp_v4_rcv", "tcp_v4_send_ack", "sock_def_readable",
                  "tcp_rcv_established", "tcp_rcv_state_process"}:
            what = "kernel IP/TCP rx via the backlog (the receiving end's stack, run in the sender's context) and what it triggers"
        else:
            what = "other"
        return f"kernel: {sysname} -> softirq: {what}"
    if sysname.startswith("sendto (XSK"):
        return "kernel: sendto (XSK TX kick): generic xmit (skb alloc, copy from UMEM, veth xmit)"
    if sysname in ("madvise", "munmap", "mmap", "brk"):
        return f"kernel: {sysname} (heap)"
    return f"kernel: {sysname} (own work)"


cats = Counter()
n = 0
chain = []
first_dso = None
first_sym = None


def flush():
    global chain, first_dso, first_sym, n
    if first_sym is None:
        return
    n += 1
    if first_dso == "[kernel.kallsyms]":
        kchain = [c for c in chain]
        cats[kern_cat(kchain)] += 1
    else:
        cats[user_cat(first_sym)] += 1
    chain = []
    first_dso = first_sym = None


for line in sys.stdin:
    if not line.strip():
        flush()
        continue
    if not line.startswith("\t") and not line.startswith(" "):
        flush()
        continue
    m = re.match(r"\s*([0-9a-f]+)\s+(.*)\s+\((.*)\)\s*$", line)
    if not m:
        continue
    sym, dso = m.group(2).strip(), m.group(3)
    sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
    if first_sym is None:
        first_sym, first_dso = sym, dso
    if dso == "[kernel.kallsyms]":
        chain.append(sym)
flush()

print(f"samples: {n}")
tot_user = sum(v for k, v in cats.items() if k.startswith("user"))
tot_k = n - tot_user
hdr = f"{'samples':>8} {'%':>6}"
if per and hz:
    hdr += f" {'µs/' + unit:>9}"
if scale:
    hdr += f" {'µs/op':>7}"
print(f"user {tot_user} ({100 * tot_user / n:.1f}%), kernel {tot_k} ({100 * tot_k / n:.1f}%)")
print(hdr + "  where")
for k, v in sorted(cats.items(), key=lambda kv: -kv[1]):
    if v * 200 < n:
        continue
    s = f"{v:>8} {100 * v / n:>5.1f}%"
    if per and hz:
        s += f" {v / hz * 1e6 / per:>9.2f}"
    if scale:
        s += f" {scale * v / n:>7.2f}"
    print(s + "  " + k)
rest = sum(v for v in cats.values() if v * 200 < n)
print(f"{rest:>8} {100 * rest / n:>5.1f}%  (each below 0.5 %)")
