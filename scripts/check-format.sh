#!/usr/bin/env bash
# Fails when C++ under the checked folders differs from what clang-format
# makes of it with the repository's .clang-format. ngx_module/ is not checked:
# it follows nginx's own style. Fix with:  bash scripts/check-format.sh --fix
set -euo pipefail
cd "$(dirname "$0")/.."

dirs=(core sidecar tests/bench tests/fuzz)
clang_format=${CLANG_FORMAT:-clang-format}

if ! command -v "$clang_format" >/dev/null; then
    echo "check-format: $clang_format not found (Debian package clang-format; scripts/install-deps.sh installs it)" >&2
    exit 2
fi

mapfile -d '' files < <(find "${dirs[@]}" -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' \) -print0 | sort -z)
if [ "${1:-}" = "--fix" ]; then
    "$clang_format" -i --style=file "${files[@]}"
    exit 0
fi
if ! "$clang_format" --dry-run --Werror --style=file "${files[@]}"; then
    echo "check-format: the files above are not formatted; run: bash scripts/check-format.sh --fix" >&2
    exit 1
fi
echo "check-format: ${#files[@]} files in ${dirs[*]} match .clang-format ($("$clang_format" --version))"
