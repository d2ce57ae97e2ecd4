"""Levee after realip: clients behind one proxy address (127.0.0.1) get a
budget each when realip gives their real address, whether realip is set at
http, server or location level, from a header or from the PROXY protocol;
a header from an untrusted address moves nothing. Each case runs with Levee
and with limit_req: both must decide alike."""

from __future__ import annotations

import pytest

from harness.composition import LIMITERS, PORTS, backend, global_limiter, limiter, log_rows, wait_linked
from harness.raw_http import proxy_protocol_get

LEVELS = ("http", "server", "location")
ALICE, BOB = "203.0.113.1", "203.0.113.2"


def realip_conf(kind: str, limit: tuple[str, str], level: str, realip: str, listen: str = "") -> str:
    """``limit`` (zone, use) in the location, ``realip`` at ``level``."""
    zone, use = limit
    at = {lvl: (realip if lvl == level else "") for lvl in LEVELS}
    return backend(kind) + zone + at["http"] + """
    server {
        listen 127.0.0.1:$port""" + listen + """;
        """ + at["server"] + """
        location / {
            """ + at["location"] + use + """
            proxy_pass http://127.0.0.1:$back;
        }
    }
"""


def by_header(ngx, client: str) -> int:
    return ngx.get("/", headers={"X-Real-IP": client})[0]


def by_proxy_protocol(ngx, client: str) -> int:
    return proxy_protocol_get(ngx.port, client)[0]


def two_clients(ngx, send) -> list[int]:
    """Alice three times (burst=1: the third is refused), then Bob."""
    return [send(ngx, ALICE) for _ in range(3)] + [send(ngx, BOB)]


def logged(ngx) -> list[tuple[str, str]]:
    """(address, decision) of the four requests, as the access log has them."""
    return [(row[0], row[2]) for row in log_rows(ngx, 4)]


@pytest.mark.parametrize("kind", LIMITERS)
@pytest.mark.parametrize("level", LEVELS)
def test_real_ip_from_a_header_gives_each_client_its_budget(make_nginx, level, kind):
    ngx = make_nginx(realip_conf(kind, limiter(kind, "$binary_remote_addr", burst=1), level,
                                 "set_real_ip_from 127.0.0.1; real_ip_header X-Real-IP;"), ports=PORTS, workers=1)
    assert two_clients(ngx, by_header) == [200, 200, 429, 200]
    assert logged(ngx) == [(ALICE, "PASSED"), (ALICE, "PASSED"), (ALICE, "REJECTED"), (BOB, "PASSED")]


@pytest.mark.parametrize("kind", LIMITERS)
@pytest.mark.parametrize("level", LEVELS)
def test_real_ip_from_the_proxy_protocol_gives_each_client_its_budget(make_nginx, level, kind):
    ngx = make_nginx(realip_conf(kind, limiter(kind, "$remote_addr", burst=1), level,
                                 "set_real_ip_from 127.0.0.1; real_ip_header proxy_protocol;",
                                 listen=" proxy_protocol"), ports=PORTS, workers=1)
    assert two_clients(ngx, by_proxy_protocol) == [200, 200, 429, 200]
    assert logged(ngx) == [(ALICE, "PASSED"), (ALICE, "PASSED"), (ALICE, "REJECTED"), (BOB, "PASSED")]


@pytest.mark.parametrize("kind", LIMITERS)
@pytest.mark.parametrize("level", LEVELS)
def test_a_header_from_an_untrusted_address_moves_no_client(make_nginx, level, kind):
    # only 192.0.2.1 may say who the client is; the requests come from 127.0.0.1
    ngx = make_nginx(realip_conf(kind, limiter(kind, "$binary_remote_addr", burst=1), level,
                                 "set_real_ip_from 192.0.2.1; real_ip_header X-Real-IP;"), ports=PORTS, workers=1)
    assert two_clients(ngx, by_header) == [200, 200, 429, 429]
    assert [address for address, _ in logged(ngx)] == ["127.0.0.1"] * 4


@pytest.mark.parametrize("kind", LIMITERS)
def test_a_spoofed_x_forwarded_for_entry_moves_no_client_into_another_bucket(make_nginx, kind):
    # Only the proxy (127.0.0.1) is trusted; it appends the address it saw.
    # Alice writes Bob's address first: realip walks from the right past
    # trusted addresses only, so her requests stay in her own bucket.
    ngx = make_nginx(realip_conf(kind, limiter(kind, "$binary_remote_addr", burst=1), "server",
                                 "set_real_ip_from 127.0.0.1; real_ip_header X-Forwarded-For; "
                                 "real_ip_recursive on;"), ports=PORTS, workers=1)
    spoofed = {"X-Forwarded-For": f"{BOB}, {ALICE}"}
    got = [ngx.get("/", headers=spoofed)[0] for _ in range(3)]
    got.append(ngx.get("/", headers={"X-Forwarded-For": BOB})[0])
    assert got == [200, 200, 429, 200]
    assert logged(ngx) == [(ALICE, "PASSED"), (ALICE, "PASSED"), (ALICE, "REJECTED"), (BOB, "PASSED")]


def test_real_ip_in_the_location_gives_each_client_its_budget_in_a_global_zone(make_nginx, make_leveed):
    leveed = make_leveed()   # standalone: the buckets in leveed's memory
    ngx = make_nginx(realip_conf("levee", global_limiter(leveed.socket_path, "$remote_addr", burst=1), "location",
                                 "set_real_ip_from 127.0.0.1; real_ip_header X-Real-IP;"), ports=PORTS, workers=1)
    wait_linked(leveed, ngx)
    alice = [by_header(ngx, ALICE) for _ in range(4)]
    # 2 tokens; nginx may run one request ahead of its lease (docs/rate-limits.md)
    assert alice.count(200) in (2, 3) and alice[-1] == 429, alice
    assert by_header(ngx, BOB) == 200
