"""Global rate limits when Redis (or leveed itself) stops answering while the
link to leveed stays up: leveed answers a lease it cannot serve within its
deadline as failed, the module takes the key out of global counting, and
levee_limit_fail decides (open: the global part passes while local limits
still refuse; closed: 503); once leases succeed again, global counting
resumes."""

from __future__ import annotations

import http.client
import signal
import time

from harness.wait import wait_until

PORTS = ("port", "back")

CONF = """
    levee_sidecar unix:$sock;
    levee_limit_zone g key=$arg_k rate=1r/m burst=4 scope=global sync=100ms size=1m;
    levee_limit_zone l key=$arg_k rate=1r/m burst=9 size=1m;
    server {
        listen 127.0.0.1:$back;
        location / { return 200 "ok\\n"; }
    }
    server {
        listen 127.0.0.1:$port;
        location /open {
            levee_limit l nodelay;
            levee_limit g nodelay;
            levee_limit_fail open;
            proxy_pass http://127.0.0.1:$back;
        }
        location /closed {
            levee_limit g nodelay;
            levee_limit_fail closed;
            proxy_pass http://127.0.0.1:$back;
        }
    }
"""


def statuses(ngx, path: str, n: int) -> list[int]:
    conn = http.client.HTTPConnection("127.0.0.1", ngx.port, timeout=10)
    out = []
    for _ in range(n):
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        out.append(r.status)
    conn.close()
    return out


def first(ngx, path: str, accept, timeout: float) -> float:
    """Seconds until `path` answers a status for which `accept` holds."""
    t0 = time.monotonic()
    wait_until(lambda: accept(statuses(ngx, path, 1)[0]), timeout=timeout, interval=0.05)
    return time.monotonic() - t0


def check_outage_and_recovery(ngx, stop, resume, label):
    # healthy: the global bucket (5 tokens, +1 run ahead) refuses
    assert statuses(ngx, "/open?k=a", 12).count(429) >= 5
    assert statuses(ngx, "/closed?k=b", 8).count(429) >= 2

    stop()
    try:
        t_closed = first(ngx, "/closed?k=b", lambda s: s == 503, timeout=5)
        # open: once the key is out of global counting its global part passes,
        # and the local zone (10 tokens, about 6 spent) still refuses
        got = []
        for _ in range(30):
            got += statuses(ngx, "/open?k=a", 1)
            time.sleep(0.1)
        assert 200 in got and got[-5:] == [429] * 5, got
        assert statuses(ngx, "/closed?k=b", 3) == [503] * 3
    finally:
        resume()
    print(f"{label}: 503 after {t_closed:.2f}s, open: {got}")

    # back to global counting: what is left in b's bucket (5 tokens at 1r/m),
    # then 429, never 503
    t_back = first(ngx, "/closed?k=b", lambda s: s != 503, timeout=30)
    got = statuses(ngx, "/closed?k=b", 10)
    assert 503 not in got and got.count(429) >= 4 and got[-1] == 429, got
    print(f"{label}: global counting back {t_back:.2f}s after the resume")


def test_redis_frozen_follows_levee_limit_fail_then_counts_again(make_redis_cluster, make_leveed,
                                                                  make_nginx):
    rc = make_redis_cluster()
    d = make_leveed(redis_seeds=rc.seeds)
    ngx = make_nginx(CONF, ports=PORTS, workers=1, sock=d.socket_path)
    # every master (and its replica, so that nothing fails over) stops answering
    # while leveed's connections to them stay open
    nodes = list(rc.ports)

    def freeze():
        for p in nodes:
            rc.freeze_node(p)

    def thaw():
        for p in nodes:
            rc.thaw_node(p)
        rc.wait_ok(timeout=30)

    check_outage_and_recovery(ngx, freeze, thaw, "redis frozen")


def test_leveed_frozen_follows_levee_limit_fail_then_counts_again(make_leveed, make_nginx):
    # standalone leveed, stopped: the link stays up but no lease is answered
    d = make_leveed()
    ngx = make_nginx(CONF, ports=PORTS, workers=1, sock=d.socket_path)
    check_outage_and_recovery(ngx, lambda: d.send_signal(signal.SIGSTOP),
                              lambda: d.send_signal(signal.SIGCONT), "leveed frozen")
