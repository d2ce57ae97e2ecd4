#!/usr/bin/env bash
# Runs every Levee test on a fresh Debian 12 machine: installs what is missing,
# builds each configuration once, then runs one ctest over all of them:
#   build/       RelWithDebInfo: unit tests and every e2e file
#   build-asan/  clang, ASan+UBSan (module: UBSan) and the libFuzzer targets:
#                ctest entries asan.unit, asan.e2e and fuzz.*
#   build-tsan/  gcc, TSan: leveed and its unit tests: tsan.unit, tsan.e2e
# Each build stage prints its duration; each ctest entry (asan.*, tsan.*,
# fuzz.*, e2e.*) its own. ctest's summary ends the output.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

durations=()
stage() {
    local name=$1
    shift
    local start=$SECONDS
    echo "== stage $name"
    "$@"
    durations+=("$name: $((SECONDS - start)) s")
    echo "== stage $name: $((SECONDS - start)) s"
}

deps() {
    bash scripts/install-deps.sh
    # The fuzzers and the ASan build need clang: never skip them quietly.
    if ! command -v clang >/dev/null || ! command -v clang++ >/dev/null; then
        echo "test.sh: clang/clang++ not found; scripts/install-deps.sh installs them (clang, libclang-rt-14-dev)" >&2
        exit 1
    fi
}

build_asan() {
    CC=clang CXX=clang++ cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DLEVEE_SANITIZE=address,undefined -DLEVEE_FUZZ=ON
    cmake --build build-asan
}

# Only what runs under TSan: leveed and the unit tests of leveed.
build_tsan() {
    cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLEVEE_SANITIZE=thread
    local targets
    targets=$(ninja -C build-tsan -t targets all | sed -n 's/^\(sidecar_[a-z]*_unit_tests\|levee_redis_unit_tests\): .*/\1/p')
    # shellcheck disable=SC2086
    cmake --build build-tsan --target leveed $targets
}

build_main() {
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DLEVEE_ASAN_BUILD_DIR="$root/build-asan" -DLEVEE_TSAN_BUILD_DIR="$root/build-tsan" \
        -DLEVEE_FUZZ_BUILD_DIR="$root/build-asan"
    cmake --build build
}

stage deps deps
stage build build_main
stage build-asan build_asan
stage build-tsan build_tsan
echo "== stage durations (builds; the test stages are ctest labels below):"
printf '   %s\n' "${durations[@]}"

cd build
# ClusterClientLive.* need a live cluster: tests/e2e/test_redis_cluster_client.py
# runs them against one; in the unit pass they would only report "skipped".
ctest --output-on-failure --no-label-summary -E 'ClusterClientLive'
