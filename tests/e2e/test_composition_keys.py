"""Keys made by other modules: variables set by the rewrite module (`set`,
`if`) and by `map` give separate budgets per value, and heartbeat and sticky
keys read after realip at location level see the client's real address."""

from __future__ import annotations

import json

import pytest

from harness.composition import LIMITERS, PORTS, backend, limiter
from harness.wait import wait_until

BACK = "http://127.0.0.1:$back"
REALIP = "set_real_ip_from 127.0.0.1; real_ip_header X-Real-IP;"
CLIENTS = [f"203.0.113.{i}" for i in range(1, 41)]


def answers(ngx, requests: list[str]) -> list[int]:
    return [ngx.get(path)[0] for path in requests]


@pytest.mark.parametrize("kind", LIMITERS)
def test_keys_set_by_the_rewrite_module(make_nginx, kind):
    zone, use = limiter(kind, "$k", burst=0)
    ngx = make_nginx(backend(kind) + zone + f"""
    server {{
        listen 127.0.0.1:$port;
        location / {{
            set $k $arg_user;
            if ($arg_team) {{ set $k team-$arg_team; }}
            {use}
            proxy_pass {BACK};
        }}
    }}""", ports=PORTS)
    assert answers(ngx, ["/?user=alice", "/?user=alice", "/?user=bob",
                              "/?user=alice&team=red", "/?user=bob&team=red"]) == [200, 429, 200, 200, 429]


@pytest.mark.parametrize("kind", LIMITERS)
def test_keys_made_by_a_map(make_nginx, kind):
    zone, use = limiter(kind, "$tier", burst=0)
    ngx = make_nginx(backend(kind) + zone + f"""
    map $arg_user $tier {{ default $arg_user; ~^guest guests; }}
    server {{
        listen 127.0.0.1:$port;
        location / {{ {use} proxy_pass {BACK}; }}
    }}""", ports=PORTS)
    assert answers(ngx, ["/?user=guest1", "/?user=guest2", "/?user=alice", "/?user=alice"]) == [
        200, 429, 200, 429]


def test_heartbeat_key_after_realip_in_the_location_is_the_real_address(make_leveed, make_nginx):
    leveed = make_leveed()   # standalone: presence kept in leveed's memory
    ngx = make_nginx(f"""
    levee_sidecar unix:{leveed.socket_path};
    server {{
        listen 127.0.0.1:$port;
        location = /hb {{ {REALIP} levee_heartbeat key=$remote_addr room=$realip_remote_addr; }}
        location = /presence {{ levee_presence timeout=2s; }}
    }}""")
    for client in CLIENTS[:2]:
        assert ngx.get("/hb", headers={"X-Real-IP": client})[0] == 204

    def presence(args):
        status, _, body = ngx.get("/presence?" + args)
        return json.loads(body) if status == 200 else None

    # the proxy's address is what realip keeps in $realip_remote_addr
    room = wait_until(lambda: (r := presence("room=127.0.0.1")) and r["count"] == 2 and r,
                      timeout=15, message="both beats in leveed")
    assert sorted(room["members"]) == CLIENTS[:2]
    users = presence(f"users=127.0.0.1,{CLIENTS[0]},{CLIENTS[1]}")
    assert users["online"] == CLIENTS[:2]


def test_sticky_key_after_realip_in_the_location_is_the_real_address(make_nginx, make_upstream):
    apps = [make_upstream(f"s{i}") for i in range(1, 5)]
    servers = "".join(f"server {a.addr}; " for a in apps)
    ngx = make_nginx(f"""
    upstream by_addr {{ levee_sticky key=$remote_addr; {servers} }}
    upstream by_arg  {{ levee_sticky key=$arg_ip; {servers} }}
    server {{
        listen 127.0.0.1:$port;
        location /real {{ {REALIP} proxy_pass http://by_addr; }}
        location /arg {{ proxy_pass http://by_arg; }}
    }}""")

    def server_of(path, headers=None):
        status, _, body = ngx.get(path, headers=headers)
        assert status == 200, body
        return json.loads(body)["server"]

    by_real_ip = {c: server_of("/real", {"X-Real-IP": c}) for c in CLIENTS}
    assert by_real_ip == {c: server_of(f"/arg?ip={c}") for c in CLIENTS}
    assert len(set(by_real_ip.values())) == 4, "the clients are spread, not all on 127.0.0.1's server"
