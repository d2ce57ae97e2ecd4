"""Hostile keys against the rate-limit zones (issue 14, item 4): keys over
max_key hashed or refused, binary and control bytes in keys and heartbeat
rooms, a flood of forged keys held to the zone's budget of new keys (local
and global), counted in levee_status."""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
import uuid

from harness.leveed import wait_linked
from harness.levee_keys import LIMIT_PREFIX, room_key
from harness.raw_http import raw_get
from harness.wait import wait_until

PORTS = ("port", "back")

LOCAL = """
    log_format limit '$status $levee_limit_status';
    access_log $dir/limit.log limit;
    levee_limit_zone long   key=$http_x_key rate=1r/m burst=1 max_key=32;
    levee_limit_zone refuse key=$http_x_key rate=1r/m burst=1 max_key=32 long_key=refuse;
    levee_limit_zone bin    key=$arg_k rate=1r/m burst=1;
    levee_limit_zone small  key=$arg_k rate=1r/m burst=2 size=32k new_keys=5r/m;
    server {
        listen 127.0.0.1:$back;
        access_log off;
        location / { return 200 "ok\\n"; }
    }
    server {
        listen 127.0.0.1:$port;
        proxy_set_header Connection "";
        location /long/   { levee_limit long nodelay; proxy_pass http://127.0.0.1:$back; }
        location /refuse/ {
            levee_limit refuse nodelay;
            levee_limit_status 431;
            proxy_pass http://127.0.0.1:$back;
        }
        location /bin/    { levee_limit bin nodelay; proxy_pass http://127.0.0.1:$back; }
        location /small/  { levee_limit small nodelay; proxy_pass http://127.0.0.1:$back; }
        location = /metrics { access_log off; levee_status; }
    }
"""


def metric(ngx, series: str) -> float:
    status, _, body = ngx.get("/metrics")
    assert status == 200, body
    m = re.search(r"^" + re.escape(series) + r" (\S+)$", body.decode(), re.M)
    assert m, f"{series} not in\n{body.decode()}"
    return float(m.group(1))


def flood(ngx, paths, threads: int = 2) -> dict[int, int]:
    """GETs every path once over keep-alive connections; counts by status."""
    counts: dict[int, int] = {}
    lock = threading.Lock()
    share = [paths[i::threads] for i in range(threads)]

    def run(mine):
        local: dict[int, int] = {}
        conn = http.client.HTTPConnection("127.0.0.1", ngx.port, timeout=30)
        try:
            for p in mine:
                conn.request("GET", p)
                r = conn.getresponse()
                r.read()
                local[r.status] = local.get(r.status, 0) + 1
        finally:
            conn.close()
        with lock:
            for k, v in local.items():
                counts[k] = counts.get(k, 0) + v

    ts = [threading.Thread(target=run, args=(s,)) for s in share]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return counts


# ---------------------------------------------------------------- long keys

def test_a_long_key_is_hashed_into_a_bucket_of_its_own(make_nginx):
    ngx = make_nginx(LOCAL, ports=PORTS, workers=2)
    same = "x" * 100  # alike far beyond max_key=32
    a, b = {"X-Key": same + "a"}, {"X-Key": same + "b"}
    assert [ngx.get("/long/", headers=a)[0] for _ in range(3)] == [200, 200, 429]
    assert [ngx.get("/long/", headers=b)[0] for _ in range(3)] == [200, 200, 429]
    # at max_key the key is kept as it is
    assert ngx.get("/long/", headers={"X-Key": "k" * 32})[0] == 200
    assert metric(ngx, 'levee_limit_long_keys_total{zone="long",action="hash"}') == 6
    assert metric(ngx, 'levee_limit_long_keys_total{zone="long",action="refuse"}') == 0
    assert metric(ngx, 'levee_limit_keys{zone="long"}') == 3


def test_a_key_in_levees_own_namespace_is_not_the_overflow_entry(make_nginx):
    ngx = make_nginx(LOCAL, ports=PORTS, workers=1)
    # a client naming the overflow entry gets a digest of its own
    evil = {"X-Key": "~levee:overflow"}
    assert [ngx.get("/long/", headers=evil)[0] for _ in range(3)] == [200, 200, 429]
    assert metric(ngx, 'levee_limit_long_keys_total{zone="long",action="hash"}') == 0


def test_refuse_mode_answers_the_configured_code_and_counts(make_nginx):
    ngx = make_nginx(LOCAL, ports=PORTS, workers=2)
    status, headers, _ = ngx.get("/refuse/", headers={"X-Key": "y" * 33})
    assert status == 431
    assert "retry-after" not in {k.lower() for k in headers}, headers  # waiting does not help
    assert ngx.get("/refuse/", headers={"X-Key": "y" * 32})[0] == 200
    assert metric(ngx, 'levee_limit_long_keys_total{zone="refuse",action="refuse"}') == 1
    assert metric(ngx, 'levee_limit_requests_total{zone="refuse",outcome="rejected"}') == 1
    assert metric(ngx, 'levee_limit_keys{zone="refuse"}') == 1
    assert re.search(r'limiting requests, the key is 33 bytes, more than max_key=32 of zone "refuse"',
                     ngx.error_log())
    wait_until(lambda: open(f"{ngx.dir}/limit.log").read().startswith("431 REJECTED\n"), timeout=5)


# ---------------------------------------------------------------- binary keys

def test_binary_and_control_bytes_make_keys_like_any_other(make_nginx):
    ngx = make_nginx(LOCAL, ports=PORTS, workers=2)
    # $arg_k is the raw argument: %00, %0a and %ff are kept as written,
    # each its own key
    for k in ("%00", "%0a", "%ff", "%00%0a%ff", "%25"):
        assert [ngx.get(f"/bin/?k={k}")[0] for _ in range(3)] == [200, 200, 429], k
    # raw bytes above 0x7f in a URI are bytes of the key
    for k in (b"\xff", b"\xfe\x80"):
        path = "/bin/?k=" + k.decode("latin-1")
        assert [raw_get(ngx.port, path)[0] for _ in range(3)] == [200, 200, 429], k
    # nginx itself refuses a raw control byte in a URI, before any limit
    assert raw_get(ngx.port, "/bin/?k=a\x7fb")[0] == 400
    # control bytes nginx lets through in a header value: keys of their own
    for k in ("a\x01b", "a\x02b", "a\x1bb", "a\tb"):
        got = [raw_get(ngx.port, "/long/", headers={"X-Key": k})[0] for _ in range(3)]
        assert got == [200, 200, 429], (k, got)
    assert "alert" not in ngx.error_log() and "crit" not in ngx.error_log()


# ---------------------------------------------------------------- floods

def test_a_flood_of_forged_keys_leaves_an_established_client_alone(make_nginx):
    ngx = make_nginx(LOCAL, ports=PORTS, workers=2)
    assert ngx.get("/small/?k=alice")[0] == 200  # 2 of her 3 left
    started = time.monotonic()
    counts = flood(ngx, [f"/small/?k=forged-{i}" for i in range(20000)])
    elapsed = time.monotonic() - started
    # 5 new keys at once, then one every 12 s; the rest share the overflow
    # entry (3 requests at once, then one every 60 s)
    admitted_keys = 5 + int(elapsed / 12) + 1
    assert counts.get(200, 0) <= admitted_keys + 3 + int(elapsed / 60) + 1, (counts, elapsed)
    assert sum(counts.values()) == 20000
    over = metric(ngx, 'levee_limit_new_keys_over_budget_total{zone="small"}')
    assert over >= 20000 - admitted_keys, (over, elapsed)
    assert metric(ngx, 'levee_limit_evictions_total{zone="small"}') == 0
    # Alice's bucket is the one she left: 2 more, then refused
    assert [ngx.get("/small/?k=alice")[0] for _ in range(3)] == [200, 200, 429]
    print(f"\nflood of 20000 keys in {elapsed:.1f} s: {counts}, over budget {over:.0f}")


GLOBAL = """
    levee_sidecar unix:$sock;
    levee_limit_zone $zone key=$arg_k rate=1r/m burst=1 scope=global sync=100ms size=1m new_keys=5r/m;
    server {
        listen 127.0.0.1:$back;
        access_log off;
        location / { return 200 "ok\\n"; }
    }
    server {
        listen 127.0.0.1:$port;
        proxy_set_header Connection "";
        location / { levee_limit $zone nodelay; proxy_pass http://127.0.0.1:$back; }
        location = /metrics { levee_status; }
    }
"""


def test_a_flood_of_forged_keys_asks_redis_for_a_budget_of_buckets(redis_cluster, make_leveed, make_nginx):
    zone = "flood" + uuid.uuid4().hex[:8]
    d = make_leveed(redis_seeds=redis_cluster.seeds)
    ngx = make_nginx(GLOBAL, ports=PORTS, workers=2, sock=d.socket_path, zone=zone)
    wait_linked(d, ngx)
    started = time.monotonic()
    counts = flood(ngx, [f"/?k=forged-{i}" for i in range(2000)])
    elapsed = time.monotonic() - started
    admitted_keys = 5 + int(elapsed / 12) + 1
    over = metric(ngx, f'levee_limit_new_keys_over_budget_total{{zone="{zone}"}}')
    assert over >= 2000 - admitted_keys, (over, counts)

    def buckets() -> list[str]:
        found = []
        for port, _, _ in redis_cluster.masters():
            out = redis_cluster.cli(port, "KEYS", f"{LIMIT_PREFIX}{{{zone}:*")
            # a bucket's lease ledger (BUCKET:leases) is no bucket of its own
            found += [k for k in out.split() if k and not k.endswith(":leases")]
        return found

    # every admitted key and the overflow entry have been leased once the
    # sync timer has run: wait for the overflow's bucket, then count
    wait_until(lambda: any("~levee:overflow" in k for k in buckets()), timeout=10)
    got = buckets()
    assert len(got) <= admitted_keys + 1, (got, elapsed)
    print(f"\nflood of 2000 keys in {elapsed:.1f} s: {counts}; {len(got)} buckets in Redis")


# ---------------------------------------------------------------- heartbeat rooms

HEARTBEAT = """
    levee_sidecar unix:$sock;
    levee_heartbeat_zone size=4m;
    server {
        listen 127.0.0.1:$port;
        location = /hb { levee_heartbeat key=$arg_u room=$arg_room ttl=60s interval=30s flush=100ms; }
        location = /presence { levee_presence timeout=2s; }
    }
"""


def test_binary_and_control_bytes_in_heartbeat_rooms(redis_cluster, make_leveed, make_nginx):
    d = make_leveed(redis_seeds=redis_cluster.seeds)
    ngx = make_nginx(HEARTBEAT, workers=2, sock=d.socket_path)
    wait_linked(d, ngx)
    tag = uuid.uuid4().hex[:6]
    # $arg_room is the raw argument: "%00" is three printable bytes, a room
    # of its own, found again by its escaped name
    for room in ("%00", "%0a", "%ff"):
        assert ngx.get(f"/hb?u=alice-{tag}&room={tag}{room}")[0] == 204, room
    for room in ("%00", "%0a", "%ff"):
        def members(room=room):
            status, _, body = ngx.get(f"/presence?room={tag}{room.replace('%', '%25')}")
            assert status == 200, body
            got = json.loads(body)  # valid JSON whatever the room
            return got if got["count"] == 1 else None
        got = wait_until(members, timeout=10)
        assert got == {"room": f"{tag}{room}", "count": 1, "members": [f"alice-{tag}"]}
        assert redis_cluster.cli(redis_cluster.master_for_key(room_key(f"{tag}{room}")), "EXISTS",
                                 room_key(f"{tag}{room}")).strip() == "1"
    # raw bytes above 0x7f (nginx itself refuses raw control bytes in a URI)
    # are refused at the edge, never stored
    status, _, body = raw_get(ngx.port, "/hb?u=bob&room=" + b"\xff\xfe".decode("latin-1"))
    assert status == 400 and body == b"invalid room\n", (status, body)
    # a decoded NUL or newline in a query is refused with JSON that parses
    for bad in ("%00", "%0a", "a%0d%0ab"):
        status, _, body = ngx.get(f"/presence?room={bad}")
        assert status == 400, body
        assert "error" in json.loads(body), body
