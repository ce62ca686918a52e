"""What the execution-trace tools share (`trap-profile.py`,
`request-profile.py`): the Rust toolchain's LLVM tools, an ELF's
functions by address, and the program counter of a QEMU `-d exec` line."""
import bisect
import re
import subprocess

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
