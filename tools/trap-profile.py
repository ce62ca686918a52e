#!/usr/bin/env python3
"""Where a trap's instructions go: boots the kernel under QEMU with one
instruction per translation block and an execution trace of the kernel's
text (`-d exec,nochain -dfilter`), cuts the trace at every entry of the
lower-EL synchronous vector (exception_vectors + 0x400: system calls and
faults from EL0), and prints, for the most frequent trap lengths, how many
instructions each kernel function ran. EL0 code is not traced, so a length
is the kernel's whole share of one trap, vector to ERET.

With the default boot arguments (`bench granule=4k memsvc=off`) the only
EL0 traps are the IPC benchmark's: 171 instructions is the null system
call, the 5xx lengths are call and reply legs.

    tools/trap-profile.py [KERNEL_ELF] [KERNEL_IMG] [BOOTARGS]

With FOLIO_TRAP_TOP=N it profiles the N most frequent lengths (4 by
default); with FOLIO_TRAP_DUMP=N it also prints the instructions of one
trap of length N, disassembled.
"""
import collections
import os
import re
import subprocess
import sys

from exec_trace import Symbols, cut, llvm_tool, traced_boot

elf = sys.argv[1] if len(sys.argv) > 1 else "target/aarch64-unknown-none-softfloat/release/folio"
img = sys.argv[2] if len(sys.argv) > 2 else "target/folio.img"
bootargs = sys.argv[3] if len(sys.argv) > 3 else "bench granule=4k memsvc=off"

symbols = Symbols(elf)
vectors, text_end = symbols.address["exception_vectors"], symbols.address["__text_end"]
sync_lower = vectors + 0x400
function = symbols.function


traps = list(cut(traced_boot(img, bootargs, f"{vectors:#x}..{text_end:#x}"), {sync_lower}))

lengths = collections.Counter(len(t) for t in traps)
print(f"{len(traps)} traps from EL0; most frequent lengths: {lengths.most_common(12)}")
for length, count in sorted(lengths.most_common(int(os.environ.get("FOLIO_TRAP_TOP", "4")))):
    trap = next(t for t in traps if len(t) == length)
    per_function = collections.Counter(function(pc) for pc in trap)
    print(f"\n{length} instructions ({count} traps):")
    for name, n in per_function.most_common():
        print(f"  {n:5}  {name}")

dump = os.environ.get("FOLIO_TRAP_DUMP")
if dump:
    text = subprocess.run([llvm_tool("objdump"), "-d", "--no-show-raw-insn", elf], capture_output=True, text=True).stdout
    disassembly = {}
    for line in text.splitlines():
        m = re.match(r"^([0-9a-f]+):\s+(.*)$", line)
        if m:
            disassembly[int(m.group(1), 16)] = m.group(2).strip()
    trap = next((t for t in traps if len(t) == int(dump)), [])
    print(f"\none trap of {dump} instructions:")
    for pc in trap:
        print(f"  {pc:#x}  {function(pc)[:40]:40}  {disassembly.get(pc, '?')[:70]}")
