"""levee_sticky_registry: the server levee_sticky chose for each user is
written through leveed into the Redis Cluster as ``levee:registry:{user}`` (``harness.levee_keys.registry_key``) with a
TTL, follows the user when their server goes down and comes back, costs one
write per user and flush interval, and bad directives fail ``nginx -t``."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

from harness.levee_keys import registry_key
from harness.wait import wait_until

USERS = [f"reg-user{i}" for i in range(30)]
TTL_MS = 60000


def conf(apps, registry=f"levee_sticky_registry on ttl={TTL_MS // 1000}s flush=100ms;",
         sidecar="levee_sidecar unix:$sock;"):
    servers = "\n".join(f"        server {a.addr} max_fails=1 fail_timeout=1s;" for a in apps)
    return f"""
    {sidecar}
    upstream backend {{
        levee_sticky key=$arg_uid;
        {registry}
{servers}
    }}
    server {{
        listen 127.0.0.1:$port;
        location / {{
            proxy_pass http://backend;
            proxy_next_upstream error timeout;
            proxy_connect_timeout 1s;
        }}
    }}
"""


def served_by(ngx, uid: str) -> str:
    status, _, body = ngx.get(f"/?uid={uid}")
    assert status == 200, body
    return json.loads(body)["server"]


def registered(rc, uid: str) -> str:
    key = registry_key(uid)
    return rc.cli(rc.master_for_key(key), "GET", key)


def pttl(rc, uid: str) -> int:
    key = registry_key(uid)
    return int(rc.cli(rc.master_for_key(key), "PTTL", key))


@pytest.fixture
def three(make_upstream):
    return [make_upstream(n) for n in ("r1", "r2", "r3")]


def test_registry_records_each_users_server_with_a_ttl(redis_cluster, make_leveed, make_nginx, three):
    addr = {a.name: a.addr for a in three}
    d = make_leveed(redis_seeds=redis_cluster.seeds)
    ngx = make_nginx(conf(three), workers=2, sock=d.socket_path)
    placed = {u: served_by(ngx, u) for u in USERS}
    assert len(set(placed.values())) == 3
    wait_until(lambda: all(registered(redis_cluster, u) == addr[placed[u]] for u in USERS),
               timeout=10, interval=0.1)
    for u in USERS[:5]:
        assert TTL_MS - 5000 < pttl(redis_cluster, u) <= TTL_MS


def test_registry_follows_a_user_when_their_server_goes_down(redis_cluster, make_leveed, make_nginx,
                                                             three):
    addr = {a.name: a.addr for a in three}
    d = make_leveed(redis_seeds=redis_cluster.seeds)
    ngx = make_nginx(conf(three), workers=1, sock=d.socket_path)
    placed = {u: served_by(ngx, u) for u in USERS}
    victim = next(a for a in three if a.name == placed[USERS[0]])
    moved = [u for u in USERS if placed[u] == victim.name]
    wait_until(lambda: all(registered(redis_cluster, u) == victim.addr for u in moved), timeout=10)

    victim.stop()
    now = {u: served_by(ngx, u) for u in moved}
    assert victim.name not in now.values()
    wait_until(lambda: all(registered(redis_cluster, u) == addr[now[u]] for u in moved), timeout=10)

    victim.start()
    wait_until(lambda: all(served_by(ngx, u) == victim.name for u in moved), timeout=15, interval=0.3)
    wait_until(lambda: all(registered(redis_cluster, u) == victim.addr for u in moved), timeout=10)


def written(d) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{d.metrics_port}/metrics", timeout=5).read()
    m = re.search(r'^leveed_registry_entries_total\{result="ok"\} (\S+)$', text.decode(), re.M)
    return float(m.group(1)) if m else 0.0


def test_one_write_per_user_and_flush_interval(redis_cluster, make_leveed, make_nginx, three):
    d = make_leveed(redis_seeds=redis_cluster.seeds, metrics=True)
    # a long flush interval: every request below falls into one or two windows
    ngx = make_nginx(conf(three, registry="levee_sticky_registry on flush=5s;"), workers=1,
                     sock=d.socket_path)
    for _ in range(20):
        for u in USERS[:10]:
            served_by(ngx, u)
    wait_until(lambda: written(d) >= 10, timeout=15)
    assert written(d) <= 20  # 200 requests of 10 users: at most two windows
    assert pttl(redis_cluster, USERS[0]) > 3500 * 1000  # default ttl=1h


def test_standalone_leveed_keeps_the_registry_in_memory(make_leveed, make_nginx, three):
    d = make_leveed(metrics=True)
    ngx = make_nginx(conf(three), workers=1, sock=d.socket_path)
    for u in USERS[:5]:
        served_by(ngx, u)
    wait_until(lambda: written(d) == 5, timeout=10)


@pytest.mark.parametrize("registry, sidecar, reason", [
    ("levee_sticky_registry maybe;", "levee_sidecar unix:/tmp/x.sock;",
     'invalid levee_sticky_registry "maybe": expected on or off'),
    ("levee_sticky_registry on ttl=0;", "levee_sidecar unix:/tmp/x.sock;",
     'invalid levee_sticky_registry ttl "0"'),
    ("levee_sticky_registry on flush=2m;", "levee_sidecar unix:/tmp/x.sock;",
     'invalid levee_sticky_registry flush "2m"'),
    ("levee_sticky_registry on ttl=1s flush=1s;", "levee_sidecar unix:/tmp/x.sock;",
     "ttl must be at least twice the flush interval"),
    ("levee_sticky_registry on colour=red;", "levee_sidecar unix:/tmp/x.sock;",
     'invalid levee_sticky_registry parameter "colour=red"'),
    ("levee_sticky_registry off ttl=1s;", "levee_sidecar unix:/tmp/x.sock;",
     "levee_sticky_registry off takes no parameters"),
    ("levee_sticky_registry on;\n        levee_sticky_registry on;", "levee_sidecar unix:/tmp/x.sock;",
     '"levee_sticky_registry" directive is duplicate'),
])
def test_bad_registry_directive_fails_nginx_t(make_nginx, registry, sidecar, reason):
    n = make_nginx(conf([], registry=registry, sidecar=sidecar).replace(
        "upstream backend {", "upstream backend {\n        server 127.0.0.1:9;"), start=False)
    rc, err = n.test_config()
    assert rc != 0, err
    assert reason in err, err
    lines = n.config_text.splitlines()
    bad_line = max(i for i, l in enumerate(lines, 1) if "levee_sticky_registry" in l)
    assert f"in {n.conf_path}:{bad_line}" in err, err


@pytest.mark.parametrize("body, reason", [
    ("upstream backend { levee_sticky_registry on; server 127.0.0.1:9; }",
     'levee_sticky_registry needs levee_sticky in upstream "backend"'),
    ("upstream backend { levee_sticky key=$arg_uid; levee_sticky_registry on; server 127.0.0.1:9; }",
     'levee_sticky_registry in upstream "backend" needs levee_sidecar'),
])
def test_registry_needs_levee_sticky_and_levee_sidecar(make_nginx, body, reason):
    n = make_nginx(body + " server { listen 127.0.0.1:$port; location / { proxy_pass http://backend; } }",
                   start=False)
    rc, err = n.test_config()
    assert rc != 0, err
    assert reason in err, err
    assert f"{n.conf_path}:" in err, err
