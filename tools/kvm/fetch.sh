#!/usr/bin/env bash
# Fetches what running folio under Linux KVM, nested in QEMU, needs: Debian's
# arm64 kernel (KVM built in), Debian's arm64 qemu-system-arm with every
# shared library it loads, and busybox, extracted (no maintainer script
# runs) into DIR/rootfs. The packages come from the machine's own apt
# sources, read through a private apt state under DIR/apt: the machine's
# apt state and architecture list are left as they are. Cached: when
# DIR/rootfs/.complete exists this does nothing.
#
# Usage: tools/kvm/fetch.sh DIR
set -euo pipefail

dir=$(realpath -m "${1:?usage: $0 DIR}")
root=$dir/rootfs
[ -e "$root/.complete" ] && exit 0

packages=(linux-image-arm64 qemu-system-arm busybox-static)
state=$dir/apt
rm -rf "$state" "$root"
mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$root"
: > "$state/status"
apt_opts=(
    -o "Dir::State=$state" -o "Dir::State::Lists=$state/lists" -o "Dir::State::status=$state/status"
    -o "Dir::Cache=$state/cache" -o "APT::Architecture=arm64" -o "APT::Architectures::=arm64"
    -o "Debug::NoLocking=1" -o "APT::Install-Recommends=false" -q
)
echo "kvm: fetching arm64 ${packages[*]} from this machine's apt sources (private state in $state)"
apt-get "${apt_opts[@]}" update >"$state/update.log" 2>&1 || {
    cat "$state/update.log" >&2
    echo "kvm: apt-get update failed for arm64 with this machine's sources" >&2
    exit 1
}
for p in "${packages[@]}"; do
    if ! apt-cache "${apt_opts[@]}" show "$p" >/dev/null 2>&1; then
        echo "kvm: this machine's apt sources have no arm64 package $p (does the mirror carry arm64?)" >&2
        exit 1
    fi
done
apt-get "${apt_opts[@]}" -y install --download-only "${packages[@]}" >"$state/download.log" 2>&1 || {
    cat "$state/download.log" >&2
    echo "kvm: downloading the arm64 packages failed" >&2
    exit 1
}
for deb in "$state"/cache/archives/*.deb; do
    dpkg-deb -x "$deb" "$root"
done
ls "$root"/boot/vmlinuz-* >/dev/null 2>&1 || { echo "kvm: no kernel in $root/boot" >&2; exit 1; }
[ -x "$root/usr/bin/qemu-system-aarch64" ] || { echo "kvm: no qemu-system-aarch64 in $root" >&2; exit 1; }
rm -rf "$state/cache/archives"
touch "$root/.complete"
echo "kvm: ready in $root ($(du -sh "$root" | cut -f1))"
