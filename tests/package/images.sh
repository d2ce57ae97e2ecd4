#!/usr/bin/env bash
# Builds both images of docker/Dockerfile with podman from dist/'s packages
# (--build-arg DEBS=dist: nothing is compiled again) and checks them without
# running a container (this machine's runtime cannot): each image is mounted
# and chrooted into. The base image debian:12 is made offline from the cached
# Debian 12 root file system when podman does not have one.
#   images.sh SOURCE_DIR        (as root)
set -euo pipefail
src=$1

if [ "$(id -u)" -ne 0 ]; then
    echo "FAIL: images needs root (podman image mount, chroot); run it as root as CI does" >&2
    exit 1
fi
command -v podman >/dev/null || { echo "FAIL: podman is missing (scripts/install-deps.sh)" >&2; exit 1; }
ls "$src"/dist/libnginx-mod-http-levee_*.deb "$src"/dist/leveed_*.deb >/dev/null ||
    { echo "FAIL: no packages in $src/dist (scripts/package.sh)" >&2; exit 1; }

step() { echo "== $(date +%T) $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

mounted=()
mounts=()
built=()
cleanup() {
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[i]}" 2>/dev/null || true; done
    for image in "${mounted[@]}"; do podman image unmount "$image" >/dev/null 2>&1 || true; done
    # Test images only: each run builds afresh (--layers=false keeps no
    # intermediate layers either), so nothing piles up in podman's storage.
    [ ${#built[@]} -eq 0 ] || podman rmi "${built[@]}" >/dev/null 2>&1 || true
}
trap cleanup EXIT

if ! podman image exists docker.io/library/debian:12; then
    tarball=$(bash "$src/tests/package/rootfs.sh")
    step "podman import $tarball as debian:12"
    podman import -q "$tarball" localhost/debian:12 >/dev/null
    podman tag localhost/debian:12 docker.io/library/debian:12
fi

for target in leveed nginx; do
    step "podman build --target $target"
    log=$(mktemp /tmp/levee-image-$target.XXXXXX.log)
    built+=("localhost/levee/$target:test")
    if ! podman build --isolation=chroot --network=host --pull=never --layers=false --build-arg DEBS=dist \
        -f "$src/docker/Dockerfile" --target "$target" -t "localhost/levee/$target:test" "$src" >"$log" 2>&1; then
        tail -n 30 "$log"
        fail "podman build --target $target (log: $log)"
    fi
    rm -f "$log"
done

step "leveed image"
root=$(podman image mount localhost/levee/leveed:test)
mounted+=(localhost/levee/leveed:test)
chroot "$root" leveed --version || fail "leveed --version in the leveed image"
user=$(podman image inspect --format '{{.Config.User}}' localhost/levee/leveed:test)
[ "$user" = "levee:www-data" ] || fail "leveed image runs as '$user', not levee:www-data"
run_dir=$(chroot "$root" stat -c '%a %U %G' /run/levee)
[ "$run_dir" = "770 levee www-data" ] || fail "leveed image: /run/levee is '$run_dir'"
grep -Eq '^socket_mode[[:space:]]+0660$' "$root/etc/levee/leveed.conf" || fail "leveed image: socket_mode is not 0660"
grep -Eq '^socket_group[[:space:]]+www-data$' "$root/etc/levee/leveed.conf" || fail "leveed image: socket_group is not www-data"

step "nginx image"
root=$(podman image mount localhost/levee/nginx:test)
mounted+=(localhost/levee/nginx:test)
[ -L "$root/etc/nginx/modules-enabled/50-mod-http-levee.conf" ] || fail "nginx image: module not enabled by its package"
# The image's config must name the sidecar, so that nginx -t tests the module.
grep -q '^levee_sidecar unix:/run/levee/leveed.sock;' "$root/etc/nginx/conf.d/levee.conf" || fail "nginx image: no levee_sidecar"
run_dir=$(chroot "$root" stat -c '%a %G' /run/levee)
[ "$run_dir" = "770 www-data" ] || fail "nginx image: /run/levee is '$run_dir'"
# The mounted image is read-only: nginx -t opens its pid file in /run, and
# its logs, linked to /dev/stdout and /dev/stderr.
mount -t tmpfs tmpfs "$root/run" && mounts+=("$root/run")
mount -t proc proc "$root/proc" && mounts+=("$root/proc")
mount --bind /dev "$root/dev" && mounts+=("$root/dev")
chroot "$root" nginx -t || fail "nginx -t in the nginx image"
echo "images: leveed and nginx built from dist/, leveed --version and nginx -t pass in them"
