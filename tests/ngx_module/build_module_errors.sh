#!/usr/bin/env bash
# ngx_module/build_module.sh must say which step failed, why, and show its log:
# through ninja, a bare non-zero exit reads only "subcommand failed".
# Runs the script against fake nginx-dev trees; no real nginx is built.
set -uo pipefail
script=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

expect() {   # expect NAME PATTERN: the last run's stderr matches PATTERN
    if grep -qE -- "$2" "$work/err"; then
        echo "ok: $1"
    else
        echo "FAIL: $1: stderr lacks /$2/:"; sed 's/^/    /' "$work/err"
        failures=$((failures + 1))
    fi
}

fake_tree() {   # fake_tree DIR CONFIGURE_BODY
    mkdir -p "$1"
    printf 'NGX_CONF_FLAGS=(--with-compat)\n' > "$1/conf_flags"
    printf '#!/bin/sh\n%s\n' "$2" > "$1/configure"
    chmod +x "$1/configure"
}

run() {   # run STEP SRC BUILD [PATH]
    env PATH="${4:-$PATH}" NGX_SRC_DIR="$2" NGX_BUILD="$3" LEVEE_MODULE_DIR=/nonexistent \
        bash "$script" "$1" > /dev/null 2> "$work/err"
}

# 1. configure fails: the step, the status, the log's path and its last lines.
fake_tree "$work/bad" 'echo "checking for OS"; echo "error: C compiler cc is not found"; exit 7'
run configure "$work/bad" "$work/b1" && { echo "FAIL: failing configure succeeded"; failures=$((failures + 1)); }
expect "configure failure names the step" 'nginx configure failed \(exit status 7\)'
expect "configure failure shows the log" 'C compiler cc is not found'
expect "configure failure names the log file" "$work/b1/configure.log"

# 2. a missing tool is named with the package that provides it, instead of a
#    module silently built with other flags than Debian's nginx.
fake_tree "$work/good" 'mkdir -p "$(echo "$@" | sed -n "s/.*--builddir=\([^ ]*\).*/\1/p")"; touch "$(echo "$@" | sed -n "s/.*--builddir=\([^ ]*\).*/\1/p")/Makefile"'
mkdir -p "$work/bin"
for t in bash sh cp rm mkdir cat tail sed grep env cc make touch; do
    p=$(command -v "$t") && ln -sf "$p" "$work/bin/$t"
done
run configure "$work/good" "$work/b2" "$work/bin" && { echo "FAIL: configure without dpkg-buildflags succeeded"; failures=$((failures + 1)); }
expect "missing dpkg-buildflags is named" 'dpkg-buildflags not found in PATH \(apt-get install dpkg-dev\)'

# 3. a tree without nginx-dev's configure.
run configure "$work/none" "$work/b3"
expect "missing nginx-dev is named" 'no nginx configure script at .*apt-get install nginx-dev'

# 4. make fails: the step and the compiler's message.
mkdir -p "$work/b4/objs" "$work/b4/src-tree"
printf 'modules:\n\t@echo "levee.cpp:1:1: error: boom" >&2; exit 2\n' > "$work/b4/objs/Makefile"
run make unused "$work/b4"
expect "make failure names the step" 'make modules failed \(exit status 2\)'
expect "make failure shows the compiler error" 'levee.cpp:1:1: error: boom'

# 5. make without a configured tree.
run make unused "$work/b5"
expect "make before configure is explained" 'configure step did not run or failed'

[ "$failures" -eq 0 ] && echo "build_module.sh explains its failures" || exit 1
