"""A minimal WebSocket client (RFC 6455) for tests, standard library only."""

from __future__ import annotations

import base64
import os
import socket

from .upstream_app import _frame, ws_accept

__all__ = ["WebSocketClient", "WebSocketError"]


class WebSocketError(Exception):
    pass


class _SockReader:
    def __init__(self, sock: socket.socket, initial: bytes = b""):
        self.sock, self.buf = sock, bytearray(initial)

    def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


class WebSocketClient:
    """``with WebSocketClient(port, "/ws") as ws: ws.send_text("x"); ws.recv_text()``"""

    def __init__(self, port: int, path: str = "/", host: str = "127.0.0.1",
                 headers: dict | None = None, timeout: float = 5.0):
        self.host, self.port, self.path = host, port, path
        self.headers = headers or {}
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.response_status: int | None = None
        self.response_headers: dict[str, str] = {}
        self._reader: _SockReader | None = None

    def connect(self) -> "WebSocketClient":
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        lines = [f"GET {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                 "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise WebSocketError(f"connection closed during handshake: {buf!r}")
            buf += chunk
            if len(buf) > 65536:
                raise WebSocketError("handshake response too large")
        head, rest = buf.split(b"\r\n\r\n", 1)
        status_line, *hdrs = head.decode("latin-1").split("\r\n")
        self.response_status = int(status_line.split()[1])
        self.response_headers = {}
        for h in hdrs:
            k, _, v = h.partition(":")
            self.response_headers[k.strip().lower()] = v.strip()
        if self.response_status != 101:
            raise WebSocketError(f"handshake refused: {status_line}")
        if self.response_headers.get("sec-websocket-accept") != ws_accept(key):
            raise WebSocketError("bad Sec-WebSocket-Accept")
        self._reader = _SockReader(self.sock, rest)
        return self

    def send(self, opcode: int, payload: bytes) -> None:
        self.sock.sendall(_frame(opcode, payload, mask=True))

    def send_text(self, text: str) -> None:
        self.send(0x1, text.encode())

    def send_binary(self, data: bytes) -> None:
        self.send(0x2, data)

    def recv(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next message."""
        from .upstream_app import _read_frame

        try:
            return _read_frame(self._reader)
        except EOFError as e:
            raise WebSocketError("connection closed") from e

    def recv_text(self) -> str:
        op, data = self.recv()
        if op != 0x1:
            raise WebSocketError(f"expected a text frame, got opcode {op}")
        return data.decode()

    def close(self) -> None:
        if self.sock is None:
            return
        try:
            self.send(0x8, b"\x03\xe8")
            self.sock.settimeout(1.0)
            try:
                self.recv()
            except (WebSocketError, OSError):
                pass
        except OSError:
            pass
        finally:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc):
        self.close()
