#!/usr/bin/env python3
"""levee_sticky against nginx's own `hash $arg_uid consistent`, same run.

One backend nginx (no module) serves 4 upstream servers (`return 200`); one
front nginx proxies to them with keepalive through two upstream blocks that
differ only in the balancing method. wrk drives each front port in turn
(uids drawn from 100,000 users), the runs alternate, and the table gives the
median of the runs. Bounded: RUNS x 2 x DURATION seconds of load.

    python3 tests/bench/sticky_bench.py [--build-dir build] [--runs 3] [--duration 5]
        [--connections 64] [--workers 1] [--method maglev]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import wrk as _wrk  # tests/bench/wrk.py

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WRK_LUA = """
math.randomseed(42)
request = function()
  return wrk.format("GET", "/?uid=" .. math.random(1, 100000))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nginx_conf(d: str, workers: int, body: str, module: str | None) -> str:
    user = "user root root;" if os.geteuid() == 0 else ""
    load = f"load_module {module};" if module else ""
    return f"""{load}
{user}
daemon off;
worker_processes {workers};
error_log {d}/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/cb; proxy_temp_path {d}/px; fastcgi_temp_path {d}/fc;
    uwsgi_temp_path {d}/uw; scgi_temp_path {d}/sc;
{body}
}}
"""


def start_nginx(root: str, name: str, workers: int, body: str, module: str | None,
                ports: list[int]) -> subprocess.Popen:
    d = os.path.join(root, name)
    os.makedirs(d)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(nginx_conf(d, workers, body, module))
    p = subprocess.Popen(["nginx", "-p", d + "/", "-c", conf, "-e", os.path.join(d, "error.log")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 10
    for port in ports:
        while True:
            if p.poll() is not None:
                sys.exit(f"{name} nginx exited: {p.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit(f"{name} nginx did not listen on {port}")
                time.sleep(0.02)
    return p


def wrk(port: int, lua: str, duration: int, connections: int) -> dict:
    r = _wrk.run(port, duration, connections, lua)
    if r["non2xx"] or r["socket_errors"]:
        sys.exit(f"wrk saw errors on :{port}:\n{r['out']}")
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.environ.get("LEVEE_BUILD_DIR", os.path.join(REPO, "build")))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--workers", type=int, default=1, help="front nginx workers")
    ap.add_argument("--method", default="maglev", choices=["maglev", "ketama", "rendezvous"])
    a = ap.parse_args()

    module = os.path.join(os.path.abspath(a.build_dir), "ngx_http_levee_module.so")
    if not os.path.isfile(module):
        sys.exit(f"no module at {module}: build first")
    if shutil.which("wrk") is None:
        sys.exit("wrk not installed")

    root = tempfile.mkdtemp(prefix="levee-sticky-bench-")
    procs: list[subprocess.Popen] = []
    try:
        back_ports = [free_port() for _ in range(4)]
        back = "\n".join(f"    server {{ listen 127.0.0.1:{p}; location / {{ return 200 \"s{i}\\n\"; }} }}"
                         for i, p in enumerate(back_ports))
        procs.append(start_nginx(root, "backend", 1, back, None, back_ports))

        servers = "\n".join(f"        server 127.0.0.1:{p};" for p in back_ports)
        hash_port, sticky_port = free_port(), free_port()
        front = f"""
    upstream by_hash {{
        hash $arg_uid consistent;
{servers}
        keepalive 64;
    }}
    upstream by_sticky {{
        levee_sticky key=$arg_uid method={a.method};
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{hash_port};
        location / {{ proxy_pass http://by_hash; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}
    server {{
        listen 127.0.0.1:{sticky_port};
        location / {{ proxy_pass http://by_sticky; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}
"""
        procs.append(start_nginx(root, "front", a.workers, front, module, [hash_port, sticky_port]))

        lua = os.path.join(root, "uids.lua")
        with open(lua, "w") as f:
            f.write(WRK_LUA)

        cases = {"hash $arg_uid consistent": hash_port, f"levee_sticky method={a.method}": sticky_port}
        results: dict[str, list[dict]] = {k: [] for k in cases}
        wrk(hash_port, lua, 1, a.connections)  # warm-up: keepalive pools, caches
        wrk(sticky_port, lua, 1, a.connections)
        for r in range(a.runs):
            order = list(cases.items()) if r % 2 == 0 else list(reversed(cases.items()))
            for name, port in order:
                results[name].append(wrk(port, lua, a.duration, a.connections))

        print(f"wrk -t1 -c{a.connections} -d{a.duration}s, {a.runs} alternating runs (median), "
              f"front nginx {a.workers} worker(s), 4 upstream servers, 100k uids, keepalive 64")
        print(f"{'case':34} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8}  runs req/s")
        med = {}
        for name, rs in results.items():
            med[name] = {k: statistics.median(x[k] for x in rs) for k in ("rps", "p50", "p99")}
            runs = " ".join(f"{x['rps']:.0f}" for x in rs)
            print(f"{name:34} {med[name]['rps']:>10.0f} {med[name]['p50']:>8.3f} {med[name]['p99']:>8.3f}  {runs}")
        base, ours = med["hash $arg_uid consistent"], med[f"levee_sticky method={a.method}"]
        print(f"{'ratio levee_sticky / hash':34} {ours['rps'] / base['rps']:>9.3f}x "
              f"{ours['p50'] / base['p50']:>7.3f}x {ours['p99'] / base['p99']:>7.3f}x")
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGQUIT)
                p.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
