#!/usr/bin/env python3
"""The peer figure for a task lifetime: Linux 6.1 (Debian's arm64 kernel,
fetched with busybox by tools/kvm/fetch.sh) in the same QEMU as folio's
`make bench` (virt, cortex-a72, one core, -icount shift=0: one virtual
nanosecond per instruction). Its /init times N runs of a busybox shell
loop that forks, execs and waits for the static busybox's `true`, and N
runs of the same loop with the builtin `:` (the loop's own cost), by
/proc/uptime (10 ms resolution), twice. Prints the instructions per
lifetime: (spawn - builtin) / N.

    tools/linux-lifetimes.py [KVM_DIR] [N]      (KVM_DIR: target/kvm)
"""
import os
import re
import subprocess
import sys
import tempfile

kvm = sys.argv[1] if len(sys.argv) > 1 else "target/kvm"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
root = os.path.join(kvm, "rootfs")
if not os.path.exists(os.path.join(root, ".complete")):
    subprocess.run(["tools/kvm/fetch.sh", kvm], check=True)
kernel = next(os.path.join(root, "boot", f) for f in os.listdir(os.path.join(root, "boot")) if f.startswith("vmlinuz-"))

init = f"""#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
run() {{
  a=$(/bin/busybox cut -d' ' -f1 /proc/uptime)
  i=0
  while [ $i -lt {n} ]; do $1; i=$((i+1)); done
  b=$(/bin/busybox cut -d' ' -f1 /proc/uptime)
  echo "linuxbench $2 start=$a end=$b"
}}
run : builtin
run "/bin/busybox true" spawn
run : builtin
run "/bin/busybox true" spawn
/bin/busybox poweroff -f
""".encode()


def cpio(out, files):
    """A newc cpio archive of (name, data, mode)."""
    with open(out, "wb") as f:
        for ino, (name, data, mode) in enumerate(files + [("TRAILER!!!", b"", 0)], 1):
            namez = name.encode() + b"\0"
            fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(namez), 0]
            head = ("070701" + "".join(f"{v:08x}" for v in fields)).encode() + namez
            f.write(head + b"\0" * (-len(head) % 4) + data + b"\0" * (-len(data) % 4))


with tempfile.TemporaryDirectory() as tmp:
    initrd = os.path.join(tmp, "initrd.cpio")
    with open(os.path.join(root, "bin", "busybox"), "rb") as f:
        busybox = f.read()
    dirs = [(d, b"", 0o40755) for d in ("bin", "proc", "dev")]
    cpio(initrd, dirs + [("bin/busybox", busybox, 0o100755), ("init", init, 0o100755)])
    out = subprocess.run(
        ["timeout", "900", "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-m", "1G", "-smp", "1",
         "-icount", "shift=0,sleep=off", "-display", "none", "-monitor", "none", "-serial", "stdio", "-nic", "none",
         "-no-reboot", "-kernel", kernel, "-initrd", initrd, "-append", "console=ttyAMA0 rdinit=/init quiet"],
        capture_output=True, text=True, check=True).stdout

runs = {}
for kind, start, end in re.findall(r"linuxbench (\w+) start=([\d.]+) end=([\d.]+)", out):
    runs.setdefault(kind, []).append(float(end) - float(start))
if len(runs.get("spawn", [])) != 2 or len(runs.get("builtin", [])) != 2:
    sys.exit(f"no timings in the guest's output:\n{out}")
for spawn, builtin in zip(runs["spawn"], runs["builtin"]):
    per = (spawn - builtin) * 1e9 / n
    print(f"linux lifetime: {per:,.0f} instructions (fork + exec + exit + wait of busybox true; {n} runs, "
          f"{spawn:.2f} s with the loop, {builtin:.2f} s without)")
