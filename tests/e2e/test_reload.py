"""`nginx -s reload` under load keeps what Levee holds in shared memory
(local limit state, global leases, presence beats not yet acknowledged by
leveed) and applies what changed: a new rate at once, a new zone size by
re-creating the zone, with a log line, and for the heartbeat zone without
losing a beat answered 204."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid

import pytest

from harness.nginx import children_of
from harness.proc import pid_alive
from harness.wait import wait_until

PORTS = ("port", "back")

LIMIT_CONF = """
    levee_sidecar unix:$sock;
    levee_limit_zone loc key=$http_x_key rate=$rate burst=$burst size=$size;
    levee_limit_zone glob key=$http_x_key rate=1r/m burst=9 scope=global sync=100ms size=1m;
    server {
        listen 127.0.0.1:$back;
        access_log off;
        location / { return 200 "ok\\n"; }
    }
    server {
        listen 127.0.0.1:$port;
        proxy_set_header Connection "";
        location /local { levee_limit loc nodelay; proxy_pass http://127.0.0.1:$back; }
        location /global { levee_limit glob nodelay; proxy_pass http://127.0.0.1:$back; }
        location /load { levee_limit loc nodelay; proxy_pass http://127.0.0.1:$back; }
    }
"""

HB_CONF = """
    levee_sidecar unix:$sock;
    levee_heartbeat_zone size=$size;
    server {
        listen 127.0.0.1:$port;
        location = /hb { levee_heartbeat key=$arg_u flush=50ms; }
        location = /presence { levee_presence timeout=5s; }
    }
"""


def wait_linked(leveed, ngx):
    def linked():
        pids = {int(p) for p in re.findall(r"hello_accepted .*?pid=(\d+)", leveed.log())}
        return set(ngx.worker_pids()) <= pids
    wait_until(linked, timeout=15, message="every nginx worker linked to leveed")


def statuses(ngx, path: str, key: str, n: int) -> list[int]:
    return [ngx.get(path, headers={"X-Key": key})[0] for _ in range(n)]


@contextlib.contextmanager
def load(ngx, path: str, seconds: float = 30.0, count: int = 20000, clients: int = 2):
    """Keep-alive GETs of `path` (each to a new key) from `clients` threads
    while the body runs; bounded in time and count. Yields the statuses seen
    (a dict status -> n, and the users answered 204 under "ok")."""
    seen: dict = {"ok": []}
    stop = threading.Event()
    deadline = time.monotonic() + seconds
    lock = threading.Lock()

    def run(c: int):
        conn = None
        for i in range(count // clients):
            if stop.is_set() or time.monotonic() > deadline:
                break
            user = f"load{c}-{i}-{uuid.uuid4().hex[:6]}"
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", ngx.port, timeout=10)
                conn.request("GET", path.format(user=user), headers={"X-Key": user})
                r = conn.getresponse()
                r.read()
                status = r.status
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                # an old worker closed the keep-alive connection: no answer, nothing promised
                conn = None
                continue
            with lock:
                seen[status] = seen.get(status, 0) + 1
                if status == 204:
                    seen["ok"].append(user)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=run, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    try:
        # some load before the body (the reload) runs
        wait_until(lambda: sum(v for k, v in seen.items() if k != "ok") >= 50, timeout=30,
                   message="load running")
        yield seen
        # and some after it
        n = sum(v for k, v in seen.items() if k != "ok")
        wait_until(lambda: sum(v for k, v in seen.items() if k != "ok") >= n + 50, timeout=30,
                   message="load running after the reload")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)


def start_limits(make_leveed, make_nginx, redis_cluster, rate="1r/m", burst=2, size="1m"):
    leveed = make_leveed(redis_seeds=redis_cluster.seeds)
    ngx = make_nginx(LIMIT_CONF, ports=PORTS, sock=leveed.socket_path, rate=rate, burst=burst, size=size)
    wait_linked(leveed, ngx)
    return leveed, ngx


# ---------------------------------------------------------------- limits

def test_same_size_reload_keeps_local_state_and_global_leases(redis_cluster, make_leveed, make_nginx):
    leveed, ngx = start_limits(make_leveed, make_nginx, redis_cluster)
    local_key, global_key = uuid.uuid4().hex, uuid.uuid4().hex
    assert statuses(ngx, "/local", local_key, 4) == [200, 200, 200, 429]
    # the first lease takes the whole global bucket (10): 3 spent, 7 held in this nginx's zone
    assert statuses(ngx, "/global", global_key, 3) == [200] * 3

    with load(ngx, "/load"):
        ngx.reload()
    wait_linked(leveed, ngx)

    assert statuses(ngx, "/local", local_key, 2) == [429, 429], "the exhausted key is still refused"
    # Redis has nothing left for the key (1 r/m): what passes now is the lease kept in
    # shared memory (7), plus at most one request per worker ahead of a lease
    got = statuses(ngx, "/global", global_key, 12)
    assert 7 <= got.count(200) <= 9 and got[-3:] == [429] * 3, got
    assert "re-created" not in ngx.error_log()


@pytest.mark.parametrize("before, after, exhausted_after", [
    # faster: the key used its 3 requests of a 1 r/m bucket; at 50 r/s its
    # debt is 3 periods of 20 ms, not the 3 minutes the old TAT says
    (("1r/m", 2), ("50r/s", 2), False),
    # slower: the key used its 3 requests at 10 r/s (300 ms of debt); at
    # 1 r/m it has still used 3 of 3, not 0.3 s of a 3-minute bucket
    (("10r/s", 2), ("1r/m", 2), True),
])
def test_a_changed_rate_applies_at_once(redis_cluster, make_leveed, make_nginx, before, after, exhausted_after):
    leveed, ngx = start_limits(make_leveed, make_nginx, redis_cluster, rate=before[0], burst=before[1])
    key = uuid.uuid4().hex
    assert statuses(ngx, "/local", key, 4) == [200, 200, 200, 429]

    with load(ngx, "/load"):
        ngx.reload(rate=after[0], burst=after[1])
    wait_linked(leveed, ngx)

    fresh = uuid.uuid4().hex
    if exhausted_after:
        assert statuses(ngx, "/local", key, 2) == [429, 429]
        assert statuses(ngx, "/local", fresh, 4) == [200, 200, 200, 429], "the new, slower rate"
    else:
        wait_until(lambda: ngx.get("/local", headers={"X-Key": key})[0] == 200, timeout=5,
                   message="the exhausted key admitted again at the new, faster rate")
        got = statuses(ngx, "/local", fresh, 60)
        assert got[:3] == [200, 200, 200] and 429 in got, got


def test_a_resized_limit_zone_is_re_created_with_a_message(redis_cluster, make_leveed, make_nginx):
    leveed, ngx = start_limits(make_leveed, make_nginx, redis_cluster)
    key = uuid.uuid4().hex
    assert statuses(ngx, "/local", key, 4) == [200, 200, 200, 429]
    with load(ngx, "/load"):
        ngx.reload(size="2m")
    assert re.search(r'\[notice\].*levee_limit_zone "loc" changed size from 1048576 to 2097152: '
                     r"the zone is re-created and its state starts empty", ngx.error_log()), \
        ngx.error_log()[-2000:]
    assert statuses(ngx, "/local", key, 1) == [200], "a new, empty zone"


def test_binary_upgrade_starts_local_zones_afresh(redis_cluster, make_leveed, make_nginx):
    """USR2 + WINCH + QUIT: the new master is a new program; it inherits the
    listening sockets, not the shared memory (documented in rate-limits.md).
    nginx ignores USR2 unless it is a daemon: this one is started by hand."""
    leveed = make_leveed(redis_seeds=redis_cluster.seeds)
    ngx = make_nginx(LIMIT_CONF, ports=PORTS, sock=leveed.socket_path, rate="1r/m", burst=2, size="1m",
                     workers=1, start=False)
    text = ngx.write_config()
    with open(ngx.conf_path, "w") as f:
        f.write(text.replace("daemon off;", "daemon on;"))
    pid_file = f"{ngx.dir}/nginx.pid"
    masters: list[int] = []
    try:
        subprocess.run(ngx._argv(), check=True, timeout=30)
        masters.append(wait_until(lambda: int(open(pid_file).read() or 0), timeout=10,
                                  ignore_exceptions=True, message="nginx's pid file"))
        wait_until(lambda: ngx.get("/local", headers={"X-Key": "warm-up"})[0] == 200, timeout=10,
                   ignore_exceptions=True, message="nginx answering")
        key = uuid.uuid4().hex
        assert statuses(ngx, "/local", key, 4) == [200, 200, 200, 429]
        old_workers = set(children_of(masters[0]))

        os.kill(masters[0], signal.SIGUSR2)
        # nginx renames its pid file to .oldbin, then the new master writes its own
        masters.append(wait_until(lambda: os.path.exists(pid_file + ".oldbin")
                                  and int(open(pid_file).read() or 0), timeout=10,
                                  ignore_exceptions=True, message="the new master's pid file"))
        assert masters[1] != masters[0]
        wait_until(lambda: children_of(masters[1]), timeout=10, message="the new master's workers")
        os.kill(masters[0], signal.SIGWINCH)
        wait_until(lambda: not any(pid_alive(p) for p in old_workers), timeout=10,
                   message="the old workers gone")
        # only the new master's workers answer now: the exhausted key is unknown to them
        assert statuses(ngx, "/local", key, 4) == [200, 200, 200, 429]
        assert "re-created" not in ngx.error_log(), "no old zone in the new master: nothing to say"
    finally:
        for pid in reversed(masters):
            os.kill(pid, signal.SIGQUIT)
            wait_until(lambda: not pid_alive(pid), timeout=10, message=f"nginx master {pid} gone")


# ---------------------------------------------------------------- presence

def online(ngx, users: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(users), 200):    # the query fits nginx's 8k request line
        conn = http.client.HTTPConnection("127.0.0.1", ngx.port, timeout=10)
        try:
            conn.request("GET", "/presence?users=" + ",".join(users[i:i + 200]))
            r = conn.getresponse()
            body = r.read()
            assert r.status == 200, body
        finally:
            conn.close()
        found |= set(json.loads(body)["online"])
    return found


@pytest.mark.parametrize("new_size", ["4m", "8m"])
def test_reload_keeps_every_beat_answered_204(redis_cluster, make_leveed, make_nginx, new_size):
    """Beats answered 204 while leveed cannot acknowledge them wait in the
    zone; a reload at the same size keeps the zone, a new size makes a new
    one into which they are moved: every user answered 204 before or while
    reloading is in Redis once leveed runs again."""
    leveed = make_leveed(redis_seeds=redis_cluster.seeds)
    ngx = make_nginx(HB_CONF, sock=leveed.socket_path, size="4m")
    wait_linked(leveed, ngx)

    leveed.send_signal(signal.SIGSTOP)       # nothing is acknowledged from here on
    try:
        with load(ngx, "/hb?u={user}") as seen:
            ngx.reload(size=new_size)
        answered = list(seen["ok"])
    finally:
        leveed.send_signal(signal.SIGCONT)

    assert len(answered) >= 100, seen
    # 503 only from an old worker after its zone was retired, never a lost 204
    assert set(seen) <= {"ok", 204, 503}, {k: v for k, v in seen.items() if k != "ok"}
    print(f"\n{len(answered)} beats answered 204 around the reload, "
          f"{seen.get(503, 0)} answered 503 by retired old workers")

    wait_linked(leveed, ngx)
    missing: set[str] = set(answered)

    def all_online():
        missing.difference_update(online(ngx, sorted(missing)))
        return not missing
    wait_until(all_online, timeout=30, message="every user answered 204 online in Redis")

    log = ngx.error_log()
    assert bool(re.search(r"\[notice\].*levee_heartbeat_zone changed size from 4194304 to 8388608: "
                          r"the presence zone is re-created; \d+ users waiting for leveed's ack "
                          r"moved to it, 0 of them lost", log)) == (new_size != "4m"), log[-2000:]
