#!/usr/bin/env bash
# Starts the whole Levee stack locally on 127.0.0.1 — a 6-node Redis Cluster,
# a MongoDB-protocol database, leveed, nginx with the module in front of a
# demo app — shows it working, and keeps it up until Ctrl-C.
#   ./scripts/demo.sh            run until Ctrl-C
#   ./scripts/demo.sh --check    start, show it working, stop (used by the tests)
# It builds only what it runs (the module, leveed, leveectl), says where every
# component's log is as it starts, and keeps the logs when something fails.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
if [ ! -f build/CMakeCache.txt ]; then
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build build --target ngx_http_levee_module leveed leveectl
exec python3 scripts/local_stack.py --build-dir build "$@"
