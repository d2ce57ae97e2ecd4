"""A stream of heartbeats through nginx that remembers, for each user, when
its last beat answered 204 was sent: what must reach Redis and the database."""

from __future__ import annotations

import http.client
import socket
import threading
import time


class BeatStream:
    """Threads beating disjoint sets of users round-robin through nginx,
    remembering for each user the time window of its last beat answered 204."""

    def __init__(self, ngx, users: int, threads: int = 3, path: str = "/hb", room: str = "chaos",
                 pause: float = 0.002):
        self.ngx = ngx
        self.path = path
        self.room = room
        self.pause = pause
        self.users = [f"s{i}" for i in range(users)]
        self.threads = threads
        self.last: dict[str, tuple[int, int]] = {}
        self.counts = {204: 0, 503: 0}
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ts: list[threading.Thread] = []

    def _run(self, mine):
        conn = http.client.HTTPConnection("127.0.0.1", self.ngx.port, timeout=10)
        i = 0
        while not self.stop.is_set():
            user = mine[i % len(mine)]
            i += 1
            before = int(time.time() * 1000)
            try:
                conn.request("GET", f"{self.path}?u={user}&room={self.room}")
                resp = conn.getresponse()
                resp.read()
            except Exception as e:  # noqa: BLE001
                self.errors.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.ngx.port, timeout=10)
                continue
            after = int(time.time() * 1000) + 1
            with self.lock:
                if resp.status == 204:
                    self.last[user] = (before, after)
                self.counts[resp.status] = self.counts.get(resp.status, 0) + 1
            time.sleep(self.pause)
        conn.close()

    def start(self):
        for t in range(self.threads):
            th = threading.Thread(target=self._run, args=(self.users[t::self.threads],), daemon=True)
            th.start()
            self.ts.append(th)

    def finish(self):
        self.stop.set()
        for th in self.ts:
            th.join(timeout=20)


class RespScore:
    """ZSCORE on one Redis node over a raw socket: fast enough to poll every few ms."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def zscore(self, key: str, member: str):
        k, m = key.encode(), member.encode()
        self.sock.sendall(b"*3\r\n$6\r\nZSCORE\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(m), m))
        head = self._line()
        if head.startswith(b"-"):
            raise RuntimeError(head.decode())
        if head == b"$-1":
            return None
        n = int(head[1:])
        while len(self.buf) < n + 2:
            self.buf += self.sock.recv(65536)
        value, self.buf = self.buf[:n], self.buf[n + 2:]
        return value.decode()

    def close(self):
        self.sock.close()
