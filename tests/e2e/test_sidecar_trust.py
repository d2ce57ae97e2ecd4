"""Who leveed serves and what it lets them ask (issue 13): the socket serves
only the peers it allows (SO_PEERCRED), a connection leases only the zones
its hello declared, and probes go through the root-only admin socket."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
import urllib.request

import pytest

from harness import frames
from harness.leveed import wait_linked
from harness.wait import wait_until

DAY_US = 86400 * 1_000_000
YEAR_US = 365 * DAY_US

# A client run as nobody:nogroup (uid and gid 65534) with no supplementary
# groups: it connects, says hello and prints what came back in hex (nothing
# when leveed closed the connection at once).
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
SAY_HELLO = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
got = b""
try:
    s.sendall(bytes.fromhex(sys.argv[2]))
    while len(got) < 4 or len(got) < 4 + int.from_bytes(got[:4], "big"):
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
except (BrokenPipeError, ConnectionResetError):
    pass  # closed by leveed before or while it read
print(got.hex())
"""


def metric(leveed, name: str, labels: str = "") -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{leveed.metrics_port}/metrics", timeout=5).read().decode()
    m = re.search(rf"^{name}{re.escape(labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def hello_as_nobody(path: str) -> bytes:
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    r = subprocess.run(NOBODY + [python, "-c", SAY_HELLO, path, frames.hello().hex()],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return bytes.fromhex(r.stdout.strip())


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching to uid 65534 needs root")


# ------------------------------------------------------------ peer credentials
@needs_root
def test_a_peer_the_socket_does_not_allow_is_closed_at_once_while_nginx_works(make_leveed, make_nginx):
    # The socket's group is nogroup: the file's mode lets uid 65534 connect,
    # only leveed's peer check stands in its way.
    leveed = make_leveed(metrics=True, settings={"socket_group": "nogroup", "allow_users": "root"})
    ngx = make_nginx("""
        levee_sidecar unix:$sock;
        levee_limit_zone trust key=$arg_k rate=1r/m burst=9 scope=global sync=100ms size=1m;
        server { listen 127.0.0.1:$back; location / { return 200 "ok\\n"; } }
        server {
            listen 127.0.0.1:$port;
            location / { levee_limit trust nodelay; proxy_pass http://127.0.0.1:$back; }
        }
    """, workers=2, ports=("port", "back"), sock=leveed.socket_path)
    wait_linked(leveed, ngx)

    assert hello_as_nobody(leveed.socket_path) == b"", "leveed served uid 65534"
    assert metric(leveed, "leveed_peers_refused_total", '{socket="nginx"}') == 1
    assert re.search(r"peer_refused .*pid=\d+ uid=65534 gid=65534", leveed.log()), leveed.log()[-2000:]

    # nginx's workers (root here) still lease and answer
    assert ngx.get("/?k=a")[0] == 200
    wait_until(lambda: metric(leveed, "leveed_limit_leases_total", '{result="ok"}') >= 1, timeout=10,
               message="a lease granted to nginx")
    assert metric(leveed, "leveed_limit_leases_total", '{result="undeclared"}') == 0

    # allowed by a reload (allow_groups is live): the same client is served
    leveed.reload({"allow_groups": "nogroup"})
    reply = hello_as_nobody(leveed.socket_path)
    assert frames.HELLO_REPLY in frames.decode(reply[4:]), reply.hex()
    assert metric(leveed, "leveed_peers_refused_total", '{socket="nginx"}') == 1


@needs_root
def test_the_admin_socket_is_root_only_even_when_its_mode_is_opened(make_leveed):
    leveed = make_leveed(metrics=True)
    st = os.stat(leveed.admin_socket_path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
    os.chmod(leveed.admin_socket_path, 0o666)  # a mistake leveed must survive
    assert hello_as_nobody(leveed.admin_socket_path) == b""
    assert metric(leveed, "leveed_peers_refused_total", '{socket="admin"}') == 1


# ------------------------------------------------------------ the admin socket
def test_probe_is_refused_on_nginx_socket_and_served_on_the_admin_socket(make_leveed):
    leveed = make_leveed(metrics=True)
    probe = frames.frame(2, frames.PROBE, [(1, "k"), (2, "v")])
    with frames.RawClient(leveed.socket_path) as c:
        c.send(frames.hello())
        assert c.receive()[1] == frames.HELLO_REPLY
        c.send(probe)
        rid, body, reply = c.receive()
        assert (rid, body) == (2, frames.PROBE_REPLY)
        assert b"administrative" in reply[2][0] and 1 not in reply, reply
        # refused, not closed: the connection still answers
        c.send(frames.frame(3, frames.PRESENCE_QUERY, [(1, "alice")]))
        assert c.receive()[:2] == (3, frames.PRESENCE_QUERY_REPLY)
    assert metric(leveed, "leveed_requests_refused_total", '{reason="admin_only"}') == 1

    with frames.RawClient(leveed.admin_socket_path) as c:
        c.send(frames.hello())
        assert c.receive()[1] == frames.HELLO_REPLY
        c.send(probe)
        rid, body, reply = c.receive()
        assert (rid, body) == (2, frames.PROBE_REPLY)
        # standalone: served, and it says there is no store to probe
        assert b"no Redis Cluster configured" in reply[2][0], reply


# ------------------------------------------------------------ declared zones
def grants(reply) -> list[dict[int, list]]:
    return [frames.decode(g) for g in reply.get(1, [])]


def test_a_lease_gets_only_the_bucket_its_hello_declared(make_leveed):
    leveed = make_leveed(metrics=True)
    period_us = 100_000  # 10r/s
    with frames.RawClient(leveed.socket_path) as c:
        c.send(frames.hello(limit_zones=[("z", period_us, 10)]))
        assert c.receive()[1] == frames.HELLO_REPLY
        c.send(frames.lease([
            ("z", b"declared", period_us, 10, 4),
            ("z", b"victim", DAY_US, 1, 1),        # 1 token a day: valid, not declared
            ("z", b"victim", YEAR_US, 1, 1),       # 1 token a year
            ("other", b"victim", period_us, 10, 1),  # a zone not declared
        ], request_id=2))
        rid, body, reply = c.receive()
    assert (rid, body) == (2, frames.LIMIT_LEASE_REPLY)
    g = grants(reply)
    assert g[0].get(3) == [4] and 4 not in g[0], g[0]
    for refused in g[1:]:
        assert refused.get(4) == [1] and 3 not in refused, refused
    assert b"declared at hello" in reply[2][0], reply
    assert metric(leveed, "leveed_limit_leases_total", '{result="undeclared"}') == 3


def test_a_registry_batch_needs_a_declared_registry(make_leveed):
    leveed = make_leveed(metrics=True)
    batch = frames.frame(2, frames.REGISTRY_BATCH, [(1, 60000), (2, [(1, b"alice"), (2, "10.9.9.9:80")])])
    with frames.RawClient(leveed.socket_path) as c:
        c.send(frames.hello())
        assert c.receive()[1] == frames.HELLO_REPLY
        c.send(batch)
        rid, body, reply = c.receive()
        assert (rid, body) == (2, frames.REGISTRY_ACK)
        assert 1 not in reply and b"no registry with ttl 60000" in reply[3][0], reply
    with frames.RawClient(leveed.socket_path) as c:
        c.send(frames.hello(registry_ttl_ms=[60000]))
        assert c.receive()[1] == frames.HELLO_REPLY
        c.send(batch)
        _, _, reply = c.receive()
        assert reply.get(1) == [1] and reply.get(2) == [1], reply
    assert metric(leveed, "leveed_requests_refused_total", '{reason="undeclared_registry"}') == 1


# ------------------------------------------------------------ a peer that repeats a refusal
BURST = 2000
REPEATED = {
    # an undeclared lease, refused key by key by the limit service
    "lease": dict(hello=frames.hello(limit_zones=[("z", 100_000, 10)]),
                  request=lambda rid: frames.lease([("z", b"victim", DAY_US, 1, 1)], request_id=rid),
                  reply=frames.LIMIT_LEASE_REPLY, event="limit_lease_undeclared",
                  counter=("leveed_limit_leases_total", '{result="undeclared"}')),
    # a registry batch of a ttl the hello did not declare, refused whole by the dispatcher
    "registry": dict(hello=frames.hello(),
                     request=lambda rid: frames.frame(rid, frames.REGISTRY_BATCH,
                                                      [(1, 60000), (2, [(1, b"alice"), (2, "10.9.9.9:80")])]),
                     reply=frames.REGISTRY_ACK, event="request_refused",
                     counter=("leveed_requests_refused_total", '{reason="undeclared_registry"}')),
}


@pytest.mark.parametrize("kind", sorted(REPEATED))
def test_a_refusal_repeated_thousands_of_times_is_counted_each_time_and_logged_once_a_second(make_leveed, kind):
    r = REPEATED[kind]
    leveed = make_leveed(metrics=True)
    rid = 1
    with frames.RawClient(leveed.socket_path) as c:
        c.send(r["hello"])
        assert c.receive()[1] == frames.HELLO_REPLY
        started = time.monotonic()
        # in rounds, so that neither side's socket buffer fills while the other waits
        for _ in range(BURST // 200):
            c.send(b"".join(r["request"](rid + i) for i in range(1, 201)))
            for i in range(1, 201):
                assert c.receive()[:2] == (rid + i, r["reply"])
            rid += 200
        elapsed = time.monotonic() - started
        burst_lines = re.findall(rf"^\S+ warn {r['event']} ", leveed.log(), re.M)
        assert metric(leveed, *r["counter"]) == BURST
        # one line a second at most (the first at once)
        assert 1 <= len(burst_lines) <= elapsed + 1, f"{len(burst_lines)} lines in {elapsed:.1f} s"

        # past the interval, the next refusal is logged and says how many were not
        time.sleep(1.1)
        c.send(r["request"](rid + 1))
        assert c.receive()[:2] == (rid + 1, r["reply"])
    not_logged = [int(n) for n in
                  re.findall(rf"^\S+ warn {r['event']} .* not_logged=(\d+)$", leveed.log(), re.M)]
    assert len(not_logged) == len(burst_lines) + 1, leveed.log()[-2000:]
    assert not_logged[0] == 0
    # every refusal is either a line or counted in the next one
    assert len(not_logged) + sum(not_logged) == BURST + 1, not_logged
    assert metric(leveed, *r["counter"]) == BURST + 1
