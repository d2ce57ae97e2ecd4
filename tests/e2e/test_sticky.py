"""levee_sticky: an upstream balancing method that keeps each key (user) on
one server — the same server from every worker, restart and nginx instance,
the next choice while it is down, back when it recovers, WebSocket upgrades
included; bad directives fail `nginx -t` with file, line and reason."""

from __future__ import annotations

import json
import threading

import pytest

from harness.wait import wait_until
from harness.ws_client import WebSocketClient

UIDS = [f"user{i}" for i in range(200)]


def upstream_block(apps, sticky="levee_sticky key=$arg_uid;", extra="", server_params=""):
    servers = "\n".join(f"        server {a.addr}{server_params};" for a in apps)
    return f"""
    upstream backend {{
        {sticky}
{servers}
        {extra}
    }}
    server {{
        listen 127.0.0.1:$port;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout;
            proxy_connect_timeout 1s;
        }}
        location /ws/ {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 30s;
        }}
    }}
"""


def server_of(ngx, uid: str) -> str:
    status, _, body = ngx.get(f"/?uid={uid}")
    assert status == 200, body
    return json.loads(body)["server"]


def mapping(ngx, uids=UIDS) -> dict[str, str]:
    return {u: server_of(ngx, u) for u in uids}


@pytest.fixture
def four(make_upstream):
    return [make_upstream(n) for n in ("s1", "s2", "s3", "s4")]


# ---------------------------------------------------------------- determinism

@pytest.mark.parametrize("method", ["maglev", "ketama", "rendezvous"])
def test_same_key_same_server_from_every_worker(make_nginx, four, method):
    ngx = make_nginx(upstream_block(four, f"levee_sticky key=$arg_uid method={method};"), workers=2)
    first = mapping(ngx)
    # every request is a new connection, so both workers answer some
    for _ in range(2):
        assert mapping(ngx) == first
    counts = {s: list(first.values()).count(s) for s in ("s1", "s2", "s3", "s4")}
    assert all(c >= 20 for c in counts.values()), counts


def test_two_instances_and_a_restart_agree(make_nginx, four):
    conf = upstream_block(four, "levee_sticky key=$arg_uid;", extra="keepalive 8;")
    a = make_nginx(conf, workers=2)
    # the other instance lists the same servers in another order, with a zone
    b = make_nginx(upstream_block(list(reversed(four)), "levee_sticky key=$arg_uid;",
                                  extra="zone backend 64k; keepalive 8;"), workers=1)
    ma = mapping(a)
    assert mapping(b) == ma
    a.stop()
    c = make_nginx(conf, workers=3)
    assert mapping(c) == ma


# ---------------------------------------------------------------- weights, down, backup

def test_weights_are_honoured(make_nginx, make_upstream):
    light, heavy = make_upstream("light"), make_upstream("heavy")
    conf = f"""
    upstream backend {{
        levee_sticky key=$arg_uid;
        server {light.addr} weight=1;
        server {heavy.addr} weight=3;
    }}
    server {{ listen 127.0.0.1:$port; location / {{ proxy_pass http://backend; }} }}
"""
    ngx = make_nginx(conf)
    m = mapping(ngx, [f"w{i}" for i in range(800)])
    share = list(m.values()).count("heavy") / len(m)
    assert 0.68 <= share <= 0.82, share


def test_down_server_keys_move_to_next_choice_only(make_nginx, four):
    ngx = make_nginx(upstream_block(four))
    before = mapping(ngx)
    conf = upstream_block(four).replace(f"server {four[1].addr};", f"server {four[1].addr} down;")
    ngx.reload(conf)
    after = mapping(ngx)
    for u in UIDS:
        if before[u] == "s2":
            assert after[u] != "s2"
        else:
            assert after[u] == before[u], u
    # and back
    ngx.reload(upstream_block(four))
    assert mapping(ngx) == before


def test_deleting_a_server_moves_only_its_keys_with_rendezvous(make_nginx, four):
    # Deleting the line (instead of marking it down) rebuilds the method's
    # state from the shorter list; rendezvous still moves only that server's
    # keys (Maglev also moves ~0.24% of the others': see docs/sticky.md).
    sticky = "levee_sticky key=$arg_uid method=rendezvous;"
    ngx = make_nginx(upstream_block(four, sticky=sticky))
    before = mapping(ngx)
    ngx.reload(upstream_block([four[0], four[2], four[3]], sticky=sticky))
    after = mapping(ngx)
    moved = [u for u in UIDS if after[u] != before[u]]
    assert moved and all(before[u] == "s2" for u in moved), moved
    assert all(after[u] != "s2" for u in UIDS)
    ngx.reload(upstream_block(four, sticky=sticky))
    assert mapping(ngx) == before


def test_backup_servers_take_over_sticky_when_primaries_fail(make_nginx, make_upstream):
    primary = make_upstream("p1")
    b1, b2 = make_upstream("b1"), make_upstream("b2")
    conf = f"""
    upstream backend {{
        levee_sticky key=$arg_uid;
        server {primary.addr} max_fails=1 fail_timeout=30s;
        server 127.0.0.1:1 max_fails=1 fail_timeout=30s;
        server {b1.addr} backup;
        server {b2.addr} backup;
    }}
    server {{ listen 127.0.0.1:$port; location / {{ proxy_pass http://backend; proxy_connect_timeout 1s; }} }}
"""
    ngx = make_nginx(conf, workers=1)
    uids = UIDS[:60]
    assert set(mapping(ngx, uids).values()) <= {"p1"}
    primary.stop()
    on_backup = mapping(ngx, uids)
    assert set(on_backup.values()) == {"b1", "b2"}
    assert mapping(ngx, uids) == on_backup  # sticky among backups too


# ---------------------------------------------------------------- failure and recovery

@pytest.mark.parametrize("zone", ["", "zone backend 64k;"])
def test_failing_server_keys_go_to_next_choice_and_come_back(make_nginx, four, zone):
    ngx = make_nginx(upstream_block(four, extra=zone, server_params=" max_fails=1 fail_timeout=1s"),
                     workers=2)
    before = mapping(ngx)
    victims = [u for u in UIDS if before[u] == "s3"]
    assert victims
    four[2].stop()
    during = mapping(ngx)
    for u in UIDS:
        if before[u] == "s3":
            assert during[u] != "s3"
        else:
            assert during[u] == before[u], u
    # the next choice is itself stable (not round robin)
    assert mapping(ngx, victims) == {u: during[u] for u in victims}
    # spread over the survivors rather than all onto one
    assert len({during[u] for u in victims}) >= 2
    four[2].start()
    wait_until(lambda: all(server_of(ngx, u) == "s3" for u in victims), timeout=15, interval=0.3)
    assert mapping(ngx) == before


def test_fallback_off_fails_instead_of_moving(make_nginx, four):
    ngx = make_nginx(upstream_block(four, "levee_sticky key=$arg_uid fallback=off;",
                                    server_params=" max_fails=1 fail_timeout=30s"), workers=1)
    before = mapping(ngx)
    four[0].stop()
    for u in UIDS[:50]:
        status, _, body = ngx.get(f"/?uid={u}")
        if before[u] == "s1":
            assert status == 502, body
        else:
            assert status == 200 and json.loads(body)["server"] == before[u]


def test_no_key_falls_back_to_round_robin(make_nginx, four):
    ngx = make_nginx(upstream_block(four), workers=1)
    seen = {json.loads(ngx.get("/")[2])["server"] for _ in range(8)}
    assert len(seen) == 4


# ---------------------------------------------------------------- bounded load

def test_bounded_load_spreads_a_hot_key(make_nginx, four):
    def burst(ngx, n=16):
        out = []

        def one():
            _, _, body = ngx.get("/?uid=hot&__delay=0.6", timeout=10)
            out.append(json.loads(body)["server"])

        ts = [threading.Thread(target=one) for _ in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return out

    plain = make_nginx(upstream_block(four, extra="zone backend 64k;"), workers=2)
    assert len(set(burst(plain))) == 1
    bounded = make_nginx(upstream_block(four, "levee_sticky key=$arg_uid bounded_load=1.25;",
                                        extra="zone backend 64k;"), workers=2)
    got = burst(bounded)
    counts = {s: got.count(s) for s in set(got)}
    # 16 in flight over 4 servers: at most ceil(1.25 * 16 / 4) = 5 each
    assert max(counts.values()) <= 5, counts
    # the hot key's home still serves it when idle
    assert server_of(bounded, "hot") == server_of(plain, "hot")


# ---------------------------------------------------------------- websocket

def test_websocket_user_reconnects_to_the_same_instance(make_nginx, make_upstream):
    apps = [make_upstream(n) for n in ("ws1", "ws2", "ws3")]
    ngx = make_nginx(upstream_block(apps, "levee_sticky key=$arg_uid;"), workers=2)
    placed = {}
    for i in range(24):
        uid = f"ws-user-{i}"
        for attempt in range(3):
            with WebSocketClient(ngx.port, f"/ws/chat?uid={uid}") as ws:
                ws.send_text(f"hello {uid}")
                assert ws.recv_text() == f"hello {uid}"
                where = ws.response_headers["x-upstream"]
            placed.setdefault(uid, where)
            assert where == placed[uid], (uid, attempt)
        # plain HTTP requests of the user reach the same instance
        assert server_of(ngx, uid) == placed[uid]
    assert len(set(placed.values())) == 3


# ---------------------------------------------------------------- nginx -t

@pytest.mark.parametrize("directive, reason", [
    ("levee_sticky;", 'invalid number of arguments in "levee_sticky" directive'),
    ("levee_sticky method=maglev;", "levee_sticky needs key="),
    ("levee_sticky key=;", 'invalid levee_sticky key "key=": empty'),
    ("levee_sticky key=uid;", "must contain a variable"),
    ("levee_sticky key=$arg_uid method=crc32;", 'invalid levee_sticky method "crc32"'),
    ("levee_sticky key=$arg_uid bounded_load=0.9;", 'invalid levee_sticky bounded_load "0.9"'),
    ("levee_sticky key=$arg_uid bounded_load=abc;", 'invalid levee_sticky bounded_load "abc"'),
    ("levee_sticky key=$arg_uid fallback=maybe;", 'invalid levee_sticky fallback "maybe"'),
    ("levee_sticky key=$arg_uid bounded_load=1.25 fallback=off;", "bounded_load needs fallback=next"),
    ("levee_sticky key=$arg_uid colour=red;", 'invalid levee_sticky parameter "colour=red"'),
    ("levee_sticky key=$arg_uid;\n        levee_sticky key=$arg_uid;", '"levee_sticky" directive is duplicate'),
])
def test_bad_levee_sticky_fails_nginx_t_with_file_line_and_reason(make_nginx, directive, reason):
    conf = f"""
    upstream backend {{
        {directive}
        server 127.0.0.1:9;
    }}
    server {{ listen 127.0.0.1:$port; location / {{ proxy_pass http://backend; }} }}
"""
    n = make_nginx(conf, start=False)
    rc, err = n.test_config()
    assert rc != 0, err
    assert reason in err, err
    lines = n.config_text.splitlines()
    bad_line = max(i for i, l in enumerate(lines, 1) if "levee_sticky" in l)
    assert f"in {n.conf_path}:{bad_line}" in err, err


def test_levee_sticky_outside_upstream_is_refused(make_nginx):
    n = make_nginx("server { listen 127.0.0.1:$port; location / { levee_sticky key=$arg_uid; } }",
                   start=False)
    rc, err = n.test_config()
    assert rc != 0
    assert '"levee_sticky" directive is not allowed here' in err, err


def test_good_config_with_every_option_passes_nginx_t(make_nginx):
    conf = """
    upstream backend {
        zone backend 64k;
        levee_sticky key=$cookie_uid method=rendezvous bounded_load=1.5 fallback=next;
        server 127.0.0.1:9 weight=2 max_fails=3 fail_timeout=5s max_conns=100;
        server 127.0.0.1:10 down;
        server 127.0.0.1:11 backup;
        keepalive 16;
    }
    server { listen 127.0.0.1:$port; location / { proxy_pass http://backend; } }
"""
    n = make_nginx(conf, start=False)
    rc, err = n.test_config()
    assert rc == 0, err
