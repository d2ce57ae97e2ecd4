"""leveed's frames by hand (proto/levee.proto), for tests that must send
what nginx never would: a few protobuf wire-format helpers, no generated code.

``encode(fields)`` takes ``[(number, value), ...]``: an int is a varint, bytes
or str a length-delimited field, a list of pairs a nested message.
``decode(data)`` gives ``{number: [value, ...]}`` with varints as ints and
length-delimited fields as bytes (decode them again for a nested message).
"""

from __future__ import annotations

import socket

# Frame's body field numbers (proto/levee.proto)
HELLO, HELLO_REPLY = 10, 11
PROBE, PROBE_REPLY = 12, 13
PRESENCE_QUERY, PRESENCE_QUERY_REPLY = 16, 17
LIMIT_LEASE, LIMIT_LEASE_REPLY = 20, 21
REGISTRY_BATCH, REGISTRY_ACK = 30, 31


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode(fields) -> bytes:
    out = bytearray()
    for number, value in fields:
        if isinstance(value, bool) or isinstance(value, int):
            out += _varint(number << 3) + _varint(int(value))
            continue
        if isinstance(value, str):
            value = value.encode()
        elif isinstance(value, list):
            value = encode(value)
        out += _varint(number << 3 | 2) + _varint(len(value)) + value
    return bytes(out)


def decode(data: bytes) -> dict[int, list]:
    fields: dict[int, list] = {}
    i = 0

    def varint() -> int:
        nonlocal i
        n = shift = 0
        while True:
            b = data[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    while i < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            value = varint()
        elif wire == 2:
            n = varint()
            value = data[i:i + n]
            i += n
        else:
            raise ValueError(f"wire type {wire} not expected in leveed's frames")
        fields.setdefault(number, []).append(value)
    return fields


def frame(request_id: int, body: int, message) -> bytes:
    """One length-prefixed Frame with ``message`` (fields or bytes) as its body."""
    payload = encode([(1, request_id), (body, message)])
    return len(payload).to_bytes(4, "big") + payload


def hello(limit_zones=(), registry_ttl_ms=(), request_id: int = 1) -> bytes:
    """A Hello of protocol 1 declaring ``limit_zones`` as (name, period_us,
    capacity) and ``registry_ttl_ms``."""
    fields = [(1, 1), (2, "e2e-raw-client"), (3, 1)]
    fields += [(5, [(1, name), (2, period_us), (3, capacity)]) for name, period_us, capacity in limit_zones]
    fields += [(6, ttl) for ttl in registry_ttl_ms]
    return frame(request_id, HELLO, fields)


def lease(entries, request_id: int) -> bytes:
    """A LimitLeaseRequest of (zone, key, period_us, capacity, want)."""
    return frame(request_id, LIMIT_LEASE, [
        (1, [(1, zone), (2, key), (3, period_us), (4, capacity), (5, want)])
        for zone, key, period_us, capacity, want in entries])


class RawClient:
    """A blocking connection to a leveed socket that reads whole frames."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self) -> tuple[int, int, dict[int, list]] | None:
        """(request_id, body field number, body fields), or None once leveed closed."""
        while True:
            if len(self.buf) >= 4:
                n = int.from_bytes(self.buf[:4], "big")
                if len(self.buf) >= 4 + n:
                    f = decode(self.buf[4:4 + n])
                    self.buf = self.buf[4 + n:]
                    body = next(k for k in f if k != 1)
                    return f.get(1, [0])[0], body, decode(f[body][0])
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
