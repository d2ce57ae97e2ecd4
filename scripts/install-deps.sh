#!/usr/bin/env bash
# Installs everything Levee needs to build, run its local stack, package it
# and run its tests on Debian 12: Debian packages, plus the two
# MongoDB-wire-protocol databases the tests run against: SecantusDB (from
# PyPI) and FerretDB (built from the Go module proxy by
# scripts/install-ferretdb.sh), and Prometheus's tools. Safe to run again.
#
# It only installs: services already on the machine are never stopped,
# disabled or reconfigured (the tests and scripts/demo.sh start their own
# nginx, Redis and database on free loopback ports). Packages it installs
# that bring a service (nginx, redis-server) are not started by their
# installation when the machine has no /usr/sbin/policy-rc.d: one that
# refuses every start exists for the duration of its apt-get, and is removed
# after it.
set -euo pipefail

SECANTUS_VERSION=0.7.0b3
TOOLS_DIR=${LEVEE_TOOLS_DIR:-/opt/levee-tools}

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
fi

packages=(
    build-essential cmake ninja-build pkg-config git ca-certificates curl
    nginx nginx-dev
    redis-server redis-tools
    libhiredis-dev libmongoc-dev libbson-dev libevent-dev
    libprotobuf-c-dev protobuf-c-compiler libssl-dev
    libcmocka-dev googletest libgtest-dev
    clang libclang-rt-14-dev clang-format
    python3 python3-pytest python3-venv
    wrk procps iproute2
    libnginx-mod-http-ndk libnginx-mod-http-lua lua-resty-core
    # packaging (scripts/package.sh, tests/package): debs, lintian, the
    # Debian 12 chroot, images, compose.yaml's check
    debhelper lintian debootstrap podman docker-compose
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: apt-get install ${missing[*]}"
    policy=/usr/sbin/policy-rc.d
    own_policy=
    if [ ! -e "$policy" ]; then
        echo "install-deps: services of newly installed packages are not started ($policy, removed afterwards)"
        own_policy=$policy
        trap '$SUDO rm -f "$own_policy"' EXIT
        printf '#!/bin/sh\n# scripts/install-deps.sh: removed when its apt-get ends\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        $SUDO chmod 0755 "$policy"
    fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    if [ -n "$own_policy" ]; then
        $SUDO rm -f "$own_policy"
        trap - EXIT
    fi
fi

# The test database: SecantusDB speaks the MongoDB wire protocol on WiredTiger.
venv="$TOOLS_DIR/secantus-venv"
# (no "pip show | grep -q": with pipefail, grep closing early fails the pipe)
installed=$("$venv/bin/python3" -c 'import importlib.metadata as m; print(m.version("secantusdb"))' 2>/dev/null || true)
if [ ! -x "$venv/bin/secantusd-py" ] || [ "$installed" != "$SECANTUS_VERSION" ]; then
    echo "install-deps: secantusdb==$SECANTUS_VERSION into $venv"
    $SUDO mkdir -p "$TOOLS_DIR"
    $SUDO /usr/bin/python3 -m venv "$venv"
    $SUDO "$venv/bin/pip" install -q --disable-pip-version-check "secantusdb==$SECANTUS_VERSION"
fi
# The second test database (e2e.ferretdb.*): MongoDB wire protocol over SQLite.
LEVEE_TOOLS_DIR="$TOOLS_DIR" bash "$(dirname "$0")/install-ferretdb.sh"
# promtool checks the metrics pages and alert rules; the server scrapes the
# local stack in a test.
LEVEE_TOOLS_DIR="$TOOLS_DIR" bash "$(dirname "$0")/install-prometheus.sh"
echo "install-deps: ok (test databases: $venv/bin/secantusd-py, $TOOLS_DIR/ferretdb/bin/ferretdb)"
