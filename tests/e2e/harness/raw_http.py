"""HTTP/1.1 requests written byte for byte on a raw socket: a PROXY
protocol (v1) line before the request, as a load balancer would send it."""

from __future__ import annotations

import socket

__all__ = ["raw_get", "proxy_protocol_get"]


def raw_get(port: int, path: str = "/", headers: dict | None = None, preamble: bytes = b"",
            timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """``preamble`` + ``GET path`` with ``Connection: close``; returns
    (status, headers with lower-case names, body)."""
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    request = preamble + ("\r\n".join(lines) + "\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *fields = head.decode("latin-1").split("\r\n")
    parsed = {}
    for f in fields:
        name, _, value = f.partition(":")
        parsed[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), parsed, body


def proxy_protocol_get(port: int, client: str, path: str = "/", headers: dict | None = None,
                       timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """A request that a proxy forwards for ``client`` (an IPv4 address)."""
    preamble = f"PROXY TCP4 {client} 127.0.0.1 40000 80\r\n".encode()
    return raw_get(port, path, headers, preamble, timeout)
