#!/usr/bin/env bash
# Starts the whole Levee stack locally on 127.0.0.1 — a 6-node Redis Cluster,
# a MongoDB-protocol database, leveed, nginx with the module in front of a
# demo app — shows it working, and keeps it up until Ctrl-C.
#   ./scripts/demo.sh            run until Ctrl-C
#   ./scripts/demo.sh --check    start, show it working, stop (used by the tests)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build
exec python3 scripts/local_stack.py --build-dir build "$@"
