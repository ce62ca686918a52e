#!/usr/bin/env bash
# Checks, and where it can installs, what building and running folio needs:
#   - the aarch64-unknown-none Rust target and the llvm-tools component (rustup),
#   - qemu-system-aarch64 9.0 or newer (Debian 12 ships 7.2, without raspi4b).
# When everything is present this costs a few stat calls and one `--version`.
set -euo pipefail

need_qemu_major=9
sysroot=$(rustc --print sysroot)
host=$(rustc -vV | sed -n 's/^host: //p')

if [ ! -d "$sysroot/lib/rustlib/aarch64-unknown-none/lib" ]; then
    echo "setup: installing the aarch64-unknown-none target (rustup)"
    rustup target add aarch64-unknown-none
fi
if [ ! -x "$sysroot/lib/rustlib/$host/bin/llvm-objcopy" ]; then
    echo "setup: installing llvm-tools (rustup)"
    rustup component add llvm-tools
fi

qemu_major() {
    command -v qemu-system-aarch64 >/dev/null 2>&1 || { echo 0; return; }
    qemu-system-aarch64 --version | sed -n '1s/.*version \([0-9]*\)\..*/\1/p'
}

if [ "$(qemu_major)" -lt "$need_qemu_major" ]; then
    backports=/etc/apt/sources.list.d/bookworm-backports.sources
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: qemu-system-aarch64 >= $need_qemu_major.0 is needed (found: $(qemu_major))." >&2
        echo "setup: run these as root, then try again:" >&2
        echo "  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' > $backports" >&2
        echo "  apt-get update && apt-get install -y -t bookworm-backports qemu-system-arm" >&2
        exit 1
    fi
    echo "setup: installing qemu-system-arm from bookworm-backports"
    if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
        printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' > "$backports"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q -t bookworm-backports qemu-system-arm
    if [ "$(qemu_major)" -lt "$need_qemu_major" ]; then
        echo "setup: qemu-system-aarch64 is still older than $need_qemu_major.0" >&2
        exit 1
    fi
fi
