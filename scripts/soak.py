#!/usr/bin/env python3
"""Soak: mixed traffic against the full local stack (6-node Redis Cluster,
the MongoDB-protocol database, leveed, nginx with the module) for a bounded
time, with one leveed restart and one Redis master failover in it. Prints a
table: the RSS of nginx's workers and of leveed before and after, request
and error counts, and the heartbeats answered 204 that never reached Redis or
the database (must be 0). Not run by CI (it takes --duration, 10 minutes by
default); docs/reliability.md keeps the last result.

    python3 scripts/soak.py [--duration 600] [--build-dir build]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("LEVEE_KEEP_TMP", "1")   # the logs stay for reading afterwards
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))

from harness import proc  # noqa: E402
from harness.beat_stream import BeatStream, RespScore  # noqa: E402
from harness.levee_keys import last_seen, presence_key  # noqa: E402
from harness.leveed import Leveed, wait_linked  # noqa: E402
from harness.mongo_db import MongoDatabase  # noqa: E402
from harness.nginx import Nginx  # noqa: E402
from harness.redis_cluster import RedisCluster  # noqa: E402
from harness.upstream_app import UpstreamApp  # noqa: E402

CONF = """
    levee_sidecar unix:$sock;
    levee_limit_zone per_key key=$arg_k rate=20r/s burst=20 size=8m;
    levee_limit_zone per_user key=$arg_uid rate=600r/m burst=50 scope=global size=8m;
    levee_heartbeat_zone size=32m;
    upstream app {
        levee_sticky key=$arg_uid;
        levee_sticky_registry on ttl=10m flush=250ms;
        server $a;
        server $b;
        keepalive 16;
    }
    server {
        listen 127.0.0.1:$port;
        location /api/ {
            levee_limit per_key nodelay;
            levee_limit per_user nodelay;
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location = /hb { levee_heartbeat key=$arg_u room=$arg_room ttl=${ttl_ms}ms interval=60s flush=250ms; }
        location = /presence { levee_presence; }
        location = /levee-status { levee_status; }
    }
"""

TTL_MS = 600000

# wrk: keys and users drawn at random, so some keys are limited and most are not
WRK_SCRIPT = """
math.randomseed(os.time())
request = function()
    return wrk.format("GET", "/api/x?k=" .. math.random(1, 30) .. "&uid=u" .. math.random(1, 20000))
end
"""


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M).group(1))


def to_ms(value) -> int:
    return round(value.timestamp() * 1000) if isinstance(value, dt.datetime) else int(value)


def step(msg: str) -> None:
    print(f"soak {time.strftime('%H:%M:%S')}: {msg}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=600, help="seconds of traffic (default 600)")
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build"))
    ap.add_argument("--users", type=int, default=3000, help="heartbeating users")
    args = ap.parse_args()
    build = os.path.abspath(args.build_dir)
    parts = []
    wrk = None
    try:
        step("starting Redis Cluster, database, leveed, two app servers, nginx")
        redis = RedisCluster(n_masters=3, replicas=1).start()
        parts.append(redis)
        mongo = MongoDatabase().start()
        parts.append(mongo)
        leveed = Leveed(os.path.join(build, "sidecar", "leveed"), redis_seeds=redis.seeds, mongo_uri=mongo.uri,
                        log_level="info", metrics=True, settings={"mongo_flush_ms": 500}).start()
        parts.append(leveed)
        a, b = UpstreamApp("soak-a").start(), UpstreamApp("soak-b").start()
        parts += [a, b]
        ngx = Nginx(CONF, os.path.join(build, "ngx_http_levee_module.so"), workers=2,
                    sock=leveed.socket_path, a=a.addr, b=b.addr, ttl_ms=TTL_MS).start()
        parts.append(ngx)
        wait_linked(leveed, ngx)

        beats = BeatStream(ngx, users=args.users, threads=3, room="soak", pause=0.005)
        beats.start()
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        script.write(WRK_SCRIPT)
        script.close()
        wrk = subprocess.Popen(["wrk", "-t1", "-c32", f"-d{args.duration:g}s", "-s", script.name,
                                f"http://127.0.0.1:{ngx.port}/"], stdout=subprocess.PIPE, text=True)
        time.sleep(min(20, args.duration / 10))
        before = {"nginx workers": sum(rss_kib(p) for p in ngx.worker_pids()), "leveed": rss_kib(leveed.proc.pid)}
        started = time.monotonic()

        time.sleep(max(0.0, args.duration / 3 - (time.monotonic() - started)))
        step("restarting leveed (SIGTERM, drain, start)")
        leveed.restart()
        time.sleep(max(0.0, 2 * args.duration / 3 - (time.monotonic() - started)))
        victim = redis.masters()[0][0]
        step(f"failing over Redis: SIGKILL of master :{victim}")
        redis.kill_node(victim)
        time.sleep(min(30, args.duration / 10))
        redis.restart_node(victim)

        wrk_out = wrk.communicate(timeout=args.duration + 120)[0]
        wrk = None
        beats.finish()
        after = {"nginx workers": sum(rss_kib(p) for p in ngx.worker_pids()), "leveed": rss_kib(leveed.proc.pid)}

        step("waiting for every beat to be acknowledged and written")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            text = urllib.request.urlopen(ngx.url("/levee-status"), timeout=5).read().decode()
            if re.search(r"^levee_heartbeat_backlog_users 0$", text, re.M):
                break
            time.sleep(0.5)
        redis.wait_ok(timeout=60)

        nodes: dict[int, RespScore] = {}
        lost_redis = []
        for user, (sent_after, _) in beats.last.items():
            key = presence_key(user, ttl_ms=TTL_MS)
            port = redis.master_for_key(key)
            conn = nodes.setdefault(port, RespScore(port))
            score = conn.zscore(key, user)
            if score is None or last_seen(score, ttl_ms=TTL_MS) < sent_after:
                lost_redis.append(user)
        for conn in nodes.values():
            conn.close()

        def lost_in_database() -> list[str]:
            docs = {d["_id"]: to_ms(d["last_seen"]) for d in mongo.find("levee", "presence", {})}
            return [u for u, (sent_after, _) in beats.last.items() if docs.get(u, -1) < sent_after]

        deadline = time.monotonic() + 120
        lost_db = lost_in_database()
        while lost_db and time.monotonic() < deadline:
            time.sleep(1)
            lost_db = lost_in_database()

        wrk_total = int(re.search(r"(\d+) requests in", wrk_out).group(1))
        non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", wrk_out)
        socket_errors = re.search(r"Socket errors: (.*)", wrk_out)
        rows = [
            ("duration", f"{args.duration:g} s, leveed restarted at 1/3, Redis master killed at 2/3"),
            ("RSS nginx workers (KiB)", f"{before['nginx workers']} -> {after['nginx workers']}"),
            ("RSS leveed (KiB)", f"{before['leveed']} -> {after['leveed']} (after the restart: a new process)"),
            ("/api/ requests (wrk)", f"{wrk_total}, non-2xx {non2xx.group(1) if non2xx else 0}"
                                     f" (429s from the limits), socket errors: "
                                     f"{socket_errors.group(1) if socket_errors else 'none'}"),
            ("heartbeats", f"{beats.counts.get(204, 0)} answered 204, {beats.counts.get(503, 0)} answered 503, "
                           f"{len(beats.errors)} client errors"),
            ("users whose last 204 beat is missing in Redis", str(len(lost_redis))),
            ("users whose last 204 beat is missing in the database", str(len(lost_db))),
        ]
        width = max(len(r[0]) for r in rows)
        print()
        for k, v in rows:
            print(f"| {k.ljust(width)} | {v}")
        print(f"\nlogs: {proc.run_dir()}")
        ok = not lost_redis and not lost_db and not beats.errors
        if not ok:
            print(f"LOST: redis {lost_redis[:5]} database {lost_db[:5]} errors {beats.errors[:3]}")
        return 0 if ok else 1
    finally:
        if wrk is not None:
            wrk.kill()
        for p in reversed(parts):
            p.stop()


if __name__ == "__main__":
    sys.exit(main())
