#!/usr/bin/env bash
# Installs dist/'s two packages into a Debian 12 chroot (never onto this
# machine: the module package would enable itself in this machine's nginx),
# then checks what an operator gets: Debian's nginx.conf loads the module
# through modules-enabled and `nginx -t` passes on a Levee config; leveed runs
# as the unit runs it (levee, with www-data as supplementary group) and
# nginx's workers (www-data) reach its 0660 socket; the unit passes
# `systemd-analyze verify`; purging both leaves nothing behind.
#   debian_chroot.sh SOURCE_DIR DIST_DIR        (as root)
set -euo pipefail
src=$1
dist=$2

if [ "$(id -u)" -ne 0 ]; then
    echo "FAIL: debian_chroot needs root (debootstrap, chroot, mount); run it as root as CI does" >&2
    exit 1
fi
version=$(sed -n 's/^project(levee VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
arch=$(dpkg --print-architecture)
module_deb=$dist/libnginx-mod-http-levee_${version}_${arch}.deb
leveed_deb=$dist/leveed_${version}_${arch}.deb
for deb in "$module_deb" "$leveed_deb"; do
    [ -f "$deb" ] || { echo "FAIL: $deb is missing (scripts/package.sh)" >&2; exit 1; }
done

step() { echo "== $(date +%T) $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

tarball=$(bash "$src/tests/package/rootfs.sh")
root=$(mktemp -d /tmp/levee-chroot.XXXXXX)
leveed_pid=
cleanup() {
    [ -n "$leveed_pid" ] && kill "$leveed_pid" 2>/dev/null || true
    umount "$root/proc" 2>/dev/null || true
    # Never into a /proc that would still be mounted there.
    rm -rf --one-file-system "$root"
}
trap cleanup EXIT

step "unpack $tarball into $root"
tar -C "$root" -xf "$tarball"
# Nothing installed in the chroot may start a service (the chroot shares
# this machine's network and ports).
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
cp "$module_deb" "$leveed_deb" "$root/tmp/"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }

step "apt-get install nginx, systemd and both packages"
in_root apt-get update -q >/dev/null
in_root apt-get install -y -q --no-install-recommends nginx systemd \
    "/tmp/$(basename "$module_deb")" "/tmp/$(basename "$leveed_deb")" >"$root/tmp/install.log" 2>&1 ||
    { tail -n 30 "$root/tmp/install.log"; fail "apt-get install"; }

step "module enabled as Debian's own modules are"
link=$root/etc/nginx/modules-enabled/50-mod-http-levee.conf
[ "$(readlink "$link")" = /usr/share/nginx/modules-available/mod-http-levee.conf ] ||
    fail "$link does not point at modules-available/mod-http-levee.conf"
grep -qx 'load_module modules/ngx_http_levee_module.so;' "$root/usr/share/nginx/modules-available/mod-http-levee.conf"
[ -f "$root/usr/lib/nginx/modules/ngx_http_levee_module.so" ] || fail "module not in /usr/lib/nginx/modules"

step "nginx -t: Debian's nginx.conf, a Levee site in conf.d"
cat > "$root/etc/nginx/conf.d/levee.conf" <<'EOF'
levee_sidecar unix:/run/levee/leveed.sock;
levee_limit_zone per_ip   key=$binary_remote_addr rate=100r/s burst=50 size=1m;
levee_limit_zone per_user key=$http_x_user_id     rate=1000r/m burst=100 scope=global;
server {
    listen 127.0.0.1:8089;
    location /api/            { levee_limit per_ip; levee_limit per_user nodelay; return 204; }
    location = /api/heartbeat { levee_heartbeat key=$http_x_user_id room=$arg_room ttl=180s; }
    location = /api/presence  { allow 127.0.0.1; deny all; levee_presence; }
}
EOF
in_root nginx -t 2>&1 || fail "nginx -t with the installed module"

step "leveed: user, conffile, binaries"
in_root getent passwd levee >/dev/null || fail "no user levee"
in_root getent group levee >/dev/null || fail "no group levee"
grep -qx /etc/levee/leveed.conf "$root/var/lib/dpkg/info/leveed.conffiles" || fail "/etc/levee/leveed.conf is no conffile"
in_root leveed --version
in_root leveectl --help >/dev/null || fail "leveectl does not run"

step "leveed as the unit runs it; nginx's workers (www-data) reach its socket"
# What the unit's RuntimeDirectory= and LogsDirectory= make, then leveed as
# User=levee Group=levee SupplementaryGroups=www-data, standalone (the
# packaged settings without redis and mongo).
install -d -m 0755 -o "$(in_root id -u levee)" -g "$(in_root id -g levee)" "$root/run/levee" "$root/var/log/levee"
grep -Ev '^(redis|mongo)[[:space:]]' "$root/etc/levee/leveed.conf" > "$root/tmp/standalone.conf"
as_levee=(setpriv --reuid=levee --regid=levee --groups=www-data)
in_root "${as_levee[@]}" id
in_root "${as_levee[@]}" leveed --check-config /tmp/standalone.conf >/dev/null || fail "leveed --check-config as levee"
# chroot, env and setpriv exec in turn: $! is leveed itself.
chroot "$root" env -i PATH=/usr/sbin:/usr/bin "${as_levee[@]}" leveed --config /tmp/standalone.conf \
    >"$root/tmp/leveed.out" 2>&1 &
leveed_pid=$!
for _ in $(seq 1 100); do
    [ -S "$root/run/levee/leveed.sock" ] && break
    kill -0 "$leveed_pid" 2>/dev/null || fail "leveed exited; log: $(tail -n 5 "$root/var/log/levee/leveed.log")"
    sleep 0.1
done
[ -S "$root/run/levee/leveed.sock" ] || fail "no socket /run/levee/leveed.sock"
perms=$(in_root stat -c '%a %U %G' /run/levee/leveed.sock)
[ "$perms" = "660 levee www-data" ] || fail "socket is '$perms', expected '660 levee www-data'"
in_root setpriv --reuid=www-data --regid=www-data --clear-groups \
    leveectl --socket /run/levee/leveed.sock hello || fail "www-data cannot talk to leveed"
if in_root setpriv --reuid=nobody --regid=nogroup --clear-groups \
    leveectl --socket /run/levee/leveed.sock hello >/dev/null 2>&1; then
    fail "nobody reached the socket: it must be www-data's only"
fi
kill "$leveed_pid"
wait "$leveed_pid" || true
leveed_pid=

step "systemd-analyze verify leveed.service"
unit=$root/lib/systemd/system/leveed.service
cmp "$unit" "$src/conf/leveed.service" || fail "the packaged unit differs from conf/leveed.service"
# The chroot's own systemd, on the chroot's files (ExecStart= binaries,
# dependencies): what an operator's machine would say.
in_root systemd-analyze verify /lib/systemd/system/leveed.service >"$root/tmp/verify.log" 2>&1 ||
    { cat "$root/tmp/verify.log"; fail "systemd-analyze verify"; }
if grep . "$root/tmp/verify.log"; then fail "systemd-analyze verify complained about leveed.service"; fi
# ... and it does look: the same unit with a missing binary fails.
sed 's|^ExecStart=/usr/sbin/leveed|ExecStart=/usr/sbin/leveed-missing|' "$unit" > "$root/tmp/leveed.service"
if in_root systemd-analyze verify /tmp/leveed.service >/dev/null 2>&1; then
    fail "systemd-analyze verify accepted a unit whose ExecStart= does not exist"
fi

step "apt-get purge both"
in_root apt-get purge -y -q libnginx-mod-http-levee leveed >"$root/tmp/purge.log" 2>&1 ||
    { tail -n 30 "$root/tmp/purge.log"; fail "apt-get purge"; }
for gone in /etc/nginx/modules-enabled/50-mod-http-levee.conf /etc/nginx/modules-enabled/50-mod-http-levee.conf.removed \
    /usr/share/nginx/modules-available/mod-http-levee.conf /usr/lib/nginx/modules/ngx_http_levee_module.so \
    /etc/levee /usr/sbin/leveed /usr/bin/leveectl /lib/systemd/system/leveed.service /var/log/levee /var/lib/levee; do
    if [ -e "$root$gone" ] || [ -L "$root$gone" ]; then fail "$gone is left after purge"; fi
done
if in_root dpkg-query -W -f='${Status}\n' leveed libnginx-mod-http-levee 2>/dev/null | grep -v '^unknown ok not-installed$' | grep -q .; then
    fail "dpkg still knows the packages"
fi
# Without the module, the same config must now fail: the test above did test it.
if in_root nginx -t >/dev/null 2>&1; then fail "nginx -t passed without the module"; fi
rm "$root/etc/nginx/conf.d/levee.conf"
in_root nginx -t 2>&1 || fail "nginx -t fails after purge without any Levee config"
echo "debian_chroot: 2 packages installed, nginx -t, socket 660 levee:www-data, unit verified, purged clean"
