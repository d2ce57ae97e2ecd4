#!/usr/bin/env bash
# Configure and build ngx_http_levee_module against nginx-dev, as debhelper's
# nginx_mod build system does. Called by CMake; paths come from the environment.
set -euo pipefail
step=$1
case "$step" in
configure)
    # configure writes a Makefile into its working directory: work on a private
    # copy of nginx-dev's tree so parallel builds never share one.
    rm -rf "$NGX_BUILD"
    mkdir -p "$NGX_BUILD"
    cp -r "$NGX_SRC_DIR" "$NGX_BUILD/src-tree"
    cd "$NGX_BUILD/src-tree"
    # shellcheck disable=SC1091
    . ./conf_flags
    # LEVEE_MODULE_SANITIZE: -fsanitize flags of a sanitized build (CMake's LEVEE_SANITIZE)
    san=${LEVEE_MODULE_SANITIZE:-}
    ./configure \
        --with-cc-opt="$(dpkg-buildflags --get CFLAGS) -fPIC $(dpkg-buildflags --get CPPFLAGS) $san" \
        --with-ld-opt="$(dpkg-buildflags --get LDFLAGS) -fPIC $san" \
        "${NGX_CONF_FLAGS[@]}" \
        --add-dynamic-module="$LEVEE_MODULE_DIR" \
        --builddir="$NGX_BUILD/objs" > "$NGX_BUILD/configure.log" 2>&1 \
        || { cat "$NGX_BUILD/configure.log" >&2; exit 1; }
    ;;
make)
    make -s -f "$NGX_BUILD/objs/Makefile" -C "$NGX_BUILD/src-tree" modules
    ;;
*)
    echo "usage: $0 configure|make" >&2
    exit 2
    ;;
esac
