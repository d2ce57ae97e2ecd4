"""Free TCP ports on 127.0.0.1.

A port is "free" if we can bind it right now. Ports handed out once are never
handed out again in the same run (the component may not have bound it yet).
Ports below the kernel's ephemeral range are preferred: outgoing connections
never take those, so a port we pick cannot be stolen by a client socket
between the check and the server's own bind.
"""

from __future__ import annotations

import random
import socket
import threading

__all__ = ["free_port", "free_ports", "port_is_free", "ephemeral_range"]

_lock = threading.Lock()
_handed_out: set[int] = set()
_rng = random.Random()


def ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    if not (0 < port < 65536):
        return False
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _bind_zero(host: str) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def free_port(max_port: int | None = None, *, also_free: tuple[int, ...] = (),
              host: str = "127.0.0.1") -> int:
    """A port that is free now and was not handed out before in this run.

    ``max_port``: the port must be <= this (Redis needs port + 10000 <= 65535).
    ``also_free``: offsets that must be free as well (Redis: ``(10000,)``).
    """
    limit = min(max_port or 65535, 65535 - max(also_free, default=0))
    eph_lo, _ = ephemeral_range()

    def ok(p: int) -> bool:
        if p in _handed_out or p > limit or p < 1024:
            return False
        if not port_is_free(p, host):
            return False
        return all(port_is_free(p + off, host) and (p + off) not in _handed_out
                   for off in also_free)

    with _lock:
        # 1) random ports below the ephemeral range (incl. the offsets)
        top = min(limit, eph_lo - 1 - max(also_free, default=0))
        if top > 10000:
            for _ in range(200):
                p = _rng.randint(10000, top)
                if ok(p):
                    _handed_out.add(p)
                    _handed_out.update(p + off for off in also_free)
                    return p
        # 2) let the kernel choose
        for _ in range(200):
            p = _bind_zero(host)
            if ok(p):
                _handed_out.add(p)
                _handed_out.update(p + off for off in also_free)
                return p
        # 3) scan
        for p in range(1024, limit + 1):
            if ok(p):
                _handed_out.add(p)
                _handed_out.update(p + off for off in also_free)
                return p
    raise RuntimeError(f"no free port <= {limit}")


def free_ports(n: int, max_port: int | None = None, *, also_free: tuple[int, ...] = ()) -> list[int]:
    return [free_port(max_port, also_free=also_free) for _ in range(n)]
