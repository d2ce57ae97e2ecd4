"""Local rate limits (issue 4): levee_limit_zone / levee_limit in shared
memory, 429 with Retry-After, the RateLimit header fields, dry runs,
$levee_limit_status, LRU eviction, and the `nginx -t` errors."""

from __future__ import annotations

import contextlib
import http.client
import re

import pytest

from harness.wait import wait_until

# The limited locations proxy to a server block of the same nginx: `return`
# would answer in the rewrite phase, before any limit runs.
BACKEND = """
    log_format limit '$msec $status $levee_limit_status $http_x_key';
    access_log $dir/limit.log limit;
    server {
        listen 127.0.0.1:$back;
        access_log off;
        location / { return 200 "ok\\n"; }
    }
"""

PORTS = ("port", "back")


def conf(zones: str, locations: str, server_extra: str = "") -> str:
    return BACKEND + zones + """
    server {
        listen 127.0.0.1:$port;
        proxy_set_header Connection "";
        """ + server_extra + locations + """
    }
"""


def statuses(ngx, n: int, path: str = "/", headers: dict | None = None) -> list[int]:
    return [ngx.get(path, headers=headers)[0] for _ in range(n)]


@contextlib.contextmanager
def keepalive(ngx):
    conn = http.client.HTTPConnection("127.0.0.1", ngx.port, timeout=10)

    def get(path: str, headers: dict) -> int:
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        r.read()
        return r.status

    try:
        yield get
    finally:
        conn.close()


def limit_log(ngx) -> list[list[str]]:
    with open(f"{ngx.dir}/limit.log") as f:
        return [line.split() for line in f.read().splitlines()]


# ---------------------------------------------------------------- decisions

def test_burst_then_429_with_retry_after_and_headers(make_nginx):
    ngx = make_nginx(conf(
        "levee_limit_zone perkey key=$http_x_key rate=1r/m burst=3 size=1m;",
        "location / { levee_limit perkey nodelay; levee_limit_headers on; proxy_pass http://127.0.0.1:$back; }"),
        ports=PORTS)
    h = {"X-Key": "alice"}
    got = [ngx.get("/", headers=h) for _ in range(5)]
    assert [s for s, _, _ in got] == [200, 200, 200, 200, 429]

    _, first, _ = got[0]
    assert first["RateLimit-Policy"] == '"perkey";q=1;w=60'
    assert first["RateLimit"] == '"perkey";r=3;t=60'
    _, fourth, _ = got[3]
    assert fourth["RateLimit"] == '"perkey";r=0;t=240'

    status, limited, _ = got[4]
    assert limited["RateLimit"].startswith('"perkey";r=0;t=')
    # the next token comes one period (60 s) after the bucket emptied
    assert 55 <= int(limited["Retry-After"]) <= 60

    # another key has its own bucket
    assert ngx.get("/", headers={"X-Key": "bob"})[0] == 200


def test_headers_are_off_by_default_and_the_status_is_configurable(make_nginx):
    ngx = make_nginx(conf(
        "levee_limit_zone z key=$http_x_key rate=1r/m size=1m;",
        "location / { levee_limit z; levee_limit_status 503; proxy_pass http://127.0.0.1:$back; }"),
        ports=PORTS)
    s1, h1, _ = ngx.get("/", headers={"X-Key": "k"})
    s2, h2, _ = ngx.get("/", headers={"X-Key": "k"})
    assert (s1, s2) == (200, 503)
    assert "RateLimit" not in h1 and "RateLimit-Policy" not in h1
    assert "Retry-After" in h2


def test_an_empty_key_is_not_limited(make_nginx):
    ngx = make_nginx(conf(
        "levee_limit_zone z key=$http_x_key rate=1r/m size=1m;",
        "location / { levee_limit z; proxy_pass http://127.0.0.1:$back; }"),
        ports=PORTS)
    assert statuses(ngx, 5) == [200] * 5
    assert statuses(ngx, 2, headers={"X-Key": "x"}) == [200, 429]


def test_one_bucket_shared_by_all_workers(make_nginx):
    ngx = make_nginx(conf(
        "levee_limit_zone z key=$http_x_key rate=1r/m burst=9 size=1m;",
        "location / { levee_limit z nodelay; proxy_pass http://127.0.0.1:$back; }"),
        ports=PORTS, workers=2)
    # a new connection per request: both workers take some of them
    got = statuses(ngx, 40, headers={"X-Key": "shared"})
    assert got.count(200) == 10 and got.count(429) == 30
    assert len({pid for pid in ngx.worker_pids()}) == 2


def test_several_limits_per_location_and_inheritance(make_nginx):
    ngx = make_nginx(conf(
        """levee_limit_zone user key=$http_x_key rate=1r/m burst=1 size=1m;
           levee_limit_zone all  key=$server_name$host rate=1r/m burst=3 size=1m;""",
        """location / { proxy_pass http://127.0.0.1:$back; }
           location /own/ { levee_limit all nodelay; proxy_pass http://127.0.0.1:$back/; }""",
        server_extra="levee_limit user nodelay;"),
        ports=PORTS)
    # / inherits the server's limit only
    assert statuses(ngx, 3, "/", {"X-Key": "a"}) == [200, 200, 429]
    # /own/ has its own list, which replaces the inherited one (as limit_req)
    assert statuses(ngx, 5, "/own/", {"X-Key": "a"}) == [200, 200, 200, 200, 429]


def test_a_refusal_gives_back_what_earlier_limits_took(make_nginx):
    ngx = make_nginx(conf(
        """levee_limit_zone wide   key=$http_x_key rate=1r/m burst=4 size=1m;
           levee_limit_zone narrow key=$http_x_key rate=1r/m size=1m;""",
        """location / { levee_limit wide nodelay; levee_limit narrow nodelay;
                        proxy_pass http://127.0.0.1:$back; }
           location /wide { levee_limit wide nodelay; proxy_pass http://127.0.0.1:$back; }"""),
        ports=PORTS)
    assert statuses(ngx, 4, "/", {"X-Key": "k"}) == [200, 429, 429, 429]
    # `wide` was charged once, not four times
    assert statuses(ngx, 5, "/wide", {"X-Key": "k"}) == [200, 200, 200, 200, 429]


def test_dry_run_passes_and_says_so_in_the_status_variable(make_nginx):
    ngx = make_nginx(conf(
        """levee_limit_zone z key=$http_x_key rate=1r/m size=1m;
           levee_limit_zone d key=$http_x_key rate=1r/m size=1m;""",
        """location /real { levee_limit z; proxy_pass http://127.0.0.1:$back; }
           location /dry  { levee_limit d dry_run; proxy_pass http://127.0.0.1:$back; }
           location /none { proxy_pass http://127.0.0.1:$back; }"""),
        ports=PORTS)
    assert statuses(ngx, 3, "/dry", {"X-Key": "k"}) == [200, 200, 200]
    assert statuses(ngx, 2, "/real", {"X-Key": "k"}) == [200, 429]
    assert ngx.get("/none", headers={"X-Key": "k"})[0] == 200
    wait_until(lambda: len(limit_log(ngx)) == 6, timeout=5)
    # two workers write the log: lines may come in another order
    assert sorted(row[2] for row in limit_log(ngx)) == sorted(
        ["PASSED", "REJECTED_DRY_RUN", "REJECTED_DRY_RUN", "PASSED", "REJECTED", "-"])


def test_without_nodelay_the_burst_is_delayed_not_refused(make_nginx):
    ngx = make_nginx(conf(
        "levee_limit_zone z key=$http_x_key rate=20r/s burst=3 size=1m;",
        "location / { levee_limit z; proxy_pass http://127.0.0.1:$back; }"),
        ports=PORTS)
    assert statuses(ngx, 4, headers={"X-Key": "k"}) == [200] * 4


# ---------------------------------------------------------------- limit_req parity

def test_burst_on_levee_limit_overrides_the_zone_per_location(make_nginx):
    ngx = make_nginx(conf(
        "levee_limit_zone z key=$http_x_key rate=1r/m burst=1 size=1m;",
        """location /zone  { levee_limit z nodelay; proxy_pass http://127.0.0.1:$back; }
           location /wide  { levee_limit z burst=4 nodelay; proxy_pass http://127.0.0.1:$back; }"""),
        ports=PORTS)
    assert statuses(ngx, 3, "/zone", {"X-Key": "a"}) == [200, 200, 429]
    assert statuses(ngx, 6, "/wide", {"X-Key": "b"}) == [200] * 5 + [429]


def test_delay_passes_the_first_excess_requests_at_once_then_delays(make_nginx):
    # as limit_req's delay=2: the first request and 2 excess pass at once,
    # the next ones wait until they conform (and are logged as delayed)
    ngx = make_nginx(conf(
        "levee_limit_zone z key=$http_x_key rate=2r/s burst=5 size=1m;",
        "location / { levee_limit z delay=2; proxy_pass http://127.0.0.1:$back; }"),
        ports=PORTS, workers=1)
    with keepalive(ngx) as get:
        assert [get("/", {"X-Key": "k"}) for _ in range(5)] == [200] * 5
    rows = wait_until(lambda: len(limit_log(ngx)) == 5 and limit_log(ngx), timeout=5)
    assert [r[2] for r in rows] == ["PASSED"] * 3 + ["DELAYED"] * 2
    assert re.search(r'\[warn\].* delaying request, excess: \d+\.\d{3}, by zone "z", client: 127\.0\.0\.1',
                     ngx.error_log()), ngx.error_log()


def test_status_values_and_log_lines_follow_limit_req(make_nginx):
    ngx = make_nginx(conf(
        """levee_limit_zone z key=$http_x_key rate=1r/m burst=1 size=1m;
           levee_limit_zone s key=$http_x_key rate=1r/s burst=2 size=1m;""",
        """location /real { levee_limit z nodelay; proxy_pass http://127.0.0.1:$back; }
           location /dry  { levee_limit z nodelay; levee_limit_dry_run on;
                            levee_limit_log_level notice; proxy_pass http://127.0.0.1:$back; }
           location /slow { levee_limit s; levee_limit_dry_run on; proxy_pass http://127.0.0.1:$back; }"""),
        ports=PORTS, workers=1)
    with keepalive(ngx) as get:
        assert [get("/real", {"X-Key": "r"}) for _ in range(3)] == [200, 200, 429]
        assert [get("/dry", {"X-Key": "d"}) for _ in range(3)] == [200, 200, 200]
        # a dry run does not delay: all three at once
        assert [get("/slow", {"X-Key": "s"}) for _ in range(2)] == [200, 200]
    rows = wait_until(lambda: len(limit_log(ngx)) == 8 and limit_log(ngx), timeout=5)
    assert [r[2] for r in rows] == ["PASSED", "PASSED", "REJECTED",
                                    "PASSED", "PASSED", "REJECTED_DRY_RUN",
                                    "PASSED", "DELAYED_DRY_RUN"]
    log = ngx.error_log()
    # one line per refused request, at levee_limit_log_level (error by default),
    # naming the zone and the client, in limit_req's words
    assert re.search(r'\[error\].* limiting requests, excess: \d+\.\d{3} by zone "z", client: 127\.0\.0\.1', log), log
    assert re.search(r'\[notice\].* limiting requests, dry run, excess: \d+\.\d{3} by zone "z", client: ', log), log
    # delays one level below: notice for error... info stays info
    assert re.search(r'\[warn\].* delaying request, dry run, excess: \d+\.\d{3}, by zone "s"', log), log
    assert len(re.findall("limiting requests", log)) == 2


def test_a_daily_quota(make_nginx):
    # 100 messages per user per day
    ngx = make_nginx(conf(
        "levee_limit_zone daily key=$http_x_key rate=100r/d burst=99 size=1m;",
        "location / { levee_limit daily nodelay; levee_limit_headers on; proxy_pass http://127.0.0.1:$back; }"),
        ports=PORTS, workers=1)
    with keepalive(ngx) as get:
        assert [get("/", {"X-Key": "u1"}) for _ in range(100)] == [200] * 100
    status, headers, _ = ngx.get("/", headers={"X-Key": "u1"})
    assert status == 429
    # the next message comes one period (864 s) after the bucket emptied
    assert 860 <= int(headers["Retry-After"]) <= 864, headers
    assert headers["RateLimit-Policy"] == '"daily";q=100;w=86400'
    assert ngx.get("/", headers={"X-Key": "u2"})[0] == 200


# ---------------------------------------------------------------- memory

def test_a_full_zone_evicts_the_least_recently_used_key(make_nginx):
    ngx = make_nginx(conf(
        "levee_limit_zone small key=$http_x_key rate=1r/m size=32k;",
        "location / { levee_limit small; proxy_pass http://127.0.0.1:$back; }"),
        ports=PORTS, workers=1)
    assert ngx.get("/", headers={"X-Key": "first"})[0] == 200
    assert ngx.get("/", headers={"X-Key": "first"})[0] == 429
    # 4-byte keys: entries of 28 + 4 bytes, exactly one 32-byte slab chunk
    with keepalive(ngx) as get:
        for i in range(1200):
            get("/", {"X-Key": f"{i:04d}"})
    m = wait_until(lambda: re.search(
        r'levee_limit_zone "small" is full: \d+ keys evicted .*?, (\d+) in all; \d+ idle keys '
        r'reclaimed; (\d+) keys tracked in (\d+) bytes', ngx.error_log()), timeout=5)
    evicted, tracked, size = map(int, m.groups())
    assert evicted > 0
    # all of the zone counted: slab pages, hash buckets, headers
    assert size / tracked <= 64 + 4, (size, tracked)
    # "first" was the least recently used: it was evicted, its bucket is new
    assert ngx.get("/", headers={"X-Key": "first"})[0] == 200


# ---------------------------------------------------------------- nginx -t

@pytest.mark.parametrize("body, reason", [
    ("levee_limit_zone z key=$http_x_key rate=1r/s;\n"
     "server { listen 127.0.0.1:$port; location / { levee_limit nope; } }",
     'unknown levee_limit_zone "nope"'),
    ("levee_limit_zone z key=$http_x_key rate=10/s;",
     'invalid rate "rate=10/s"'),
    ("levee_limit_zone z key=$http_x_key rate=10r/w;",
     'invalid rate "rate=10r/w": the unit must be r/s, r/m, r/h or r/d'),
    ("levee_limit_zone z key=$http_x_key rate=2000000r/s;",
     'invalid rate "rate=2000000r/s": the supported rates are 1r/d to 1000000r/s'),
    ("levee_limit_zone z key=$http_x_key rate=1r/d burst=400;",
     'levee_limit_zone "z": the bucket, (burst + 1) / rate, would span more than 365 days'),
    ("levee_limit_zone z key=$http_x_key rate=1r/s;\nlevee_limit_zone z key=$http_x_key rate=2r/s;",
     'levee_limit_zone "z" is already declared in '),
    ("levee_limit_zone z key=$http_x_key rate=1r/s scope=global;",
     'levee_limit_zone "z" has scope=global, which needs levee_sidecar in the http block'),
    ("levee_limit_zone z key=$http_x_key rate=1r/s;\n"
     "server { listen 127.0.0.1:$port; location / { levee_limit z burst=x; } }",
     'invalid burst "burst=x"'),
    ("levee_limit_zone z key=$http_x_key rate=1r/s;\n"
     "server { listen 127.0.0.1:$port; location / { levee_limit z delay=1 nodelay; } }",
     'invalid parameter "nodelay"'),
    ("levee_limit_zone z key=$http_x_key rate=1r/d;\n"
     "server { listen 127.0.0.1:$port; location / { levee_limit z burst=500; } }",
     'levee_limit "z": the bucket, (burst + 1) / rate, would span more than 365 days'),
    ("levee_sidecar unix:/tmp/x.sock;\n"
     "levee_limit_zone z key=$http_x_key rate=1r/s scope=global;\n"
     "server { listen 127.0.0.1:$port; location / { levee_limit z burst=5; } }",
     'burst= and delay= are set on the levee_limit_zone of a scope=global zone'),
    ("levee_limit_dry_run maybe;",
     'invalid value "maybe"'),
    ("levee_limit_log_level loud;",
     'invalid value "loud"'),
    ("levee_limit_zone z key=$http_x_key rate=1r/s size=4k;",
     'levee_limit_zone "z" is too small: "size=4k" leaves no room for one key'),
    # the table links entries by 32-bit offsets into the zone
    ("levee_limit_zone z key=$http_x_key rate=1r/s size=4096m;",
     'levee_limit_zone "z" is too large: "size=4096m" is beyond what the table\'s 32-bit offsets '
     'address; the size is from 32k to 4095m'),
    # every lease entry carries the name: it bounds the lease frame
    ("levee_limit_zone " + "n" * 257 + " key=$http_x_key rate=1r/s;",
     'levee_limit_zone name "' + "n" * 257 + '" is longer than 256 bytes'),
    ("levee_limit_zone z rate=1r/s;",
     'levee_limit_zone "z" needs key= and rate='),
    ("levee_limit_zone z key=$http_x_key rate=1r/s scope=galactic;",
     'invalid parameter "scope=galactic"'),
    ("levee_limit_zone z key=$http_x_key rate=1r/s scope=global sync=0s;",
     'invalid parameter "sync=0s"'),
    ("levee_limit_zone z key=$http_x_key rate=1r/s;\n"
     "server { listen 127.0.0.1:$port; location / { levee_limit z; levee_limit z; } }",
     '"levee_limit" directive is duplicate'),
    ("levee_limit_status 200;",
     'value must be between 400 and 599'),
    ("levee_limit_fail maybe;",
     'invalid value "maybe"'),
    # an entry's key length is 16 bits
    ("levee_limit_zone z key=$http_x_key rate=1r/s max_key=70000;",
     'invalid max_key "max_key=70000": the longest key kept is from 1 to 65535 bytes'),
    ("levee_limit_zone z key=$http_x_key rate=1r/s long_key=truncate;",
     'invalid parameter "long_key=truncate"'),
    ("levee_limit_zone z key=$http_x_key rate=1r/s new_keys=lots;",
     'invalid new_keys "new_keys=lots"'),
])
def test_bad_configuration_fails_nginx_t_with_file_line_and_reason(make_nginx, body, reason):
    n = make_nginx(body + "\nserver { listen 127.0.0.1:$back; location / { return 204; } }",
                   ports=PORTS, start=False)
    rc, err = n.test_config()
    assert rc != 0, err
    assert reason in err, err
    lines = n.config_text.splitlines()
    bad_line = max(i for i, l in enumerate(lines, 1) if "levee_limit" in l)
    assert f"in {n.conf_path}:{bad_line}" in err, err


def test_a_good_configuration_passes_nginx_t(make_nginx):
    n = make_nginx(conf(
        """levee_sidecar unix:/run/levee/leveed.sock;
           levee_limit_zone a key=$binary_remote_addr rate=100r/s burst=50 size=16m;
           levee_limit_zone b key=$http_x_user_id rate=1000r/m scope=global sync=50ms;
           levee_limit_zone c key=$http_x_user_id rate=100r/d burst=99;
           levee_limit_zone d key=$http_x_user_id rate=500r/h;
           levee_limit_zone e key=$http_x_user_id rate=1r/s max_key=1k long_key=refuse new_keys=10r/m;""",
        """location / { levee_limit a burst=10 delay=5; levee_limit b nodelay dry_run;
                        levee_limit c nodelay; levee_limit d burst=20;
                        levee_limit_fail closed; levee_limit_dry_run off;
                        levee_limit_log_level warn;
                        levee_limit_headers on; levee_limit_status 429;
                        proxy_pass http://127.0.0.1:$back; }"""),
        ports=PORTS, start=False)
    rc, err = n.test_config()
    assert rc == 0, err
