#!/usr/bin/env python3
"""Where a memory-service request's instructions go, kernel and EL0 alike.

Boots the kernel under QEMU with one instruction per translation block and
an execution trace (`-d exec,nochain`) of the kernel's text and of the EL0
programs' (`membench` and the memory service share the link address 4 MiB;
the pool zeroing loop, `folio_rt::memory::zero`, is left out), cuts the
trace at every read of the cycle counter in `membench` (so a window is one
timed request, or the gap between two), and prints, for the windows asked
for, how many instructions each function ran: K the kernel, S the service
(EL0 between the request's first and last kernel entry), C the client.

    tools/request-profile.py [BOOTARGS] [WINDOW ...]

BOOTARGS default to `bench granule=4k`; with no WINDOW it lists every
window's length (in `membench`'s order: per size, the ALLOC, its settle,
the FREE, ...). The guest has FOLIO_PROFILE_MEM of RAM (1G by default:
`membench` then skips the 1 GiB size and the trace stays small). `make
image` first. Takes a few minutes.
"""
import collections
import os
import re
import subprocess
import sys

from exec_trace import Symbols, cut, llvm_tool, traced_boot

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
kernel = f"{root}/target/aarch64-unknown-none-softfloat/release/folio"
service = f"{root}/target/aarch64-unknown-none/service/memsvc"
client = f"{root}/target/aarch64-unknown-none/el0/membench"
image = f"{root}/target/folio.img"
bootargs = sys.argv[1] if len(sys.argv) > 1 else "bench granule=4k"
wanted = [int(w) for w in sys.argv[2:]]

K, S, C = Symbols(kernel), Symbols(service), Symbols(client)
vectors, text_end = K.address["exception_vectors"], K.address["__text_end"]
zero = next(i for i, (_, n) in enumerate(S.names) if n.startswith("folio_rt::memory::zero"))
zero_start, zero_end = S.names[zero][0], S.names[zero + 1][0]
listing = subprocess.run([llvm_tool("objdump"), "-d", "--no-show-raw-insn", client], capture_output=True, text=True).stdout
counter_reads = {int(m.group(1), 16) for m in re.finditer(r"^\s*([0-9a-f]+):\s+mrs\s+\w+, PMCCNTR_EL0", listing, re.M)}

dfilter = f"{vectors:#x}..{text_end:#x},0x400000..{zero_start:#x},{zero_end:#x}..0x480000"
pcs = traced_boot(image, bootargs, dfilter, os.environ.get("FOLIO_PROFILE_MEM", "1G"), timeout=1500)
# The last stretch is the run's end after the last counter read, not a
# request; a stretch of 50 instructions or fewer is two reads in a row.
stretches = list(cut(pcs, counter_reads))
windows = [w for w in stretches[:-1] if len(w) > 50]

if not wanted:
    print(f"{len(windows)} windows: " + ", ".join(f"{i}: {len(w)}" for i, w in enumerate(windows)))
for i in wanted:
    w = windows[i]
    kernel_at = [j for j, pc in enumerate(w) if pc >= vectors]
    first, last = kernel_at[0], kernel_at[-1]
    per_function, per_side = collections.Counter(), collections.Counter()
    for j, pc in enumerate(w):
        if pc >= vectors:
            name = "K " + K.function(pc)
        elif j < first or j > last:
            name = "C " + C.function(pc)
        else:
            name = "S " + S.function(pc)
        per_function[name] += 1
        per_side[name[0]] += 1
    print(f"\nwindow {i}: {len(w)} instructions ({', '.join(f'{k} {n}' for k, n in sorted(per_side.items()))})")
    for name, n in per_function.most_common():
        print(f"  {n:6}  {name[:140]}")
