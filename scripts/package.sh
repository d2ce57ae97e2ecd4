#!/usr/bin/env bash
# Builds Levee's two Debian packages into dist/:
#   libnginx-mod-http-levee_VERSION_ARCH.deb   the module, enabled as Debian's own modules are
#   leveed_VERSION_ARCH.deb                    leveed, leveectl, /etc/levee/leveed.conf, the unit
# from a CMake build: BUILD_DIR (default build/, CI's build, when it is
# configured; otherwise build-package/, configured without tests). Nothing is
# compiled twice: the targets are brought up to date, then packed by debhelper
# from packaging/debian. VERSION is CMake's project(VERSION).
#   scripts/package.sh [--build-dir DIR] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD

build_dir=
out=$src/dist
while [ $# -gt 0 ]; do
    case $1 in
        --build-dir) build_dir=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) echo "usage: $0 [--build-dir DIR] [--out DIR]" >&2; exit 2 ;;
    esac
done
if [ -z "$build_dir" ]; then
    if [ -f build/CMakeCache.txt ]; then build_dir=build; else build_dir=build-package; fi
fi
build_dir=$(realpath -m "$build_dir")
mkdir -p "$out"
out=$(realpath "$out")

for tool in dpkg-buildpackage dh dh_nginx; do
    if ! command -v "$tool" >/dev/null; then
        echo "package: $tool is missing (apt-get install dpkg-dev debhelper nginx-dev)" >&2
        exit 1
    fi
done

if [ ! -f "$build_dir/CMakeCache.txt" ]; then
    echo "package: configuring $build_dir (no tests)"
    cmake -S "$src" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLEVEE_BUILD_TESTS=OFF >/dev/null
fi
# Sanitized binaries need the sanitizer runtimes and are slower: never shipped.
if grep -q '^LEVEE_SANITIZE:BOOL=ON' "$build_dir/CMakeCache.txt"; then
    echo "package: $build_dir is a LEVEE_SANITIZE build; give --build-dir of a plain one" >&2
    exit 1
fi
cmake --build "$build_dir" --target leveed leveectl ngx_http_levee_module

version=$(sed -n 's/^#define LEVEE_VERSION "\(.*\)"$/\1/p' "$build_dir/proto/levee_version.h")
if [ -z "$version" ]; then
    echo "package: no LEVEE_VERSION in $build_dir/proto/levee_version.h" >&2
    exit 1
fi

# A source tree of its own: debhelper wants debian/ beside what it packs.
work=$build_dir/package
rm -rf "$work"
tree=$work/levee-$version
mkdir -p "$tree/staged"
cp -r "$src/packaging/debian" "$tree/debian"
# One unit file, the one in conf/: debhelper installs debian/leveed.service.
cp "$src/conf/leveed.service" "$tree/debian/leveed.service"
cp "$build_dir/ngx_http_levee_module.so" "$build_dir/sidecar/leveed" "$build_dir/sidecar/leveectl" \
   "$src/conf/leveed.conf" "$src/docs/leveed.md" "$tree/staged/"

when=$(git -C "$src" log -1 --format=%cD 2>/dev/null || date -R)
cat > "$tree/debian/changelog" <<EOF
levee ($version) unstable; urgency=medium

  * Levee $version, packaged by scripts/package.sh.

 -- Levee developers <levee@example.org>  $when
EOF

echo "package: dpkg-buildpackage (log: $work/build.log)"
if ! (cd "$tree" && dpkg-buildpackage -b -us -uc -d) >"$work/build.log" 2>&1; then
    tail -n 30 "$work/build.log" >&2
    echo "package: dpkg-buildpackage failed; whole log: $work/build.log" >&2
    exit 1
fi
arch=$(dpkg --print-architecture)
# Only this version's packages in OUT: the images install dist/*.deb.
rm -f "$out"/libnginx-mod-http-levee_*.deb "$out"/leveed_*.deb
for pkg in libnginx-mod-http-levee leveed; do
    deb=${pkg}_${version}_${arch}.deb
    mv "$work/$deb" "$out/$deb"
    echo "package: $out/$deb"
done
