"""What the execution-trace tools share (`trap-profile.py`,
`request-profile.py`): the Rust toolchain's LLVM tools, an ELF's
functions by address, the traced boot itself, and cutting its trace
into stretches."""
import bisect
import os
import re
import subprocess
import tempfile

PC_FIELD = re.compile(r"\[[0-9a-f]+/([0-9a-f]+)/")


def llvm_tool(name):
    """The path of the toolchain's `llvm-<name>` (from `llvm-tools`)."""
    sysroot = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True, check=True).stdout
    host = re.search(r"host: (\S+)", subprocess.run(["rustc", "-vV"], capture_output=True, text=True).stdout).group(1)
    return f"{sysroot.strip()}/lib/rustlib/{host}/bin/llvm-{name}"


class Symbols:
    """The text symbols of an ELF, demangled, by address."""

    def __init__(self, elf):
        listing = subprocess.run([llvm_tool("nm"), "-n", "-C", elf], capture_output=True, text=True, check=True).stdout
        self.names = []
        for line in listing.splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3 and parts[1] in "tT":
                self.names.append((int(parts[0], 16), re.sub(r"::h[0-9a-f]{16}$", "", parts[2])))
        self.starts = [a for a, _ in self.names]
        self.address = dict((name, a) for a, name in self.names)

    def function(self, pc):
        """The name of the function holding `pc`."""
        return self.names[bisect.bisect_right(self.starts, pc) - 1][1]


def traced_boot(image, bootargs, dfilter, memory="1G", timeout=300):
    """Boots `image` on QEMU `virt` (cortex-a72, one vCPU, icount, one
    instruction per translation block) with `bootargs`, and yields the
    program counter of every instruction executed in the address ranges
    `dfilter` names (`-d exec,nochain`), read through a FIFO while QEMU
    writes it, so the trace never lands on disk. Stops the program if the
    boot fails."""
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "trace")
        os.mkfifo(log)
        qemu = subprocess.Popen(
            ["timeout", str(timeout), "qemu-system-aarch64", "-nographic", "-no-reboot", "-semihosting", "-nic",
             "none", "-icount", "shift=0,sleep=off", "-m", memory, "-M", "virt", "-cpu", "cortex-a72", "-kernel",
             image, "-accel", "tcg,one-insn-per-tb=on", "-d", "exec,nochain", "-dfilter", dfilter, "-D", log,
             "-append", f"exit=semihosting loglevel=warn {bootargs}"],
            stdout=subprocess.DEVNULL)
        with open(log) as trace:
            for line in trace:
                m = PC_FIELD.search(line)
                if m:
                    yield int(m.group(1), 16)
        if qemu.wait() != 0:
            raise SystemExit(f"the traced boot failed (QEMU: {qemu.returncode})")


def cut(pcs, starts):
    """The stretches of `pcs` that begin at a program counter in `starts`,
    each up to the next such one (what comes before the first is left
    out; the last stretch runs to the end of the trace)."""
    current = None
    for pc in pcs:
        if pc in starts:
            if current is not None:
                yield current
            current = []
        if current is not None:
            current.append(pc)
    if current:
        yield current
