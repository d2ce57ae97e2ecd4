"""Levee over HTTP/2 (cleartext, prior knowledge): limits per request, also
for concurrent streams of one connection, sticky routing as over HTTP/1.1,
heartbeats answered 204. Through curl (one connection per request, see
harness/h2.py) and through the harness's own client (many streams on one
connection)."""

from __future__ import annotations

import json

import pytest

from harness.composition import PORTS, backend, limiter
from harness.h2 import h2_get, h2_streams, require_h2_curl
from harness.proc import ComponentUnavailable
from harness.wait import wait_until

try:
    require_h2_curl()
except ComponentUnavailable as e:
    pytest.skip(str(e), allow_module_level=True)

UIDS = [f"user{i}" for i in range(24)]
H2_PORTS = PORTS + ("h1",)


def h2_conf(http_extra: str = "", locations: str = "") -> str:
    """`$port` speaks HTTP/2 only, `$h1` HTTP/1.1, to the same server."""
    zone, use = limiter("levee", "$http_x_key", burst=2)
    return backend("levee") + zone + http_extra + f"""
    server {{
        listen 127.0.0.1:$port http2;
        listen 127.0.0.1:$h1;
        location /limited {{ {use} levee_limit_headers on; proxy_pass http://127.0.0.1:$back; }}
        {locations}
    }}"""


def test_a_limit_over_h2(make_nginx):
    ngx = make_nginx(h2_conf(), ports=H2_PORTS)
    got = h2_get(ngx.port, ["/limited"] * 4, headers={"X-Key": "k"})
    assert [(r.status, r.version) for r in got] == [(200, "2")] * 3 + [(429, "2")]
    assert got[0].headers["ratelimit"] == '"z";r=2;t=60' and got[0].body == "ok\n"
    assert "retry-after" in got[3].headers
    # the same bucket whichever the protocol
    assert ngx.get("/limited", headers={"X-Key": "k"}, port_name="h1")[0] == 429


def test_concurrent_streams_of_one_connection_are_counted_one_each(make_nginx):
    ngx = make_nginx(h2_conf(), ports=H2_PORTS)
    got = h2_streams(ngx.port, ["/limited"] * 8, headers={"X-Key": "k"})
    assert sorted(status for status, _ in got) == [200] * 3 + [429] * 5
    assert got.count((200, b"ok\n")) == 3


def test_realip_in_the_location_over_h2(make_nginx):
    zone, use = limiter("levee", "$binary_remote_addr", burst=1, name="ip")
    ngx = make_nginx(h2_conf(zone, """
        location /by-ip { set_real_ip_from 127.0.0.1; real_ip_header X-Real-IP; """ + use + """
                          proxy_pass http://127.0.0.1:$back; }"""), ports=H2_PORTS)
    alice = [h2_get(ngx.port, ["/by-ip"], headers={"X-Real-IP": "203.0.113.1"})[0].status for _ in range(3)]
    assert alice == [200, 200, 429]
    assert h2_get(ngx.port, ["/by-ip"], headers={"X-Real-IP": "203.0.113.2"})[0].status == 200


def test_sticky_routes_h2_requests_as_http1_ones(make_nginx, make_upstream):
    apps = [make_upstream(f"s{i}") for i in range(1, 5)]
    servers = "".join(f"server {a.addr}; " for a in apps)
    ngx = make_nginx(h2_conf(f"upstream sticky {{ levee_sticky key=$arg_uid; {servers} }}",
                             "location /sticky { proxy_pass http://sticky; }"), ports=H2_PORTS)
    over_h2 = {u: json.loads(r.body)["server"]
               for u, r in zip(UIDS, h2_get(ngx.port, [f"/sticky?uid={u}" for u in UIDS]))}
    over_h1 = {u: json.loads(ngx.get(f"/sticky?uid={u}", port_name="h1")[2])["server"] for u in UIDS}
    assert over_h2 == over_h1
    assert len(set(over_h2.values())) > 1
    # and as concurrent streams of one connection
    streams = h2_streams(ngx.port, [f"/sticky?uid={u}" for u in UIDS])
    assert {u: json.loads(body)["server"] for u, (_, body) in zip(UIDS, streams)} == over_h2


def test_heartbeats_and_presence_over_h2(make_nginx, make_leveed):
    leveed = make_leveed()
    ngx = make_nginx(h2_conf(f"levee_sidecar unix:{leveed.socket_path};", """
        location = /hb { levee_heartbeat key=$arg_u room=$arg_room; }
        location = /presence { levee_presence timeout=2s; }"""), ports=H2_PORTS)
    beats = h2_get(ngx.port, ["/hb?u=alice&room=lobby", "/hb?u=bob&room=lobby"])
    assert [(r.status, r.version, r.body) for r in beats] == [(204, "2", "")] * 2
    assert beats[0].headers["levee-heartbeat-interval"] == "60"

    def lobby():
        r = h2_get(ngx.port, ["/presence?room=lobby"])[0]
        return r.status == 200 and json.loads(r.body)

    room = wait_until(lambda: (r := lobby()) and r["count"] == 2 and r, timeout=15,
                      message="both beats in leveed")
    assert sorted(room["members"]) == ["alice", "bob"]
