#!/usr/bin/env bash
# Builds FerretDB (MongoDB wire protocol over SQLite), the second database the
# MongoDB-facing e2e tests run against, from the Go module proxy into
# $LEVEE_TOOLS_DIR/ferretdb/bin/ferretdb. Skipped when that binary is there
# in this version.
#
# `go install` alone gives a binary that panics at start: FerretDB embeds
# build/version/version.txt, which the module zip does not carry. So the
# module's source is copied out of the module cache and given that file.
set -euo pipefail

FERRETDB_VERSION=v1.24.2
TOOLS_DIR=${LEVEE_TOOLS_DIR:-/opt/levee-tools}
dest="$TOOLS_DIR/ferretdb/bin/ferretdb"

fail() {
    echo "install-ferretdb: FAILED: $*" >&2
    echo "install-ferretdb: the e2e.ferretdb.* tests need $dest (FerretDB $FERRETDB_VERSION)." >&2
    exit 1
}

if [ -x "$dest" ] && [ "$("$dest" --version 2>/dev/null | sed -n 's/^version: //p')" = "$FERRETDB_VERSION" ]; then
    echo "install-ferretdb: ok ($dest $FERRETDB_VERSION present)"
    exit 0
fi

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
[ -x "$GO" ] || fail "no Go toolchain (looked for 'go' on PATH and /usr/local/go/bin/go); install Go >= 1.21"

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
fi

work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
module="github.com/FerretDB/FerretDB@$FERRETDB_VERSION"
echo "install-ferretdb: building FerretDB $FERRETDB_VERSION (about 2 min the first time)"
"$GO" mod download "$module" || fail "go mod download $module (is the Go module proxy reachable? GOPROXY=$("$GO" env GOPROXY))"
src=$("$GO" mod download -json "$module" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$src" ] || fail "go mod download did not say where $module is"
cp -r "$src" "$work/src"
chmod -R u+w "$work/src"
echo "$FERRETDB_VERSION" > "$work/src/build/version/version.txt"
(cd "$work/src" && "$GO" build -o "$work/ferretdb" ./cmd/ferretdb) || fail "go build ./cmd/ferretdb"
"$work/ferretdb" --version >/dev/null 2>&1 || fail "the built binary does not run ($work/ferretdb --version)"
$SUDO install -D -m 0755 "$work/ferretdb" "$dest"
echo "install-ferretdb: ok ($dest)"
