"""A tiny MongoDB wire-protocol client (OP_MSG + BSON), standard library only.

Enough for tests to check readiness and read documents back::

    with MongoWireClient("127.0.0.1", port) as c:
        c.hello()
        c.find_one("levee", "beats", {"_id": "u1"})
"""

from __future__ import annotations

import datetime as _dt
import itertools
import os
import socket
import struct
import threading
from typing import Any

__all__ = [
    "ObjectId", "Int64", "Timestamp", "encode_bson", "decode_bson",
    "MongoWireClient", "MongoCommandError", "MongoProtocolError",
    "OP_MSG", "encode_op_msg", "decode_op_msg",
]

OP_REPLY = 1
OP_QUERY = 2004
OP_MSG = 2013

_UTC = _dt.timezone.utc
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_UTC)


class MongoProtocolError(Exception):
    pass


class MongoCommandError(Exception):
    def __init__(self, reply: dict):
        self.reply = reply
        self.code = reply.get("code")
        self.code_name = reply.get("codeName")
        super().__init__(f"{reply.get('errmsg', 'command failed')} (code {self.code} {self.code_name})")


class ObjectId:
    """12-byte BSON ObjectId."""

    _counter = itertools.count(int.from_bytes(os.urandom(3), "big"))
    _rand = os.urandom(5)

    def __init__(self, oid: bytes | str | None = None):
        if oid is None:
            import time
            c = next(self._counter) & 0xFFFFFF
            oid = struct.pack(">I", int(time.time())) + self._rand + c.to_bytes(3, "big")
        elif isinstance(oid, str):
            oid = bytes.fromhex(oid)
        if len(oid) != 12:
            raise ValueError("ObjectId needs 12 bytes")
        self.binary = bytes(oid)

    def __eq__(self, other):
        return isinstance(other, ObjectId) and other.binary == self.binary

    def __hash__(self):
        return hash(self.binary)

    def __str__(self):
        return self.binary.hex()

    def __repr__(self):
        return f"ObjectId('{self.binary.hex()}')"


class Int64(int):
    """An int that is always encoded as BSON int64."""


class Timestamp:
    def __init__(self, time: int, inc: int):
        self.time, self.inc = time, inc

    def __eq__(self, o):
        return isinstance(o, Timestamp) and (o.time, o.inc) == (self.time, self.inc)

    def __repr__(self):
        return f"Timestamp({self.time}, {self.inc})"


# ------------------------------------------------------------------ BSON

def _cstring(s: str) -> bytes:
    b = s.encode("utf-8")
    if b"\x00" in b:
        raise ValueError(f"key contains NUL: {s!r}")
    return b + b"\x00"


def _encode_element(key: str, v: Any) -> bytes:
    k = _cstring(key)
    if v is None:
        return b"\x0a" + k
    if isinstance(v, bool):
        return b"\x08" + k + (b"\x01" if v else b"\x00")
    if isinstance(v, Int64):
        return b"\x12" + k + struct.pack("<q", int(v))
    if isinstance(v, int):
        if -2**31 <= v < 2**31:
            return b"\x10" + k + struct.pack("<i", v)
        if -2**63 <= v < 2**63:
            return b"\x12" + k + struct.pack("<q", v)
        raise OverflowError(f"int too large for BSON: {v}")
    if isinstance(v, float):
        return b"\x01" + k + struct.pack("<d", v)
    if isinstance(v, str):
        b = v.encode("utf-8")
        return b"\x02" + k + struct.pack("<i", len(b) + 1) + b + b"\x00"
    if isinstance(v, dict):
        return b"\x03" + k + encode_bson(v)
    if isinstance(v, (list, tuple)):
        return b"\x04" + k + encode_bson({str(i): x for i, x in enumerate(v)})
    if isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        return b"\x05" + k + struct.pack("<i", len(b)) + b"\x00" + b
    if isinstance(v, ObjectId):
        return b"\x07" + k + v.binary
    if isinstance(v, _dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=_UTC)
        ms = (v - _EPOCH) // _dt.timedelta(milliseconds=1)
        return b"\x09" + k + struct.pack("<q", ms)
    if isinstance(v, Timestamp):
        return b"\x11" + k + struct.pack("<II", v.inc, v.time)
    raise TypeError(f"cannot encode {type(v).__name__} as BSON")


def encode_bson(doc: dict) -> bytes:
    body = b"".join(_encode_element(str(k), v) for k, v in doc.items())
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def _read_cstring(buf: bytes, i: int) -> tuple[str, int]:
    e = buf.index(b"\x00", i)
    return buf[i:e].decode("utf-8", "replace"), e + 1


def _decode_doc(buf: bytes, i: int) -> tuple[dict, int]:
    (size,) = struct.unpack_from("<i", buf, i)
    end = i + size
    if size < 5 or end > len(buf) or buf[end - 1] != 0:
        raise MongoProtocolError("bad BSON document length")
    i += 4
    out: dict = {}
    while i < end - 1:
        t = buf[i]
        key, i = _read_cstring(buf, i + 1)
        if t == 0x01:
            (v,) = struct.unpack_from("<d", buf, i); i += 8
        elif t in (0x02, 0x0D, 0x0E):  # string, JS code, symbol
            (n,) = struct.unpack_from("<i", buf, i)
            v = buf[i + 4:i + 4 + n - 1].decode("utf-8", "replace"); i += 4 + n
        elif t in (0x03, 0x04):
            v, i = _decode_doc(buf, i)
            if t == 0x04:
                v = list(v.values())
        elif t == 0x05:
            (n,) = struct.unpack_from("<i", buf, i)
            v = bytes(buf[i + 5:i + 5 + n]); i += 5 + n
        elif t == 0x06 or t == 0x0A or t == 0xFF or t == 0x7F:  # undefined, null, min, max
            v = None
        elif t == 0x07:
            v = ObjectId(bytes(buf[i:i + 12])); i += 12
        elif t == 0x08:
            v = buf[i] != 0; i += 1
        elif t == 0x09:
            (ms,) = struct.unpack_from("<q", buf, i); i += 8
            try:
                v = _EPOCH + _dt.timedelta(milliseconds=ms)
            except OverflowError:
                v = ms
        elif t == 0x0B:
            pat, i = _read_cstring(buf, i)
            opts, i = _read_cstring(buf, i)
            v = ("regex", pat, opts)
        elif t == 0x10:
            (v,) = struct.unpack_from("<i", buf, i); i += 4
        elif t == 0x11:
            inc, tm = struct.unpack_from("<II", buf, i); i += 8
            v = Timestamp(tm, inc)
        elif t == 0x12:
            (v,) = struct.unpack_from("<q", buf, i); i += 8
            v = Int64(v)
        elif t == 0x13:
            v = ("decimal128", bytes(buf[i:i + 16])); i += 16
        else:
            raise MongoProtocolError(f"unsupported BSON type 0x{t:02x} for key {key!r}")
        out[key] = v
    return out, end


def decode_bson(data: bytes) -> dict:
    doc, end = _decode_doc(bytes(data), 0)
    if end != len(data):
        raise MongoProtocolError("trailing bytes after BSON document")
    return doc


# ------------------------------------------------------------------ OP_MSG

_req_ids = itertools.count(1)


def encode_op_msg(doc: dict, request_id: int | None = None, response_to: int = 0,
                  flags: int = 0) -> bytes:
    rid = next(_req_ids) if request_id is None else request_id
    body = struct.pack("<I", flags) + b"\x00" + encode_bson(doc)
    return struct.pack("<iiii", 16 + len(body), rid, response_to, OP_MSG) + body


def decode_op_msg(msg: bytes) -> tuple[int, int, dict]:
    """(request_id, response_to, body document) of a whole OP_MSG/OP_REPLY."""
    length, rid, rto, op = struct.unpack_from("<iiii", msg, 0)
    if op == OP_MSG:
        (flags,) = struct.unpack_from("<I", msg, 16)
        i = 20
        end = length - (4 if flags & 1 else 0)  # checksumPresent
        body = None
        seqs: dict[str, list] = {}
        while i < end:
            kind = msg[i]; i += 1
            if kind == 0:
                body, i = _decode_doc(msg, i)
            elif kind == 1:
                (size,) = struct.unpack_from("<i", msg, i)
                send = i + size
                ident, j = _read_cstring(msg, i + 4)
                docs = []
                while j < send:
                    d, j = _decode_doc(msg, j)
                    docs.append(d)
                seqs[ident] = docs
                i = send
            else:
                raise MongoProtocolError(f"unknown OP_MSG section kind {kind}")
        if body is None:
            raise MongoProtocolError("OP_MSG without a body section")
        body.update(seqs)
        return rid, rto, body
    if op == OP_REPLY:
        ndocs = struct.unpack_from("<i", msg, 32)[0]
        docs, i = [], 36
        for _ in range(ndocs):
            d, i = _decode_doc(msg, i)
            docs.append(d)
        return rid, rto, docs[0] if docs else {}
    raise MongoProtocolError(f"unexpected opcode {op}")


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise MongoProtocolError("connection closed by server")
        buf += chunk
    return bytes(buf)


def read_message(sock: socket.socket) -> bytes:
    head = _recv_exact(sock, 4)
    (length,) = struct.unpack("<i", head)
    if length < 16 or length > 48 * 1024 * 1024:
        raise MongoProtocolError(f"bad message length {length}")
    return head + _recv_exact(sock, length - 4)


class MongoWireClient:
    """One connection; thread-safe (one command at a time)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 27017, timeout: float = 5.0):
        self.host, self.port, self.timeout = host, port, timeout
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def connect(self) -> "MongoWireClient":
        if self._sock is None:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc):
        self.close()

    def command(self, db: str, doc: dict, check: bool = True) -> dict:
        """Run a command (``doc``'s first key is the command name) on ``db``."""
        body = dict(doc)
        body["$db"] = db
        with self._lock:
            self.connect()
            msg = encode_op_msg(body)
            rid = struct.unpack_from("<i", msg, 4)[0]
            try:
                self._sock.sendall(msg)
                reply = read_message(self._sock)
            except BaseException:
                self.close()
                raise
        _rid, rto, out = decode_op_msg(reply)
        if rto != rid:
            self.close()
            raise MongoProtocolError(f"reply to {rto}, expected {rid}")
        if check and out.get("ok") not in (1, 1.0, True):
            raise MongoCommandError(out)
        return out

    # ----------------------------------------------------- helpers
    def hello(self) -> dict:
        try:
            return self.command("admin", {"hello": 1})
        except MongoCommandError:
            return self.command("admin", {"isMaster": 1})

    def ping(self) -> bool:
        return self.command("admin", {"ping": 1}).get("ok") in (1, 1.0, True)

    def find(self, db: str, coll: str, filter: dict | None = None, limit: int = 0,
             sort: dict | None = None, projection: dict | None = None) -> list[dict]:
        cmd: dict = {"find": coll, "filter": filter or {}}
        if sort:
            cmd["sort"] = sort
        if projection:
            cmd["projection"] = projection
        if limit:
            cmd["limit"] = limit
            cmd["singleBatch"] = limit == 1
        r = self.command(db, cmd)
        cur = r["cursor"]
        docs = list(cur.get("firstBatch", []))
        while cur.get("id") and (not limit or len(docs) < limit):
            r = self.command(db, {"getMore": Int64(cur["id"]), "collection": coll})
            cur = r["cursor"]
            docs += cur.get("nextBatch", [])
        if cur.get("id"):
            try:
                self.command(db, {"killCursors": coll, "cursors": [Int64(cur["id"])]}, check=False)
            except Exception:
                pass
        return docs[:limit] if limit else docs

    def find_one(self, db: str, coll: str, filter: dict | None = None) -> dict | None:
        docs = self.find(db, coll, filter, limit=1)
        return docs[0] if docs else None

    def count(self, db: str, coll: str, filter: dict | None = None) -> int:
        r = self.command(db, {"count": coll, "query": filter or {}})
        return int(r["n"])

    def insert(self, db: str, coll: str, docs: list[dict]) -> int:
        r = self.command(db, {"insert": coll, "documents": list(docs)})
        if r.get("writeErrors"):
            raise MongoCommandError({"errmsg": str(r["writeErrors"]), "ok": 0})
        return int(r.get("n", 0))

    def drop(self, db: str, coll: str) -> None:
        try:
            self.command(db, {"drop": coll})
        except MongoCommandError as e:
            if e.code != 26 and "ns not found" not in str(e):  # NamespaceNotFound
                raise

    def list_collections(self, db: str) -> list[str]:
        r = self.command(db, {"listCollections": 1, "nameOnly": True})
        return [c["name"] for c in r["cursor"]["firstBatch"]]

    def list_indexes(self, db: str, coll: str) -> list[dict]:
        r = self.command(db, {"listIndexes": coll})
        return list(r["cursor"]["firstBatch"])
