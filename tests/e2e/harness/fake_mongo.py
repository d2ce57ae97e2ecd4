"""A toy OP_MSG server for the harness's own tests — NOT a database.

Answers hello/isMaster/ping, insert, find (equality filters), count, drop;
keeps documents in memory and in ``<dir>/data.json`` (JSON-able values only)
so that restart tests can check persistence.

    python3 fake_mongo.py --port P --dir D
"""

from __future__ import annotations

import argparse
import json
import os
import socketserver
import struct
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness.mongo_wire import (OP_MSG, decode_op_msg, encode_bson,  # noqa: E402
                                read_message)

_lock = threading.Lock()
_data: dict[str, list[dict]] = {}
_path = ""


def _save() -> None:
    tmp = _path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(_data, f)
    os.replace(tmp, _path)


def _match(doc: dict, flt: dict) -> bool:
    return all(doc.get(k) == v for k, v in flt.items())


def handle(cmd: dict) -> dict:
    name = next(iter(cmd))
    db = cmd.get("$db", "test")
    if name in ("hello", "isMaster", "ismaster"):
        return {"isWritablePrimary": True, "ismaster": True, "maxWireVersion": 17,
                "minWireVersion": 0, "maxBsonObjectSize": 16 * 1024 * 1024, "ok": 1.0}
    if name == "ping":
        return {"ok": 1.0}
    ns = f"{db}.{cmd[name]}"
    with _lock:
        if name == "insert":
            docs = cmd.get("documents", [])
            _data.setdefault(ns, []).extend(docs)
            _save()
            return {"n": len(docs), "ok": 1.0}
        if name == "find":
            docs = [d for d in _data.get(ns, []) if _match(d, cmd.get("filter", {}))]
            if cmd.get("limit"):
                docs = docs[:cmd["limit"]]
            return {"cursor": {"id": 0, "ns": ns, "firstBatch": docs}, "ok": 1.0}
        if name == "count":
            return {"n": sum(_match(d, cmd.get("query", {})) for d in _data.get(ns, [])), "ok": 1.0}
        if name == "drop":
            _data.pop(ns, None)
            _save()
            return {"ok": 1.0}
    return {"ok": 0.0, "errmsg": f"no such command: '{name}'", "code": 59,
            "codeName": "CommandNotFound"}


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            try:
                msg = read_message(self.request)
            except Exception:
                return
            rid, _rto, cmd = decode_op_msg(msg)
            reply = handle(cmd)
            body = struct.pack("<I", 0) + b"\x00" + encode_bson(reply)
            self.request.sendall(struct.pack("<iiii", 16 + len(body), rid + 1000000, rid, OP_MSG) + body)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> None:
    global _path, _data
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    _path = os.path.join(a.dir, "data.json")
    if os.path.exists(_path):
        with open(_path) as f:
            _data = json.load(f)
    print(f"fake mongo on 127.0.0.1:{a.port}", flush=True)
    Server(("127.0.0.1", a.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
