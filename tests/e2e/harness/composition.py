"""Config pieces shared by the test_composition_* files: a limit written
either with Levee or with nginx's limit_req (same key, rate 1r/m, burst,
nodelay, refusals answered 429) so that each case can be run with both and
compared, and a backend server block for limited locations to proxy to
(`return` would answer in the rewrite phase, before any limit runs)."""

from __future__ import annotations

import os

from .leveed import wait_linked  # noqa: F401  (re-export)
from .wait import wait_until

__all__ = ["LIMITERS", "PORTS", "backend", "limiter", "global_limiter", "wait_linked", "statuses",
           "log_rows"]

LIMITERS = ("levee", "limit_req")
STATUS_VARIABLE = {"levee": "$levee_limit_status", "limit_req": "$limit_req_status"}

PORTS = ("port", "back")


def backend(kind: str) -> str:
    """The ``composition`` access log (address, status, the limiter's
    decision: PASSED, REJECTED... from either, uri) and a server block on
    ``$back`` answering "ok"."""
    return """
    log_format composition '$remote_addr $status """ + STATUS_VARIABLE[kind] + """ $uri';
    access_log $dir/limit.log composition;
    server {
        listen 127.0.0.1:$back;
        access_log off;
        location / { return 200 "ok\\n"; }
        location /404 { return 404; }
    }
"""


def limiter(kind: str, key: str, burst: int, name: str = "z") -> tuple[str, str]:
    """(http-level zone directive, directive that applies it) for ``kind``
    in LIMITERS: ``key`` at rate 1r/m, ``burst``, nodelay, refused with 429."""
    if kind == "levee":
        return (f"levee_limit_zone {name} key={key} rate=1r/m burst={burst} size=1m;",
                f"levee_limit {name} nodelay;")
    if kind == "limit_req":
        burst_param = f" burst={burst}" if burst else ""   # limit_req refuses burst=0
        return (f"limit_req_zone {key} zone={name}:1m rate=1r/m;",
                f"limit_req zone={name}{burst_param} nodelay; limit_req_status 429;")
    raise ValueError(kind)


def global_limiter(sock: str, key: str, burst: int) -> tuple[str, str]:
    """As :func:`limiter` for a Levee zone of scope=global through the
    leveed at ``sock``."""
    return (f"levee_sidecar unix:{sock};\n"
            f"    levee_limit_zone z key={key} rate=1r/m burst={burst} scope=global sync=100ms size=1m;",
            "levee_limit z nodelay;")




def statuses(ngx, n: int, path: str = "/", headers: dict | None = None) -> list[int]:
    return [ngx.get(path, headers=headers)[0] for _ in range(n)]


def log_rows(ngx, n: int) -> list[list[str]]:
    """The first ``n`` lines of the ``composition`` access log, split (waits
    for them: the log is written after the response)."""
    path = os.path.join(ngx.dir, "limit.log")

    def rows():
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            return None
        return [l.split() for l in lines] if len(lines) >= n else None

    return wait_until(rows, timeout=5, message=f"{n} lines in limit.log")[:n]
