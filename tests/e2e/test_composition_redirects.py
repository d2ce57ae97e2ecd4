"""A request is counted once however nginx moves it inside: internal
redirects (error_page, try_files, rewrite ... last, named locations) and
subrequests (auth_request, SSI include, mirror). With rate=1r/m burst=2
nodelay exactly three requests pass, then 429; a second count would refuse
earlier. Each case runs with Levee and with limit_req (which counts a
request once: its status lives on the main request), the decision reaches
the access log after a redirect, and the limit is decided before
auth_request asks anyone."""

from __future__ import annotations

import os

import pytest

from harness.composition import (LIMITERS, PORTS, backend, global_limiter, limiter, log_rows, statuses,
                                 wait_linked)

BACK = "http://127.0.0.1:$back"

# every location of the server inherits the server's limit
TARGETS = f"""
        location /fallback {{ proxy_pass {BACK}; }}
        location @named {{ proxy_pass {BACK}; }}
        location = /auth {{ internal; proxy_pass {BACK}/; }}
        location /inc/ {{ proxy_pass {BACK}/; }}
"""

# case: (path requested, its location)
CASES = {
    "error_page": ("/static/missing", "location /static/ { root $dir/www; error_page 404 = /fallback; }"),
    "error_page_named": ("/up404", f"location /up404 {{ proxy_pass {BACK}/404; proxy_intercept_errors on;"
                                   " error_page 404 = @named; }"),
    "try_files_named": ("/tf/missing", "location /tf/ { root $dir/www; try_files $uri @named; }"),
    "rewrite_last": ("/old", "location /old { rewrite ^ /fallback last; }"),
    "auth_request": ("/guarded", f"location /guarded {{ auth_request /auth; proxy_pass {BACK}; }}"),
    "ssi_include": ("/ssi/page.html", "location /ssi/ { ssi on; root $dir/www; }"),
    "mirror": ("/mirrored", f"location /mirrored {{ mirror /fallback; proxy_pass {BACK}; }}"),
}

KEY = {"X-Key": "k"}


def server(zones: str, server_extra: str, locations: str) -> str:
    return zones + """
    server {
        listen 127.0.0.1:$port;
        """ + server_extra + locations + """
    }
"""


def start(make_nginx, conf: str, **kw):
    """nginx with $dir/www holding an SSI page that includes /inc/part and
    an error page."""
    ngx = make_nginx(conf, ports=PORTS, workers=1, start=False, **kw)
    os.makedirs(f"{ngx.dir}/www/ssi")
    with open(f"{ngx.dir}/www/ssi/page.html", "w") as f:
        f.write('[<!--# include virtual="/inc/part" -->]')
    with open(f"{ngx.dir}/www/busy.html", "w") as f:
        f.write("busy\n")
    return ngx.start()


@pytest.mark.parametrize("kind", LIMITERS)
@pytest.mark.parametrize("case", CASES)
def test_counted_once(make_nginx, case, kind):
    path, location = CASES[case]
    zone, use = limiter(kind, "$http_x_key", burst=2)
    ngx = start(make_nginx, backend(kind) + server(zone, use, location + TARGETS))
    status, _, body = ngx.get(path, headers=KEY)
    assert (status, body) == (200, b"[ok\n]" if case == "ssi_include" else b"ok\n")
    assert statuses(ngx, 3, path, KEY) == [200, 200, 429]


@pytest.mark.parametrize("case", ["error_page", "error_page_named", "try_files_named", "auth_request"])
def test_counted_once_by_a_global_zone(make_nginx, make_leveed, case):
    leveed = make_leveed()   # standalone: the buckets in leveed's memory
    path, location = CASES[case]
    zone, use = global_limiter(leveed.socket_path, "$http_x_key", burst=2)
    ngx = start(make_nginx, backend("levee") + server(zone, use, location + TARGETS))
    wait_linked(leveed, ngx)
    got = statuses(ngx, 6, path, KEY)
    # 3 tokens; nginx may run one request ahead of its lease (docs/rate-limits.md)
    assert got.count(200) in (3, 4) and got[-2:] == [429, 429], got


@pytest.mark.parametrize("kind", LIMITERS)
def test_the_decision_reaches_the_access_log_after_a_redirect(make_nginx, kind):
    # the limit in the first location only: /fallback has none
    zone, use = limiter(kind, "$http_x_key", burst=2)
    ngx = start(make_nginx, backend(kind) + server(zone, "", f"""
        location /static/ {{ {use} root $dir/www; error_page 404 = /fallback; }}
        location /fallback {{ proxy_pass {BACK}; }}"""))
    assert statuses(ngx, 4, "/static/missing", KEY) == [200, 200, 200, 429]
    assert [(row[2], row[3]) for row in log_rows(ngx, 4)] == [
        ("PASSED", "/fallback"), ("PASSED", "/fallback"), ("PASSED", "/fallback"),
        ("REJECTED", "/static/missing")]


@pytest.mark.parametrize("kind", LIMITERS)
def test_a_refusal_answered_with_an_error_page_of_the_limited_server(make_nginx, kind):
    # the error page's location inherits the limit too
    zone, use = limiter(kind, "$http_x_key", burst=0)
    ngx = start(make_nginx, backend(kind) + server(zone, use + " error_page 429 /busy.html;", f"""
        location / {{ proxy_pass {BACK}; }}
        location = /busy.html {{ root $dir/www; }}"""))
    assert [ngx.get("/", headers=KEY)[::2] for _ in range(2)] == [(200, b"ok\n"), (429, b"busy\n")]
    assert [row[2] for row in log_rows(ngx, 2)] == ["PASSED", "REJECTED"]


@pytest.mark.parametrize("kind", LIMITERS)
@pytest.mark.parametrize("redirect", ["error_page 404 = /b;", "try_files $uri /b;"])
def test_a_limit_in_both_locations_applies_only_the_first(make_nginx, redirect, kind):
    zone_a, use_a = limiter(kind, "$http_x_key", burst=2, name="a")
    zone_b, use_b = limiter(kind, "$http_x_key", burst=0, name="b")
    ngx = start(make_nginx, backend(kind) + server(zone_a + zone_b, "", f"""
        location /a/ {{ {use_a} root $dir/www; {redirect} }}
        location /b {{ {use_b} proxy_pass {BACK}; }}"""))
    assert statuses(ngx, 4, "/a/missing", KEY) == [200, 200, 200, 429]
    # b was never charged: its one request passes, then it refuses
    assert statuses(ngx, 2, "/b", KEY) == [200, 429]


@pytest.mark.parametrize("kind", LIMITERS)
def test_the_limit_is_decided_before_auth_request(make_nginx, make_upstream, kind):
    auth = make_upstream("auth")
    zone, use = limiter(kind, "$http_x_key", burst=2)
    ngx = start(make_nginx, backend(kind) + server(zone, "", f"""
        location /guarded {{ {use} auth_request /auth; proxy_pass {BACK}; }}
        location = /auth {{ internal; proxy_pass http://{auth.addr}/auth; }}"""))
    assert statuses(ngx, 5, "/guarded", KEY) == [200, 200, 200, 429, 429]
    assert auth.count() == 3, "a refused request never reaches the auth server"
