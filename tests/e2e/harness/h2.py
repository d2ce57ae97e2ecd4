"""HTTP/2 in clear text (prior knowledge) through curl: Python's standard
library has no HTTP/2 client. One connection per request: Debian 12's curl
7.88.1 fails (exit 16, nothing sent) when it reuses a prior-knowledge
connection for a second URL."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass

from .proc import ComponentUnavailable

__all__ = ["H2Response", "h2_get", "require_h2_curl"]

_MARK = "\n--levee-h2--\n"
_END = "\n--levee-h2-end--\n"


@dataclass
class H2Response:
    status: int
    version: str            # "2" over HTTP/2
    headers: dict[str, str]  # lower-case names, last value of each
    body: str


def require_h2_curl() -> str:
    curl = shutil.which("curl")
    if curl is None:
        raise ComponentUnavailable("curl not installed")
    features = subprocess.run([curl, "-V"], capture_output=True, text=True, timeout=10).stdout
    if "HTTP2" not in features:
        raise ComponentUnavailable("curl without HTTP/2")
    return curl


def h2_get(port: int, paths: list[str], headers: dict | None = None, parallel: bool = False,
           timeout: float = 30.0) -> list[H2Response]:
    """GET each path over HTTP/2, in order; with ``parallel`` all at once
    from one curl (answers then come in completion order, bodies dropped)."""
    if not parallel:
        return [r for p in paths for r in _curl(port, [p], headers, False, timeout)]
    return _curl(port, paths, headers, True, timeout)


def _curl(port, paths, headers, parallel, timeout) -> list[H2Response]:
    argv = [require_h2_curl(), "-s", "--http2-prior-knowledge", "--max-time", str(timeout),
            "-w", _MARK + "%{http_code}\n%{http_version}\n%{header_json}" + _END]
    for k, v in (headers or {}).items():
        argv += ["-H", f"{k}: {v}"]
    if parallel:
        argv += ["--parallel", "--parallel-immediate", "--parallel-max", str(len(paths))]
    for p in paths:
        argv.append(f"http://127.0.0.1:{port}{p}")
        if parallel:
            argv += ["-o", "/dev/null"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 10)
    if r.returncode != 0:
        raise AssertionError(f"curl failed ({r.returncode}): {r.stderr}")
    out = []
    for chunk in r.stdout.split(_END)[:-1]:
        body, _, meta = chunk.rpartition(_MARK)
        status, version, header_json = meta.split("\n", 2)
        hdrs = {k.lower(): v[-1] for k, v in json.loads(header_json).items()}
        out.append(H2Response(int(status), version, hdrs, body))
    assert len(out) == len(paths), r.stdout
    return out
