#!/usr/bin/env python3
"""Share of a thread's samples whose kernel call chain contains a function
(each sample counted once per function): perf script ... | perfsyms.py SYM..."""
import re, sys
want = sys.argv[1:]
n = 0
hit = {w: 0 for w in want}
chain = set()
started = False
def flush():
    global chain, n, started
    if started:
        n += 1
        for w in want:
            if w in chain:
                hit[w] += 1
    chain = set(); started = False
for line in sys.stdin:
    if not line.strip():
        flush(); continue
    if not line[0].isspace():
        flush(); started = True; continue
    m = re.match(r"\s+[0-9a-f]+\s+(\S+)", line)
    if m:
        chain.add(re.sub(r"\+0x[0-9a-f]+$", "", m.group(1)))
flush()
print(f"samples {n}")
for w in want:
    print(f"{100 * hit[w] / n:6.1f}%  {w}")
