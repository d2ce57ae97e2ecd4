#!/usr/bin/env python3
"""Rate-limit benchmark: one run, same upstream, same load (wrk), five cases.

    python3 tests/bench/limit_bench.py [--duration 8] [--workers 2] [--rounds 1]

Cases, each an nginx proxying with keepalive to a `return 200` server block
of its own:
  proxy        no limit
  limit_req    nginx's limit_req (huge rate and burst: nothing refused)
  levee_local  levee_limit_zone scope=local (same: nothing refused)
  levee_global levee_limit_zone scope=global, leveed + a 6-node Redis Cluster
  per_request  one Redis round trip per request (INCR + PEXPIRE over a pooled
               cosocket, Debian's lua-nginx-module): the design of Kong's
               redis policy and Envoy's global rate limit service

Prints req/s, p50, p99, refused responses and ratios, and checks issue 4's
targets. Needs a build (LEVEE_BUILD_DIR, default <repo>/build), wrk, and
libnginx-mod-http-lua + lua-resty-core (scripts/install-deps.sh).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

from harness import build as _build  # noqa: E402
from harness import proc as _proc  # noqa: E402
from harness.leveed import Leveed  # noqa: E402
from harness.nginx import Nginx  # noqa: E402
from harness.ports import free_port  # noqa: E402
from harness.redis_cluster import RedisCluster  # noqa: E402

import wrk as _wrk  # noqa: E402  (tests/bench/wrk.py)

LUA_MODULES = """
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
"""

COMMON = """
    access_log off;
    upstream back { server 127.0.0.1:$back; keepalive 64; }
    server {
        listen 127.0.0.1:$back;
        location / { return 200 "ok\\n"; }
    }
"""

LOCATION = """
    server {
        listen 127.0.0.1:$port;
        location / {
            %s
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://back;
        }
    }
"""

CASES = {
    "proxy": ("", ""),
    "limit_req": ("limit_req_zone $binary_remote_addr zone=r:10m rate=1000000r/s;",
                  "limit_req zone=r burst=1000000 nodelay;"),
    "levee_local": ("levee_limit_zone l key=$binary_remote_addr rate=1000000r/s burst=1000000 size=10m;",
                    "levee_limit l nodelay;"),
    "levee_global": ("levee_sidecar unix:$sock;\n"
                     "levee_limit_zone g key=$binary_remote_addr rate=1000000r/s burst=1000000 "
                     "scope=global sync=100ms size=10m;",
                     "levee_limit g nodelay;"),
    "per_request": ("lua_socket_log_errors off;",
                    """access_by_lua_block {
                        local sock = ngx.socket.tcp()
                        sock:settimeout(1000)
                        local ok, err = sock:connect("127.0.0.1", $redis_port)
                        if not ok then return ngx.exit(500) end
                        local key = "rl:" .. ngx.var.binary_remote_addr .. ":" .. ngx.time()
                        sock:send("*2\\r\\n$$4\\r\\nINCR\\r\\n$$" .. #key .. "\\r\\n" .. key .. "\\r\\n")
                        local line = sock:receive("*l")
                        if not line then return ngx.exit(500) end
                        local n = tonumber(string.sub(line, 2))
                        if n == 1 then
                            sock:send("*3\\r\\n$$7\\r\\nPEXPIRE\\r\\n$$" .. #key .. "\\r\\n" .. key .. "\\r\\n$$4\\r\\n2000\\r\\n")
                            sock:receive("*l")
                        end
                        sock:setkeepalive(10000, 64)
                        if n > 1000000 then return ngx.exit(429) end
                    }"""),
}


def wrk(port: int, duration: float, connections: int) -> dict:
    r = _wrk.run(port, duration, connections)
    r["refused"] = r["non2xx"]
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=1, help="runs per case; the median is reported")
    args = ap.parse_args()

    module = _build.require_module()
    leveed_bin = _build.require_leveed()
    cluster = RedisCluster(n_masters=3, replicas=1)
    redis_port = free_port(max_port=55000)
    plain_redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    running = []
    try:
        cluster.start()
        leveed = Leveed(leveed_bin, redis_seeds=cluster.seeds, log_level="info").start()
        running.append(leveed)
        results: dict[str, list[dict]] = {name: [] for name in CASES}
        for rnd in range(args.rounds):
            names = list(CASES)
            # each round starts with another case: no case always runs on a cold or hot machine
            for name in names[rnd % len(names):] + names[:rnd % len(names)]:
                http_conf, loc_conf = CASES[name]
                body = COMMON + http_conf + LOCATION % loc_conf
                ngx = Nginx(body, module, workers=args.workers, ports=("port", "back"),
                            main_conf=LUA_MODULES if name == "per_request" else "",
                            error_log_level="warn", sock=leveed.socket_path, redis_port=redis_port)
                ngx.start()
                try:
                    time.sleep(0.3)  # links said hello
                    wrk(ngx.port, 1, args.connections)  # warm-up: pools, leases
                    results[name].append(wrk(ngx.port, args.duration, args.connections))
                finally:
                    ngx.stop()
                r = results[name][-1]
                print(f"round {rnd + 1} {name:13s} {r['rps']:9.0f} req/s  p50 {r['p50']:.2f} ms  "
                      f"p99 {r['p99']:.2f} ms  refused {r['refused']}", file=sys.stderr)

        med = {n: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p99", "refused", "total")}
               for n, rs in results.items()}
        base = med["limit_req"]
        print(f"\nwrk -t1 -c{args.connections} -d{args.duration:g}s, nginx workers={args.workers}, "
              f"median of {args.rounds} round(s), {os.cpu_count()} CPUs\n")
        print("| case | req/s | p50 ms | p99 ms | refused | × limit_req req/s | × per_request req/s |")
        print("|---|---|---|---|---|---|---|")
        for n, r in med.items():
            print(f"| {n} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['refused']:.0f} | "
                  f"{r['rps'] / base['rps']:.2f} | {r['rps'] / med['per_request']['rps']:.2f} |")
        g = med["levee_global"]
        checks = [
            ("levee_global >= 0.95x limit_req req/s", g["rps"] >= 0.95 * base["rps"]),
            ("levee_global >= 1.5x per_request req/s", g["rps"] >= 1.5 * med["per_request"]["rps"]),
            ("levee_global p99 <= limit_req p99 + 10%", g["p99"] <= 1.1 * base["p99"]),
        ]
        print()
        for what, ok in checks:
            print(f"{'PASS' if ok else 'MISS'}  {what}")
        return 0
    finally:
        for c in reversed(running):
            c.stop()
        cluster.stop()
        plain_redis.terminate()
        plain_redis.wait(timeout=10)
        _proc.kill_all()
        _proc.cleanup_run_dir()


if __name__ == "__main__":
    sys.exit(main())
