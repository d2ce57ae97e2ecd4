"""Tests of the e2e harness itself; none needs a Levee binary."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from harness import levee_keys, proc
from harness.mongo_db import MongoDatabase
from harness.mongo_wire import Int64, ObjectId, decode_bson, encode_bson
from harness.nginx import Nginx
from harness.ports import free_port
from harness.proc import ComponentUnavailable, pid_alive
from harness.redis_cluster import NSLOTS, key_hash_slot
from harness.tcp_relay import TcpRelay
from harness.wait import WaitTimeout, wait_until
from harness.ws_client import WebSocketClient

HERE = os.path.dirname(os.path.abspath(__file__))

PROXY_CONF = """
    upstream app { server $upstream; keepalive 8; }
    map $$http_upgrade $$connection_upgrade { default upgrade; '' close; }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Test-Through nginx;
        }
        location /ws {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 10s;
        }
        location = /plain { return 200 "plain\\n"; }
    }
"""


def gone(pids):
    return all(not pid_alive(p) for p in pids)


# ------------------------------------------------------------------ small pieces

def test_free_ports_are_distinct_and_bounded():
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    redis_ports = [free_port(max_port=55534, also_free=(10000,)) for _ in range(20)]
    assert all(p <= 55534 for p in redis_ports)
    assert not set(redis_ports) & set(ports)


def test_wait_until():
    t0 = time.monotonic()
    assert wait_until(lambda: time.monotonic() - t0 > 0.1 and "yes", timeout=2) == "yes"
    with pytest.raises(WaitTimeout):
        wait_until(lambda: False, timeout=0.2)


def test_bson_roundtrip():
    doc = {"_id": "u1", "i": 7, "big": 2**40, "neg": -3, "f": 1.5, "t": True, "fa": False,
           "n": None, "s": "héllo", "nested": {"a": [1, "two", {"three": 3.0}], "e": {}},
           "list": [], "oid": ObjectId("0123456789abcdef01234567"), "bin": b"\x00\x01",
           "when": dt.datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=dt.timezone.utc),
           "i64": Int64(5)}
    out = decode_bson(encode_bson(doc))
    assert out == doc
    assert list(out) == list(doc)  # order kept (command name first)
    assert isinstance(out["i64"], Int64) and isinstance(out["big"], int)


# ------------------------------------------------------------------ mongo

def test_mongo_without_server_skips_with_reason(monkeypatch):
    monkeypatch.delenv("LEVEE_MONGO_SERVER_CMD", raising=False)
    monkeypatch.setattr("harness.mongo_db.default_server_command", lambda port, d: None)
    db = MongoDatabase()
    with pytest.raises(ComponentUnavailable) as ei:
        db.start()
    db.stop()
    assert "LEVEE_MONGO_SERVER_CMD" in str(ei.value)
    assert isinstance(ei.value, pytest.skip.Exception)


def test_mongo_lifecycle(make_mongo_db):
    """MongoDatabase and the wire client against the real test database."""
    db = make_mongo_db()
    assert db.uri == f"mongodb://127.0.0.1:{db.port}/"
    assert db.hello()["ok"] == 1.0
    with db.client() as c:
        assert c.insert("levee", "beats", [{"_id": "u1", "n": 1}, {"_id": "u2", "n": 2}]) == 2
        assert c.find_one("levee", "beats", {"_id": "u2"}) == {"_id": "u2", "n": 2}
        assert c.count("levee", "beats") == 2
    pid = db.pids()[0]
    db.restart()
    assert not pid_alive(pid)
    assert db.find_one("levee", "beats", {"_id": "u1"}) == {"_id": "u1", "n": 1}
    db.pause()
    with pytest.raises(OSError):
        with db.client(timeout=0.3) as c:
            c.ping()
    db.resume()
    assert db.hello()["ok"] == 1.0
    pids = db.pids()
    db.stop()
    assert pids and gone(pids)


# ------------------------------------------------------------------ redis

def test_cluster_topology(redis_cluster):
    rc = redis_cluster
    masters = rc.masters()
    replicas = rc.replicas()
    assert len(masters) == 3 and len(replicas) == 3
    assert sum(hi - lo + 1 for _p, _id, r in masters for lo, hi in r) == NSLOTS
    master_ids = {mid for _p, mid, _r in masters}
    assert {m for _p, _id, m in replicas} == master_ids  # one replica per master
    assert len(rc.seeds) == 6 and rc.seeds_csv.count(",") == 5
    for port in rc.ports:
        info = rc.info_cluster(port)
        assert info["cluster_state"] == "ok"
        assert info["cluster_slots_assigned"] == str(NSLOTS)


def test_key_for_each_master(redis_cluster):
    rc = redis_cluster
    keys = rc.key_for_each_master("harness:")
    assert len(keys) == 3 and len(set(keys.values())) == 3
    for port, key in keys.items():
        assert rc.slot_of(key) == key_hash_slot(key)
        assert rc.master_for_key(key) == port
        # no -c: the owning master must accept it without a redirect
        assert rc.cli(port, "SET", key, f"v{port}", check=True) == "OK"
        assert rc.cli(port, "GET", key) == f"v{port}"
        other = next(p for p in keys if p != port)
        assert rc.cli(other, "GET", key).startswith("MOVED")
        assert rc.cli(other, "GET", key, cluster_mode=True) == f"v{port}"
        rc.cli(port, "DEL", key)


def test_migrate_slot_and_back(redis_cluster):
    rc = redis_cluster
    key = "harness:{migrate}"
    slot = key_hash_slot(key)
    src = rc.master_for_key(key)
    dst = next(p for p, _id, _r in rc.masters() if p != src)
    rc.cli(src, "SET", key, "x", check=True)
    try:
        assert rc.migrate_slot(slot, src, dst) == 1
        wait_until(lambda: rc.master_for_key(key) == dst, timeout=5)
        assert rc.cli(dst, "GET", key) == "x"
        assert rc.cli(src, "GET", key).startswith("MOVED")
    finally:
        owner = rc.master_for_key(key)
        if owner != src:
            rc.migrate_slot(slot, owner, src)
        rc.cli(src, "DEL", key)
    rc.wait_ok(10)
    assert rc.master_for_key(key) == src


def test_failover_restart_and_freeze(make_redis_cluster):
    rc = make_redis_cluster()
    pids = rc.pids()
    assert len(pids) == 6
    victim, _id, _r = rc.masters()[0]
    key = next(k for p, k in rc.key_for_each_master("fo:").items() if p == victim)
    rc.kill_node(victim)
    rc.wait_ok(20)  # a replica took over
    assert rc.master_for_key(key) != victim
    rc.restart_node(victim)
    rc.wait_ok(20)
    wait_until(lambda: victim in [p for p, _i, _m in rc.replicas()], timeout=20)
    # freeze a replica: the cluster stays ok for the others
    frozen = rc.replicas()[0][0]
    rc.freeze_node(frozen)
    rc.wait_ok(10)
    rc.thaw_node(frozen)
    rc.wait_ok(20, require_all=True)
    pids = rc.pids()
    rc.stop()
    assert gone(pids)
    rc.stop()  # idempotent


def test_tls_cluster_speaks_tls_only_and_wants_a_client_certificate(make_redis_cluster, tls_files):
    rc = make_redis_cluster(tls=tls_files, password="tls pw")
    masters = rc.masters()
    assert len(masters) == 3 and len(rc.replicas()) == 3
    for port in rc.ports:
        assert rc.info_cluster(port)["cluster_state"] == "ok"
    # CLUSTER SLOTS names the TLS ports: the only ones there are
    slots = rc.cli(rc.ports[0], "CLUSTER", "SLOTS", check=True).split()
    assert {str(p) for p, _i, _r in masters} <= set(slots), slots
    key = "harness:tls"
    assert rc.cli(rc.master_for_key(key), "SET", key, "over-tls", check=True) == "OK"
    assert rc.cli(rc.ports[0], "GET", key, cluster_mode=True) == "over-tls"

    port = rc.master_for_key(key)
    auth = ["-a", "tls pw", "--no-auth-warning"]

    def cli(*extra):
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), *auth, *extra, "GET", key],
                           capture_output=True, text=True, timeout=10)
        return r.stdout + r.stderr

    assert "over-tls" not in cli(), "plain TCP answered"
    assert "over-tls" not in cli("--tls", "--cacert", tls_files.ca), "answered a client without a certificate"
    assert "certificate verify failed" in cli("--tls", "--cacert", tls_files.other_ca,
                                              "--cert", tls_files.client_cert, "--key", tls_files.client_key)
    assert cli("--tls", "--cacert", tls_files.ca, "--cert", tls_files.client_cert,
               "--key", tls_files.client_key).strip() == "over-tls"


def test_tcp_relay_forwards_and_keeps_what_the_client_sent(make_upstream):
    app = make_upstream("relayed")
    with TcpRelay(app.port) as relay:
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as s:
                s.sendall(b"GET /via-relay HTTP/1.0\r\nHost: x\r\n\r\n")
                got = b""
                while chunk := s.recv(65536):
                    got += chunk
            assert got.startswith(b"HTTP/1.") and b"/via-relay" in got, got
        sent = relay.sent()
    assert len(sent) == 2 and all(c.startswith(b"GET /via-relay ") for c in sent), sent


# ------------------------------------------------------------------ nginx + upstream

def test_nginx_plain_proxy(make_nginx, make_upstream):
    app = make_upstream("alpha")
    ngx = make_nginx(PROXY_CONF, module_path=None, upstream=app.addr)
    assert "load_module" not in ngx.config_text
    assert ngx.test_config()[0] == 0
    st, hdrs, body = ngx.get("/hello?x=1", headers={"X-Who": "me"})
    assert st == 200, body
    data = json.loads(body)
    assert data["server"] == "alpha" and data["path"] == "/hello?x=1"
    assert data["headers"]["x-who"] == "me" and data["headers"]["x-test-through"] == "nginx"
    assert hdrs["x-upstream"] == "alpha"
    assert ngx.get("/plain")[2] == b"plain\n"
    assert app.count() == 1
    assert len(ngx.worker_pids()) == 2
    assert "GET /hello?x=1" in ngx.access_log()


def test_nginx_reload_and_upstream_restart(make_nginx, make_upstream):
    a, b = make_upstream("a"), make_upstream("b")
    ngx = make_nginx(PROXY_CONF, module_path=None, upstream=a.addr, workers=1)
    assert json.loads(ngx.get("/")[2])["server"] == "a"
    old = ngx.worker_pids()
    new = ngx.reload(upstream=b.addr)
    assert set(new).isdisjoint(old)
    assert json.loads(ngx.get("/")[2])["server"] == "b"
    b.restart()
    assert b.count() == 0
    assert json.loads(ngx.get("/")[2])["server"] == "b"
    with pytest.raises(proc.HarnessError):
        ngx.reload("this is not nginx syntax;")


def test_websocket_echo_through_nginx(make_nginx, make_upstream):
    app = make_upstream("ws")
    ngx = make_nginx(PROXY_CONF, module_path=None, upstream=app.addr)
    with WebSocketClient(ngx.port, "/ws") as ws:
        assert ws.response_headers["x-upstream"] == "ws"
        for msg in ("hello", "x" * 200, "y" * 70000):
            ws.send_text(msg)
            assert ws.recv_text() == msg
        ws.send_binary(b"\x00\xff")
        assert ws.recv() == (0x2, b"\x00\xff")


def test_bad_nginx_config_reports_error_log():
    ngx = Nginx("server { listen 127.0.0.1:$port; bogus_directive; }", None)
    rc, err = ngx.test_config()
    assert rc != 0 and "bogus_directive" in err
    with pytest.raises(proc.HarnessError, match="bogus_directive"):
        ngx.start()
    ngx.stop()


# ------------------------------------------------------------------ cleanup

def test_teardown_leaves_no_process():
    from harness.upstream_app import UpstreamApp

    with UpstreamApp("t") as app, Nginx(PROXY_CONF, None, upstream=app.addr) as ngx:
        pids = app.pids() + ngx.pids()
        assert len(pids) == 4 and all(pid_alive(p) for p in pids)
        assert ngx.get("/")[0] == 200
    assert gone(pids)
    ngx.stop(); app.stop()  # idempotent


def test_sigterm_kills_children_and_removes_tmp(tmp_path):
    """A test process killed by SIGTERM takes its components with it."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {HERE!r})
        from harness.upstream_app import UpstreamApp
        from harness import proc
        app = UpstreamApp("x").start()
        print(app.proc.pid, proc.run_dir(), flush=True)
        time.sleep(60)
    """)
    env = dict(os.environ)
    env.pop("LEVEE_KEEP_TMP", None)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                         env=env, start_new_session=True)
    try:
        line = p.stdout.readline().split()
        child, tmp = int(line[0]), line[1]
        assert pid_alive(child) and os.path.isdir(tmp)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=10)
        assert p.returncode == -signal.SIGTERM
        wait_until(lambda: not pid_alive(child), timeout=5)
        assert not os.path.exists(tmp)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def test_leveed_wrapper(make_leveed):
    d = make_leveed(redis_seeds=["127.0.0.1:1", "127.0.0.1:2"], mongo_uri="mongodb://127.0.0.1:1/",
                    extra_config="log_level info\nmax_connections 9\n")
    conf = open(d.config_path).read()
    assert "redis 127.0.0.1:1,127.0.0.1:2\n" in conf and "mongo mongodb://127.0.0.1:1/\n" in conf
    assert conf.count("log_level") == 1 and "max_connections 9" in conf
    d.wait_for_log(r"info started .*redis=127\.0\.0\.1:1", timeout=5)
    d.connect().close()
    pid = d.pid
    d.restart()
    assert d.pid != pid and not pid_alive(pid)
    d.stop()
    assert "stopped exit_code=0" in d.log() and not pid_alive(d.proc.pid)
    d.stop()


# ---------------------------------------------------------------- levee_keys

def test_levee_keys_come_from_the_cpp_header():
    """The harness's key names are sidecar/redis/keys.hpp's, not a copy."""
    with open(levee_keys.KEYS_HPP, encoding="utf-8") as f:
        header = f.read()
    for key, prefix in [(levee_keys.limit_key("z", "k", 1, 2), levee_keys.LIMIT_PREFIX),
                        (levee_keys.presence_key("alice"), levee_keys.PRESENCE_PREFIX),
                        (levee_keys.room_key("lobby"), levee_keys.ROOM_PREFIX),
                        (levee_keys.registry_key("alice"), levee_keys.REGISTRY_PREFIX),
                        (levee_keys.probe_key("p"), levee_keys.PROBE_PREFIX)]:
        assert key.startswith(prefix) and f'"{prefix}"' in header, (key, prefix)
    assert f'"{levee_keys.PRESENCE_TTLS_KEY}"' in header
    # the ids, not the prefix, are the hash tags
    assert key_hash_slot(levee_keys.registry_key("alice")) == key_hash_slot("alice")
    assert key_hash_slot(levee_keys.presence_key("alice", 60000)) == \
        key_hash_slot(levee_keys.presence_key("alice", 180000))


def test_levee_keys_fails_loudly_when_a_name_is_gone(tmp_path):
    with open(levee_keys.KEYS_HPP, encoding="utf-8") as f:
        header = f.read()
    renamed = tmp_path / "keys.hpp"
    renamed.write_text(header.replace("kRegistryPrefix", "kStickyPrefix"))
    with pytest.raises(ImportError, match="kRegistryPrefix"):
        levee_keys._constants(str(renamed))
