#!/usr/bin/env python3
"""The local Levee stack, built from the end-to-end test harness so the demo
and the tests start the very same components."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))

from harness import proc  # noqa: E402
from harness.leveed import Leveed  # noqa: E402
from harness.levee_keys import registry_key  # noqa: E402
from harness.mongo_db import MongoDatabase  # noqa: E402
from harness.nginx import Nginx  # noqa: E402
from harness.redis_cluster import RedisCluster  # noqa: E402
from harness.upstream_app import UpstreamApp  # noqa: E402

DEMO_CONF = """
    levee_sidecar unix:$sock;

    # 5 requests/s per client address, burst 5 (scope=global would count across every nginx)
    levee_limit_zone per_ip key=$binary_remote_addr rate=5r/s burst=5;

    upstream demo_app {
        server $app;
        keepalive 16;
    }

    # the same user always reaches the same app instance; the choice is kept in Redis
    upstream demo_ws {
        levee_sticky key=$arg_user;
        levee_sticky_registry on ttl=10m flush=200ms;
        server $app;
        server $app2;
    }

    server {
        listen 127.0.0.1:$port;

        location / {
            levee_limit per_ip nodelay;
            levee_limit_headers on;
            proxy_pass http://demo_app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /sticky/ {
            proxy_pass http://demo_ws;
        }
        location = /heartbeat {
            levee_heartbeat key=$arg_user room=$arg_room ttl=180s interval=60s flush=250ms;
        }
        location = /presence {
            # who is online is personal data: local clients only
            allow 127.0.0.1;
            deny all;
            levee_presence;
        }
    }
"""


def step(msg: str) -> None:
    print(f"levee-demo: {msg}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build"))
    ap.add_argument("--check", action="store_true", help="start, show it working, then stop")
    args = ap.parse_args()
    build = os.path.abspath(args.build_dir)
    module = os.path.join(build, "ngx_http_levee_module.so")
    leveed_bin = os.path.join(build, "sidecar", "leveed")
    leveectl = os.path.join(build, "sidecar", "leveectl")

    parts = []
    ok = False
    step(f"logs: {proc.run_dir()} (one folder per component; kept if anything fails)")
    try:
        step("starting a Redis Cluster (3 masters, 3 replicas)")
        redis = RedisCluster(n_masters=3, replicas=1).start()
        parts.append(redis)
        step("starting the MongoDB-protocol database")
        mongo = MongoDatabase().start()
        parts.append(mongo)
        step("starting leveed")
        leveed = Leveed(leveed_bin, redis_seeds=redis.seeds, mongo_uri=mongo.uri, log_level="info",
                        metrics=True).start()
        parts.append(leveed)
        app = UpstreamApp("demo-app-1").start()
        parts.append(app)
        app2 = UpstreamApp("demo-app-2").start()
        parts.append(app2)
        step("starting nginx with ngx_http_levee_module")
        nginx = Nginx(DEMO_CONF, module, workers=2, sock=leveed.socket_path, app=app.addr, app2=app2.addr).start()
        parts.append(nginx)

        checks = []

        def show(label: str, ok: bool, detail: str) -> None:
            checks.append(ok)
            step(f"{'ok ' if ok else 'BAD'} {label}: {detail}")

        status, headers, body = nginx.get("/hello")
        show("proxy", status == 200, f"GET /hello -> {status} {body[:60]!r}")
        statuses = [nginx.get("/hello")[0] for _ in range(12)]
        show("rate limit", 429 in statuses, f"12 more requests -> {statuses}")
        servers = {nginx.get("/sticky/?user=alice")[2] for _ in range(5)}
        show("sticky", len(servers) == 1, f"alice, 5 requests -> {len(servers)} server(s)")
        status, headers, _ = nginx.get("/heartbeat?user=alice&room=lobby")
        show("heartbeat", status == 204,
             f"-> {status}, Levee-Heartbeat-Interval: {headers.get('Levee-Heartbeat-Interval')}")
        time.sleep(0.6)
        status, _, body = nginx.get("/presence?room=lobby")
        show("presence", status == 200 and b"alice" in body, f"GET /presence?room=lobby -> {body.decode().strip()}")
        probe = subprocess.run([leveectl, "--admin-socket", leveed.admin_socket_path, "probe", "demo-key", "hello"],
                               capture_output=True, text=True, timeout=30)
        show("stores", probe.returncode == 0, "leveectl probe: Redis Cluster + database, through leveed")
        print(probe.stdout, end="", flush=True)
        ok = all(checks)

        url = nginx.url("")
        print(f"""
Levee is running:
  curl -i '{url}/hello'                                  # proxied, rate limited (RateLimit headers)
  curl -i '{url}/sticky/?user=alice'                      # always the same app instance
  curl -i '{url}/heartbeat?user=alice&room=lobby'         # 204 at the edge
  curl '{url}/presence?user=alice'  '{url}/presence?room=lobby'
  curl http://127.0.0.1:{leveed.metrics_port}/metrics
  {leveectl} --admin-socket {leveed.admin_socket_path} probe KEY VALUE
  redis-cli -c -p {redis.seeds[0].split(':')[1]} GET '{registry_key("alice")}'   # where alice's socket lives
logs: {proc.run_dir()}
""", flush=True)
        if args.check:
            return 0 if ok else 1
        step("Ctrl-C stops everything")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0
    finally:
        for p in reversed(parts):
            p.stop()
        if not ok:
            # The run folder is removed at exit unless LEVEE_KEEP_TMP is set.
            os.environ["LEVEE_KEEP_TMP"] = "1"
            step(f"FAILED: logs kept in {proc.run_dir()}")


if __name__ == "__main__":
    sys.exit(main())
