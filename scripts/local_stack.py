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
from harness.mongo_db import MongoDatabase  # noqa: E402
from harness.nginx import Nginx  # noqa: E402
from harness.redis_cluster import RedisCluster  # noqa: E402
from harness.upstream_app import UpstreamApp  # noqa: E402

DEMO_CONF = """
    levee_sidecar unix:$sock;

    upstream demo_app {
        server $app;
        keepalive 16;
    }

    server {
        listen 127.0.0.1:$port;

        location / {
            proxy_pass http://demo_app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
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
        app = UpstreamApp("demo-app").start()
        parts.append(app)
        step("starting nginx with ngx_http_levee_module")
        nginx = Nginx(DEMO_CONF, module, workers=2, sock=leveed.socket_path, app=app.addr).start()
        parts.append(nginx)

        status, _, body = nginx.get("/hello")
        step(f"GET {nginx.url('/hello')} -> {status} {body[:80]!r}")
        probe = subprocess.run([leveectl, "--socket", leveed.socket_path, "probe", "demo-key", "hello"],
                               capture_output=True, text=True, timeout=30)
        step("leveectl probe (Redis Cluster + database, through leveed):")
        print(probe.stdout, end="", flush=True)
        ok = status == 200 and probe.returncode == 0

        print(f"""
Levee is running:
  curl {nginx.url('/')}
  curl http://127.0.0.1:{leveed.metrics_port}/metrics
  {leveectl} --socket {leveed.socket_path} probe KEY VALUE
  redis-cli -c -p {redis.seeds[0].split(':')[1]} GET demo-key
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


if __name__ == "__main__":
    sys.exit(main())
