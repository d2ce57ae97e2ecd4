"""HTTP/2 in clear text (prior knowledge). Python's standard library has no
HTTP/2 client, so :func:`h2_get` drives curl, one connection per request:
Debian 12's curl 7.88.1 fails (exit 16, nothing sent) when it reuses a
prior-knowledge connection for a second URL. :func:`h2_streams` sends many
requests as concurrent streams of one connection with a minimal client of
its own (requests as HPACK literals; of the answers it decodes the status
and the body only)."""

from __future__ import annotations

import json
import shutil
import socket
import struct
import subprocess
from dataclasses import dataclass

from .proc import ComponentUnavailable

__all__ = ["H2Response", "h2_get", "h2_streams", "require_h2_curl"]

_MARK = "\n--levee-h2--\n"


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


def h2_get(port: int, paths: list[str], headers: dict | None = None,
           timeout: float = 30.0) -> list[H2Response]:
    """GET each path over HTTP/2 through curl, in order."""
    return [_curl(port, p, headers, timeout) for p in paths]


def _curl(port: int, path: str, headers: dict | None, timeout: float) -> H2Response:
    argv = [require_h2_curl(), "-s", "--http2-prior-knowledge", "--max-time", str(timeout),
            "-w", _MARK + "%{http_code}\n%{http_version}\n%{header_json}"]
    for k, v in (headers or {}).items():
        argv += ["-H", f"{k}: {v}"]
    argv.append(f"http://127.0.0.1:{port}{path}")
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 10)
    if r.returncode != 0:
        raise AssertionError(f"curl failed ({r.returncode}): {r.stderr}")
    body, _, meta = r.stdout.rpartition(_MARK)
    status, version, header_json = meta.split("\n", 2)
    hdrs = {k.lower(): v[-1] for k, v in json.loads(header_json).items()}
    return H2Response(int(status), version, hdrs, body)


# ------------------------------------------------------------ one connection

_DATA, _HEADERS, _RST_STREAM, _SETTINGS, _GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x7
_END_STREAM, _ACK, _END_HEADERS = 0x1, 0x1, 0x4
_STATIC_STATUS = {8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500}


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out, value = [first | limit], value - limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    return bytes(out + [value])


def _literal(name: str, value: str) -> bytes:
    """A header field "without indexing", new name, no Huffman coding."""
    n, v = name.encode(), value.encode()
    return b"\x00" + _hpack_int(len(n), 7) + n + _hpack_int(len(v), 7) + v


def _status(block: bytes) -> int:
    """The :status nginx puts first in a response's header block."""
    b = block[0]
    if b & 0x80:
        return _STATIC_STATUS[b & 0x7F]
    index = b & (0x3F if b & 0x40 else 0x0F)
    length = block[1]
    if index != 8 or length & 0x80:
        raise AssertionError(f"unexpected first header field {block[:8].hex()}")
    return int(block[2:2 + length])


def h2_streams(port: int, paths: list[str], headers: dict | None = None,
               timeout: float = 10.0) -> list[tuple[int, bytes]]:
    """GET every path as concurrent streams of one HTTP/2 connection (all
    requests sent before any answer is read); (status, body) per path."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(_SETTINGS, 0, 0)
        streams = {}
        for i, path in enumerate(paths):
            sid = 2 * i + 1
            fields = [(":method", "GET"), (":scheme", "http"), (":path", path),
                      (":authority", f"127.0.0.1:{port}")] + [(k.lower(), v) for k, v in (headers or {}).items()]
            out += _frame(_HEADERS, _END_STREAM | _END_HEADERS, sid, b"".join(_literal(k, v) for k, v in fields))
            streams[sid] = [None, b"", False]   # status, body, ended
        s.sendall(out)
        buf = b""

        def read(n: int) -> bytes:
            nonlocal buf
            while len(buf) < n:
                chunk = s.recv(65536)
                if not chunk:
                    raise AssertionError("connection closed before every stream ended")
                buf += chunk
            data, buf = buf[:n], buf[n:]
            return data

        while not all(st[2] for st in streams.values()):
            head = read(9)
            length = int.from_bytes(head[:3], "big")
            kind, flags, sid = head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
            payload = read(length)
            if kind == _SETTINGS and not flags & _ACK:
                s.sendall(_frame(_SETTINGS, _ACK, 0))
            elif kind == _HEADERS:
                if streams[sid][0] is None:
                    streams[sid][0] = _status(payload)
            elif kind == _DATA:
                streams[sid][1] += payload
            elif kind in (_RST_STREAM, _GOAWAY):
                raise AssertionError(f"frame type {kind} on stream {sid}: {payload.hex()}")
            if kind in (_HEADERS, _DATA) and flags & _END_STREAM:
                streams[sid][2] = True
        s.sendall(_frame(_GOAWAY, 0, 0, struct.pack(">II", 0, 0)))
    return [(st[0], st[1]) for st in streams.values()]
