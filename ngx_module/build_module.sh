#!/usr/bin/env bash
# Configure and build ngx_http_levee_module against nginx-dev, as debhelper's
# nginx_mod build system does. Called by CMake; paths come from the environment.
#
# A failure here surfaces in ninja as one line ("subcommand failed"), so every
# way this can fail says which step, why, and where its whole log is, and
# prints the end of that log.
set -euo pipefail
step=${1:-}

# Nothing from the caller's locale or make jobserver changes what is built.
export LC_ALL=C
unset MAKEFLAGS MFLAGS MAKELEVEL

fail() {
    echo "ngx_http_levee_module: $*" >&2
    exit 1
}

fail_with_log() {
    local what=$1 status=$2 log=$3
    {
        echo "ngx_http_levee_module: $what failed (exit status $status); last lines of $log:"
        tail -n 40 "$log" | sed 's/^/    /'
    } >&2
    exit 1
}

need_tool() {
    command -v "$1" >/dev/null 2>&1 || fail "$1 not found in PATH ($2)"
}

case "$step" in
configure)
    [ -x "$NGX_SRC_DIR/configure" ] || fail "no nginx configure script at $NGX_SRC_DIR (apt-get install nginx-dev)"
    [ -r "$NGX_SRC_DIR/conf_flags" ] || fail "no $NGX_SRC_DIR/conf_flags: nginx-dev is incomplete (apt-get install --reinstall nginx-dev)"
    # Without dpkg-buildflags the module would silently build with other
    # hardening flags than Debian's nginx.
    need_tool dpkg-buildflags "apt-get install dpkg-dev"
    need_tool cc "apt-get install build-essential"
    need_tool make "apt-get install build-essential"
    cflags="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)" || fail "dpkg-buildflags --get CFLAGS failed"
    ldflags=$(dpkg-buildflags --get LDFLAGS) || fail "dpkg-buildflags --get LDFLAGS failed"

    # configure writes a Makefile into its working directory: work on a private
    # copy of nginx-dev's tree so parallel builds never share one.
    rm -rf "$NGX_BUILD"
    mkdir -p "$NGX_BUILD"
    cp -r "$NGX_SRC_DIR" "$NGX_BUILD/src-tree" || fail "cannot copy $NGX_SRC_DIR to $NGX_BUILD/src-tree"
    cd "$NGX_BUILD/src-tree"
    # shellcheck disable=SC1091
    . ./conf_flags
    log=$NGX_BUILD/configure.log
    status=0
    # LEVEE_MODULE_SANITIZE: -fsanitize flags of a sanitized build (CMake's LEVEE_SANITIZE)
    san=${LEVEE_MODULE_SANITIZE:-}
    ./configure \
        --with-cc-opt="$cflags -fPIC $san" \
        --with-ld-opt="$ldflags -fPIC $san" \
        "${NGX_CONF_FLAGS[@]}" \
        --add-dynamic-module="$LEVEE_MODULE_DIR" \
        --builddir="$NGX_BUILD/objs" > "$log" 2>&1 || status=$?
    [ "$status" -eq 0 ] || fail_with_log "nginx configure" "$status" "$log"
    [ -f "$NGX_BUILD/objs/Makefile" ] || fail_with_log "nginx configure (it wrote no Makefile)" 0 "$log"
    ;;
make)
    [ -f "$NGX_BUILD/objs/Makefile" ] || fail "no $NGX_BUILD/objs/Makefile: the configure step did not run or failed"
    log=$NGX_BUILD/make.log
    status=0
    make -f "$NGX_BUILD/objs/Makefile" -C "$NGX_BUILD/src-tree" modules > "$log" 2>&1 || status=$?
    [ "$status" -eq 0 ] || fail_with_log "make modules" "$status" "$log"
    # Compiler warnings stay visible, as they were with make's own output.
    grep -E 'warning:' "$log" >&2 || true
    ;;
*)
    echo "usage: $0 configure|make" >&2
    exit 2
    ;;
esac
