#!/usr/bin/env bash
# scripts/install-deps.sh installs and does nothing else to the machine: it
# never stops, disables or restarts a service, and the packages it installs
# start no service during its apt-get (a policy-rc.d that it removes after,
# only when the machine has none of its own, which it then leaves as it is).
# Run with apt-get, dpkg-query, service, systemctl and invoke-rc.d replaced by
# recorders, every package reported missing, in a private mount namespace
# whose /usr/sbin is a copy: this machine's policy-rc.d is never touched.
#   install_deps.sh SOURCE_DIR        (as root: unshare -m)
set -euo pipefail
src=$1

if [ "$(id -u)" -ne 0 ]; then
    echo "FAIL: install_deps needs root (a private mount namespace); run it as root as CI does" >&2
    exit 1
fi
work=$(mktemp -d /tmp/levee-install-deps.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin"
for tool in apt-get service systemctl invoke-rc.d deb-systemd-invoke; do
    cat > "$work/bin/$tool" <<EOF
#!/bin/sh
echo "$tool \$*" >> "$work/calls"
if [ "$tool" = apt-get ] && [ "\$1" = install ] && [ -e /usr/sbin/policy-rc.d ]; then
    echo "policy during install: \$(grep exit /usr/sbin/policy-rc.d)" >> "$work/calls"
fi
EOF
done
printf '#!/bin/sh\nexit 1\n' > "$work/bin/dpkg-query"
chmod +x "$work/bin"/*
# The test database is there already, as far as the script can tell.
secantus=$(sed -n 's/^SECANTUS_VERSION=//p' "$src/scripts/install-deps.sh")
mkdir -p "$work/tools/secantus-venv/bin"
printf '#!/bin/sh\necho %s\n' "$secantus" > "$work/tools/secantus-venv/bin/python3"
printf '#!/bin/sh\n' > "$work/tools/secantus-venv/bin/secantusd-py"
chmod +x "$work/tools/secantus-venv/bin"/*
# and so is Prometheus (scripts/install-prometheus.sh)
mkdir -p "$work/tools/prometheus/usr/bin"
printf '#!/bin/sh\n' > "$work/tools/prometheus/usr/bin/promtool"
printf '#!/bin/sh\n' > "$work/tools/prometheus/usr/bin/prometheus"
chmod +x "$work/tools/prometheus/usr/bin"/*

# run_case NAME OWN_POLICY: OWN_POLICY empty for a machine without one.
run_case() {
    local name=$1 own=$2
    rm -f "$work/calls"
    cp -al /usr/sbin "$work/sbin-$name" 2>/dev/null || cp -a /usr/sbin "$work/sbin-$name"
    rm -f "$work/sbin-$name/policy-rc.d"
    if [ -n "$own" ]; then printf '#!/bin/sh\n%s\n' "$own" > "$work/sbin-$name/policy-rc.d"; fi
    unshare -m bash -c '
        set -e
        mount --make-rprivate /
        mount --bind "$1" /usr/sbin
        PATH=$2/bin:$PATH LEVEE_TOOLS_DIR=$2/tools bash "$3/scripts/install-deps.sh"
        if [ -e /usr/sbin/policy-rc.d ]; then echo "policy after: $(grep exit /usr/sbin/policy-rc.d)" >> "$2/calls"; fi
    ' _ "$work/sbin-$name" "$work" "$src"
    echo "-- $name:"
    cat "$work/calls"
}

fail() { echo "FAIL: $*" >&2; exit 1; }

run_case bare ""
grep -q '^apt-get install ' "$work/calls" || fail "no apt-get install"
grep -Eq '^(service|systemctl|invoke-rc.d|deb-systemd-invoke) ' "$work/calls" && fail "install-deps touched a service"
grep -qx 'policy during install: exit 101' "$work/calls" || fail "services could start during apt-get install"
grep -q '^policy after' "$work/calls" && fail "install-deps left its policy-rc.d behind"

run_case own "exit 0 # the administrator's"
grep -Eq '^(service|systemctl|invoke-rc.d|deb-systemd-invoke) ' "$work/calls" && fail "install-deps touched a service"
grep -qx "policy during install: exit 0 # the administrator's" "$work/calls" || fail "install-deps replaced the machine's policy-rc.d"
grep -qx "policy after: exit 0 # the administrator's" "$work/calls" || fail "install-deps removed the machine's policy-rc.d"
echo "install_deps: no service touched; its own policy-rc.d only while it installs, the machine's left alone"
