#!/usr/bin/env python3
"""Heartbeat benchmark: one run, same load (wrk, beats of --users distinct
users round-robin), three cases, then the shared-memory cost of a user.

    python3 tests/bench/heartbeat_bench.py [--duration 8] [--workers 2] [--users 100000]

Cases (the levee cases share the 2 CPUs with leveed and 6 redis-servers):
  return_204  nginx `return 204;` (the ceiling: nothing recorded)
  proxy       each beat proxied (keepalive) to an upstream app that answers
              204: the seeds' design, before the app even touches its database
  levee       levee_heartbeat: 204 at the edge, flushed through leveed to a
              6-node Redis Cluster (WAIT 1 after each pipelined batch)
  levee_1k_users  the same, 1,000 users: beats coalesce, the edge's own cost

Also measured in the same run: Redis commands and pipelined round trips per
1,000 beats (INFO commandstats of every master, before and after the levee
case), the levee/return_204 ratio of each round (the machine drifts between
rounds; a target is met only when both the ratio of medians and the median
of the rounds' ratios meet it), and shared memory per tracked user (a 4 MB zone filled until it
refuses, leveed absent). Users per box at a 60 s interval = levee beats/s × 60.
Every load is bounded by --duration. Needs a build (LEVEE_BUILD_DIR) and wrk.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

from harness import build as _build  # noqa: E402
from harness import proc as _proc  # noqa: E402
from harness.leveed import Leveed  # noqa: E402
from harness.nginx import Nginx  # noqa: E402
from harness.redis_cluster import RedisCluster  # noqa: E402

import wrk as _wrk  # noqa: E402  (tests/bench/wrk.py)

WRK_SCRIPT = """
local users = %d
local n = math.random(users)
request = function()
  n = n + 1
  if n > users then n = 1 end
  return wrk.format("GET", "/hb?u=u" .. n)
end
"""

CASES = {
    "return_204": ("", "return 204;"),
    "proxy": ("upstream app { server 127.0.0.1:$back; keepalive 64; }",
              "proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_pass http://app;"),
    "levee": ("levee_sidecar unix:$sock;",
              "levee_heartbeat key=$arg_u ttl=180s interval=60s flush=250ms;"),
    # the same with 1,000 users: most beats coalesce in shared memory, so
    # this shows the edge's own cost without leveed and Redis on the same CPUs
    "levee_1k_users": ("levee_sidecar unix:$sock;",
                       "levee_heartbeat key=$arg_u ttl=180s interval=60s flush=250ms;"),
}

# levee_presence needs levee_sidecar (nginx -t says so): only levee cases have it
PRESENCE = "location = /presence { allow 127.0.0.1; deny all; levee_presence; }"

BODY = """
    access_log off;
    %s
    server { listen 127.0.0.1:$back; location / { return 204; } }
    server {
        listen 127.0.0.1:$port;
        location = /hb { %s }
        %s
    }
"""


def wrk(port: int, duration: float, connections: int, script: str) -> dict:
    return _wrk.run(port, duration, connections, script)


def stats(ngx) -> dict:
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{ngx.port}/presence?stats", timeout=5).read())


def commandstats(cluster: RedisCluster) -> dict[str, int]:
    total: dict[str, int] = {}
    for port, _, _ in cluster.masters():
        for m in re.finditer(r"^cmdstat_(\w+):calls=(\d+)", cluster.cli(port, "INFO", "commandstats"), re.M):
            total[m.group(1)] = total.get(m.group(1), 0) + int(m.group(2))
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--users", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=1, help="runs per case; the median is reported")
    args = ap.parse_args()

    module = _build.require_module()
    leveed_bin = _build.require_leveed()
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write(WRK_SCRIPT % args.users)
    script.close()
    script_1k = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script_1k.write(WRK_SCRIPT % 1000)
    script_1k.close()
    cluster = RedisCluster(n_masters=3, replicas=1)
    running = []
    try:
        cluster.start()
        leveed = Leveed(leveed_bin, redis_seeds=cluster.seeds, log_level="info").start()
        running.append(leveed)
        results: dict[str, list[dict]] = {name: [] for name in CASES}
        redis_cost = []
        for rnd in range(args.rounds):
            names = list(CASES)
            for name in names[rnd % len(names):] + names[:rnd % len(names)]:
                http_conf, loc_conf = CASES[name]
                ngx = Nginx(BODY % (http_conf, loc_conf, PRESENCE if "levee_sidecar" in http_conf else ""), module, workers=args.workers, ports=("port", "back"),
                            error_log_level="warn", sock=leveed.socket_path)
                ngx.start()
                try:
                    time.sleep(0.3)
                    load = script_1k.name if name == "levee_1k_users" else script.name
                    wrk(ngx.port, 1, args.connections, load)
                    if name == "levee":
                        deadline = time.monotonic() + 30
                        while stats(ngx)["waiting"] > 0 and time.monotonic() < deadline:
                            time.sleep(0.1)  # the warm-up's beats are not counted
                    before = commandstats(cluster) if name == "levee" else {}
                    s0 = stats(ngx) if name == "levee" else {}
                    r = wrk(ngx.port, args.duration, args.connections, load)
                    if name == "levee":
                        deadline = time.monotonic() + 30
                        while stats(ngx)["waiting"] > 0 and time.monotonic() < deadline:
                            time.sleep(0.1)
                        s1 = stats(ngx)
                        after = commandstats(cluster)
                        beats = s1["beats"] - s0["beats"]
                        delta = {c: after.get(c, 0) - before.get(c, 0) for c in after}
                        redis_cost.append({
                            "beats": beats,
                            "records": s1["sent"] - s0["sent"],
                            "zadd": delta.get("zadd", 0),
                            "all": sum(n for c, n in delta.items() if c != "info"),
                            "wait": delta.get("wait", 0),
                            "batches": s1["batches"] - s0["batches"],
                            "left": s1["waiting"],
                        })
                    results[name].append(r)
                finally:
                    ngx.stop()
                print(f"round {rnd + 1} {name:10s} {r['rps']:9.0f} beats/s  p50 {r['p50']:.2f} ms  "
                      f"p99 {r['p99']:.2f} ms  non-2xx {r['non2xx']}", file=sys.stderr)

        # Shared memory per user: fill a 4 MB zone with leveed absent until it refuses.
        ngx = Nginx(BODY % ("levee_sidecar unix:/nonexistent/leveed.sock;\n"
                            "levee_heartbeat_zone size=4m backlog=10000000;",
                            "levee_heartbeat key=$arg_u ttl=180s;", PRESENCE),
                    module, workers=args.workers, ports=("port", "back"), error_log_level="crit")
        ngx.start()
        try:
            fill_script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
            fill_script.write(WRK_SCRIPT % 1000000)
            fill_script.close()
            wrk(ngx.port, 3, args.connections, fill_script.name)
            os.unlink(fill_script.name)
            fill = stats(ngx)
        finally:
            ngx.stop()

        med = {n: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p99", "non2xx")}
               for n, rs in results.items()}
        base = med["return_204"]
        lv = med["levee"]
        # the machine's speed drifts between rounds: compare within each round too
        paired = {n: statistics.median(r["rps"] / b["rps"] for r, b in zip(results[n], results["return_204"]))
                  for n in ("levee", "levee_1k_users")}
        cost = redis_cost[-1]
        key_len = 1 + len(str(args.users // 2))
        per_user_entry = fill["bytes"] / fill["waiting"]
        per_user_zone = fill["zone_bytes"] / fill["waiting"]
        print(f"\nwrk -t1 -c{args.connections} -d{args.duration:g}s, {args.users} users round-robin, "
              f"nginx workers={args.workers}, median of {args.rounds} round(s), {os.cpu_count()} CPUs\n")
        print("| case | beats/s | p50 ms | p99 ms | non-2xx | × return 204 | × proxy |")
        print("|---|---|---|---|---|---|---|")
        for n, r in med.items():
            print(f"| {n} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['non2xx']:.0f} | "
                  f"{r['rps'] / base['rps']:.2f} | {r['rps'] / med['proxy']['rps']:.2f} |")
        per_k = 1000 / max(1, cost["beats"])
        print(f"\n| measure | value |\n|---|---|")
        print(f"| beats → records sent to leveed (coalescing) | {cost['beats']} → {cost['records']} "
              f"in {cost['batches']} batches |")
        print(f"| Redis commands per 1,000 beats: ZADD (one per bucket) / all | "
              f"{cost['zadd'] * per_k:.0f} / {cost['all'] * per_k:.0f} |")
        print(f"| Redis pipelined round trips per 1,000 beats (one WAIT ends each) | {cost['wait'] * per_k:.1f} |")
        print(f"| shm per tracked user, entry (key {key_len} bytes) | {per_user_entry:.1f} bytes |")
        print(f"| shm per tracked user, whole zone at capacity | {per_user_zone:.1f} bytes "
              f"({fill['waiting']} users in {fill['zone_bytes']} bytes) |")
        print(f"| users per box at a 60 s interval (levee beats/s × 60) | {lv['rps'] * 60:,.0f} |")
        print(f"| levee / return 204, median of the {args.rounds} rounds' own ratios | "
              f"100k users {paired['levee']:.2f}, 1k users {paired['levee_1k_users']:.2f} |")
        checks = [
            ("levee >= 0.90x return 204 beats/s (100k users, Redis on the same CPUs)",
             lv["rps"] >= 0.90 * base["rps"] and paired["levee"] >= 0.90),
            ("levee_1k_users >= 0.90x return 204 beats/s (the edge's own cost)",
             med["levee_1k_users"]["rps"] >= 0.90 * base["rps"] and paired["levee_1k_users"] >= 0.90),
            ("levee non-2xx == 0", lv["non2xx"] == 0),
            ("shm per user <= 64 + key bytes (entry)", per_user_entry <= 64 + key_len),
            ("every beat acknowledged after the run", cost["left"] == 0),
        ]
        print()
        for what, ok in checks:
            print(f"{'PASS' if ok else 'MISS'}  {what}")
        return 0
    finally:
        for c in reversed(running):
            c.stop()
        cluster.stop()
        os.unlink(script.name)
        os.unlink(script_1k.name)
        _proc.kill_all()
        _proc.cleanup_run_dir()


if __name__ == "__main__":
    sys.exit(main())
