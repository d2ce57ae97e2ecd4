"""A TCP relay on 127.0.0.1 that keeps what its clients sent: put between a
client and a server, it shows what crossed the wire (e.g. that a password
never did in clear)."""

from __future__ import annotations

import selectors
import socket
import threading

from .ports import free_port

__all__ = ["TcpRelay"]

HOST = "127.0.0.1"
# What one connection may keep of what its client sent: enough to see a
# handshake and the first commands, bounded whatever the client does.
KEEP_BYTES = 1 << 20


class TcpRelay:
    """Forwards every connection to ``127.0.0.1:target_port``.

    ``sent()``: per accepted connection, the bytes its client sent (the
    first ``KEEP_BYTES``). A thread per connection; ``stop()`` closes them
    all.

    >>> with TcpRelay(6379) as relay:
    ...     connect_to(relay.addr)
    """

    def __init__(self, target_port: int, target_host: str = HOST) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._sent: list[bytearray] = []
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._stopping = False

    @property
    def addr(self) -> str:
        return f"{HOST}:{self.port}"

    def sent(self) -> list[bytes]:
        with self._lock:
            return [bytes(b) for b in self._sent]

    def start(self) -> "TcpRelay":
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((HOST, self.port))
        ls.listen(16)
        self._listener = ls
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stopping = True
        with self._lock:
            socks = list(self._socks)
            if self._listener is not None:
                socks.append(self._listener)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> "TcpRelay":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _spawn(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._stopping:
                    client.close()
                    server.close()
                    return
                self._socks += [client, server]
                kept = bytearray()
                self._sent.append(kept)
            self._spawn(self._pump, client, server, kept)

    def _pump(self, client: socket.socket, server: socket.socket, kept: bytearray) -> None:
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, server)
        sel.register(server, selectors.EVENT_READ, client)
        try:
            while not self._stopping:
                for key, _ in sel.select(timeout=0.5):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    if key.fileobj is client:
                        with self._lock:
                            kept.extend(data[:max(0, KEEP_BYTES - len(kept))])
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            sel.close()
            for s in (client, server):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
