#!/usr/bin/env bash
# Prints the path of a Debian 12 (bookworm) minbase root file system as a tar,
# made once with debootstrap from the machine's own apt mirror and cached
# (about 2 minutes the first time): the chroot test and the images' offline
# base image both start from it. LEVEE_ROOTFS_CACHE moves the cache.
set -euo pipefail

cache_dir=${LEVEE_ROOTFS_CACHE:-/var/cache/levee-test}
tarball=$cache_dir/bookworm-rootfs.tar
if [ -s "$tarball" ]; then
    echo "$tarball"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "rootfs: debootstrap is missing (scripts/install-deps.sh --packaging)" >&2; exit 1; }
sources=/etc/apt/sources.list.d/debian.sources
mirror=$(awk '/^URIs:/ { print $2; exit }' "$sources" 2>/dev/null || true)
if [ -z "$mirror" ]; then
    echo "rootfs: no URIs: line in $sources to take the Debian mirror from" >&2
    exit 1
fi
mkdir -p "$cache_dir"
tmp=$(mktemp -d "$cache_dir/rootfs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "rootfs: debootstrap --variant=minbase bookworm from $mirror (log: $cache_dir/debootstrap.log)" >&2
if ! debootstrap --variant=minbase bookworm "$tmp/root" "$mirror" >"$cache_dir/debootstrap.log" 2>&1; then
    tail -n 20 "$cache_dir/debootstrap.log" >&2
    echo "rootfs: debootstrap failed; log: $cache_dir/debootstrap.log" >&2
    exit 1
fi
# apt inside sees the same mirrors (and security updates) as this machine.
rm -f "$tmp/root/etc/apt/sources.list"
cp "$sources" "$tmp/root/etc/apt/sources.list.d/"
tar -C "$tmp/root" -cf "$tmp/rootfs.tar" .
mv "$tmp/rootfs.tar" "$tarball"
echo "$tarball"
