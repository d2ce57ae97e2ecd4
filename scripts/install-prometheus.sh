#!/usr/bin/env bash
# Puts Debian's Prometheus (the server and promtool) under $TOOLS_DIR without
# installing the package: installing it would start a server on :9090 on
# every interface and pull in node-exporter, on a machine the user runs.
set -euo pipefail
TOOLS_DIR=${LEVEE_TOOLS_DIR:-/opt/levee-tools}
dest="$TOOLS_DIR/prometheus"

if [ -x "$dest/usr/bin/promtool" ] && [ -x "$dest/usr/bin/prometheus" ]; then
    exit 0
fi
SUDO=
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"   # apt's download user must write here
echo "install-prometheus: Debian's prometheus package into $dest"
if ! (cd "$work" && apt-get download -q prometheus >/dev/null 2>"$work/err"); then
    # a fresh machine may have no package lists yet
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    (cd "$work" && apt-get download -q prometheus) || {
        echo "install-prometheus: cannot download Debian's prometheus package:" >&2
        cat "$work/err" >&2
        exit 1
    }
fi
$SUDO mkdir -p "$dest"
$SUDO dpkg-deb -x "$work"/prometheus_*.deb "$dest"
"$dest/usr/bin/promtool" --version >/dev/null
