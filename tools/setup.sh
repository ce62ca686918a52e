#!/usr/bin/env bash
# Checks, and where it can installs, what building and running folio needs:
#   - the Rust targets and the llvm-tools component (rustup),
#   - qemu-system-aarch64 9.0 or newer (Debian 12 ships 7.2, without raspi4b;
#     its backports suite has 10).
# Packages come from the machine's own apt configuration: the backports suite,
# when needed, is added on the mirror the machine's sources already use. No
# package host is named here. When everything is present this costs a few
# stat calls and one `--version`.
set -euo pipefail

need_qemu_major=9
sysroot=$(rustc --print sysroot)
host=$(rustc -vV | sed -n 's/^host: //p')

for target in aarch64-unknown-none aarch64-unknown-none-softfloat; do
    if [ ! -d "$sysroot/lib/rustlib/$target/lib" ]; then
        echo "setup: installing the $target target (rustup)"
        rustup target add "$target"
    fi
done
if [ ! -x "$sysroot/lib/rustlib/$host/bin/llvm-objcopy" ]; then
    echo "setup: installing llvm-tools (rustup)"
    rustup component add llvm-tools
fi

qemu_major() {
    command -v qemu-system-aarch64 >/dev/null 2>&1 || { echo 0; return; }
    qemu-system-aarch64 --version | sed -n '1s/.*version \([0-9]*\)\..*/\1/p'
}

# The major version apt would install of qemu-system-arm, given extra apt
# options (e.g. "-t bookworm-backports"); 0 when there is no candidate.
candidate_major() {
    # shellcheck disable=SC2086
    apt-cache $1 policy qemu-system-arm 2>/dev/null |
        sed -n 's/^ *Candidate: \(1:\)\{0,1\}\([0-9]*\)\..*/\2/p' | head -n1 | grep . || echo 0
}

# The first mirror URI the machine's enabled apt sources use for suite $1
# (deb822 .sources files and one-line .list files alike).
mirror_for_suite() {
    local suite=$1 f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v suite="$suite" '
            function flush() { if (uris != "" && suites ~ ("(^| )" suite "( |$)") && enabled && types ~ /(^| )deb( |$)/) { split(uris, u, " "); print u[1]; found = 1; exit } }
            /^[[:space:]]*$/ { flush(); uris = ""; suites = ""; types = ""; enabled = 1; next }
            BEGIN { enabled = 1 }
            /^URIs:/    { sub(/^URIs:[[:space:]]*/, ""); uris = $0 }
            /^Suites:/  { sub(/^Suites:[[:space:]]*/, ""); suites = $0 }
            /^Types:/   { sub(/^Types:[[:space:]]*/, ""); types = $0 }
            /^Enabled:[[:space:]]*no/ { enabled = 0 }
            END { if (!found) flush() }
        ' "$f" | head -n1
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk -v suite="$suite" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ } if ($(i + 1) == suite) { print $i; exit } }' "$f"
    done
}

if [ "$(qemu_major)" -lt "$need_qemu_major" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: qemu-system-aarch64 >= $need_qemu_major.0 is needed (found: $(qemu_major))." >&2
        echo "setup: run 'make setup' as root (it adds your release's backports suite on your own mirror)," >&2
        echo "setup: or install qemu-system-arm >= $need_qemu_major.0 yourself, then try again." >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    install_opts=()
    if [ "$(candidate_major "")" -lt "$need_qemu_major" ]; then
        codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
        [ -n "$codename" ] || { echo "setup: cannot tell this Debian release's codename" >&2; exit 1; }
        backports="$codename-backports"
        if [ -z "$(mirror_for_suite "$backports" | head -n1)" ]; then
            mirror=$(mirror_for_suite "$codename" | head -n1)
            [ -n "$mirror" ] || { echo "setup: no apt source for suite $codename to take a mirror from" >&2; exit 1; }
            echo "setup: adding $backports on this machine's mirror $mirror"
            keyring=/usr/share/keyrings/debian-archive-keyring.gpg
            {
                printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\n' "$mirror" "$backports"
                [ -f "$keyring" ] && printf 'Signed-By: %s\n' "$keyring"
            } > "/etc/apt/sources.list.d/folio-$backports.sources"
            apt-get update -q
        fi
        install_opts=(-t "$backports")
    fi
    echo "setup: installing qemu-system-arm ${install_opts[*]}"
    apt-get install -y -q --no-install-recommends "${install_opts[@]}" qemu-system-arm
    if [ "$(qemu_major)" -lt "$need_qemu_major" ]; then
        echo "setup: qemu-system-aarch64 is still older than $need_qemu_major.0" >&2
        exit 1
    fi
fi
