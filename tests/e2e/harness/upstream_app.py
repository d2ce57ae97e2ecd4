"""A small upstream HTTP app, run as its own process so tests can kill it.

    python3 -m harness.upstream_app --port P --name NAME

Every request gets 200 and JSON ``{"server", "method", "path", "headers",
"body"}``, except:

* ``GET /__count`` -> ``{"server": NAME, "count": N}`` (requests so far,
  not counting ``/__*``); ``/__reset`` sets it back to 0.
* query ``__status=CODE`` answers with that status, ``__delay=SECONDS`` sleeps
  first.
* ``Upgrade: websocket`` -> RFC 6455 handshake, then echoes text/binary
  frames, answers ping with pong and close with close.

:class:`UpstreamApp` manages such a process from a test.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import signal
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


# ======================================================================= server

class _State:
    name = "app"
    count = 0
    lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "levee-upstream/1"

    def log_message(self, fmt, *args):  # quieter, to stdout log
        sys.stdout.write("%s %s\n" % (self.address_string(), fmt % args))
        sys.stdout.flush()

    def _send_json(self, status: int, obj: dict, extra_headers: dict | None = None) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Upstream", _State.name)
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if url.path == "/__count":
            with _State.lock:
                n = _State.count
            return self._send_json(200, {"server": _State.name, "count": n})
        if url.path == "/__reset":
            with _State.lock:
                _State.count = 0
            return self._send_json(200, {"server": _State.name, "count": 0})
        if self.headers.get("Upgrade", "").lower() == "websocket":
            with _State.lock:
                _State.count += 1
            return self._websocket()
        with _State.lock:
            _State.count += 1
        q = parse_qs(url.query)
        if "__delay" in q:
            time.sleep(float(q["__delay"][0]))
        status = int(q["__status"][0]) if "__status" in q else 200
        self._send_json(status, {
            "server": _State.name,
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
        })

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

    # ------------------------------------------------------------ websocket
    def _websocket(self) -> None:
        key = self.headers.get("Sec-WebSocket-Key")
        if not key:
            return self._send_json(400, {"error": "missing Sec-WebSocket-Key"})
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", ws_accept(key))
        self.send_header("X-Upstream", _State.name)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        rfile, wfile = self.rfile, self.wfile
        while True:
            try:
                opcode, payload = _read_frame(rfile)
            except (ConnectionError, EOFError, OSError):
                return
            if opcode in (0x1, 0x2):
                wfile.write(_frame(opcode, payload))
            elif opcode == 0x9:
                wfile.write(_frame(0xA, payload))
            elif opcode == 0x8:
                wfile.write(_frame(0x8, payload[:2]))
                wfile.flush()
                return
            wfile.flush()


def _read_exact(f, n: int) -> bytes:
    data = f.read(n)
    if data is None or len(data) < n:
        raise EOFError("short read")
    return data


def _read_frame(f) -> tuple[int, bytes]:
    """One (unfragmented) frame; continuation frames are joined."""
    payload = b""
    first_op = None
    while True:
        b0, b1 = _read_exact(f, 2)
        fin, op = b0 & 0x80, b0 & 0x0F
        masked, n = b1 & 0x80, b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack(">H", _read_exact(f, 2))
        elif n == 127:
            (n,) = struct.unpack(">Q", _read_exact(f, 8))
        mask = _read_exact(f, 4) if masked else None
        data = _read_exact(f, n) if n else b""
        if mask:
            data = bytes(c ^ mask[i % 4] for i, c in enumerate(data))
        if op >= 0x8:  # control frames are never fragmented
            return op, data
        if first_op is None:
            first_op = op
        payload += data
        if fin:
            return first_op, payload


def _frame(opcode: int, payload: bytes, mask: bool = False) -> bytes:
    head = bytes([0x80 | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack(">Q", n)
    if mask:
        key = os.urandom(4)
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        head += key
    return head + payload


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="app")
    ap.add_argument("--host", default="127.0.0.1")
    a = ap.parse_args(argv)
    _State.name = a.name
    srv = _Server((a.host, a.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit(0)))
    print(f"upstream {a.name} listening on {a.host}:{a.port}", flush=True)
    try:
        srv.serve_forever(poll_interval=0.1)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        srv.server_close()


# ======================================================================= manager

if __name__ != "__main__":
    from . import proc as _proc
    from .base import Component
    from .ports import free_port

    class UpstreamApp(Component):
        """The app above in its own process; ``port`` stays the same across
        :meth:`restart`."""

        kind = "upstream"

        def __init__(self, name: str = "app", port: int | None = None,
                     start_timeout: float = 10.0) -> None:
            super().__init__()
            self.name = name
            self.port = port or free_port()
            self.start_timeout = start_timeout
            self.dir = _proc.component_dir(f"upstream")
            self.proc = None

        @property
        def log_path(self) -> str:
            return os.path.join(self.dir, "app.log")

        def _start(self) -> None:
            here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            env = dict(os.environ)
            env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            env["PYTHONUNBUFFERED"] = "1"
            self.proc = _proc.spawn(
                [sys.executable, "-m", "harness.upstream_app", "--port", str(self.port),
                 "--name", self.name],
                log_path=self.log_path, cwd=here, env=env)
            _proc.wait_port("127.0.0.1", self.port, self.start_timeout, self.proc,
                            what=f"upstream {self.name}")

        def _stop(self) -> None:
            _proc.terminate_group(self.proc, signal.SIGTERM, timeout=5)

        def kill(self) -> None:
            _proc.kill_group(self.proc)

        def restart(self) -> None:
            self.stop()
            self.start()

        def pids(self) -> list[int]:
            return [self.proc.pid] if self.proc is not None and self.proc.poll() is None else []

        def log_paths(self) -> list[str]:
            return [self.log_path]

        @property
        def addr(self) -> str:
            return f"127.0.0.1:{self.port}"

        def count(self) -> int:
            import http.client
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                c.request("GET", "/__count")
                return json.loads(c.getresponse().read())["count"]
            finally:
                c.close()

        def reset(self) -> None:
            import http.client
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                c.request("GET", "/__reset")
                c.getresponse().read()
            finally:
                c.close()

        def describe(self) -> str:
            return f"upstream {self.name} :{self.port}"


if __name__ == "__main__":
    main()
