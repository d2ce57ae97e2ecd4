"""Running wrk and reading its --latency report, for every benchmark here."""

from __future__ import annotations

import re
import subprocess


def _ms(value: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", value)
    x = float(m.group(1))
    return {"us": x / 1000, "ms": x, "s": x * 1000}[m.group(2)]


def parse(out: str) -> dict:
    """req/s, p50 and p99 in ms, total requests and non-2xx/3xx responses."""
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
        "p99": _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
        "total": int(re.search(r"(\d+) requests in", out).group(1)),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": "Socket errors" in out,
        "out": out,
    }


def run(port: int, duration: float, connections: int, script: str | None = None) -> dict:
    """One bounded wrk run (one thread) against 127.0.0.1:port."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    if script:
        argv += ["-s", script]
    r = subprocess.run(argv + [f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True,
                       timeout=duration + 30)
    return parse(r.stdout)
