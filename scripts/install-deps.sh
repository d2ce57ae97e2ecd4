#!/usr/bin/env bash
# Installs everything Levee needs to build, run its local stack and run its
# tests on Debian 12: Debian packages, plus the two MongoDB-wire-protocol
# databases the tests run against: SecantusDB (from PyPI) and FerretDB (built
# from the Go module proxy by scripts/install-ferretdb.sh). Safe to run again.
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
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: apt-get install ${missing[*]}"
    # Debian starts services on install; the local stack and tests run their own.
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Packaged services are not needed (and would hold ports 80 and 6379).
$SUDO service nginx stop >/dev/null 2>&1 || true
$SUDO service redis-server stop >/dev/null 2>&1 || true

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
echo "install-deps: ok (test databases: $venv/bin/secantusd-py, $TOOLS_DIR/ferretdb/bin/ferretdb)"
