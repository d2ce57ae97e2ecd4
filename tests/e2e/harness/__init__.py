"""Levee end-to-end test harness (standard library + pytest only).

Components (each: ``start()``, idempotent ``stop()``, context manager):

* :class:`RedisCluster` (redis_cluster.py) — real Redis Cluster
* :class:`MongoDatabase` (mongo_db.py) — a MongoDB-wire server, pluggable
* :class:`Nginx` (nginx.py) — private nginx, optional dynamic module
* :class:`UpstreamApp` (upstream_app.py) — HTTP + WebSocket echo app
* :class:`Leveed` (leveed.py) — the sidecar

and :class:`TlsFiles` / :func:`make_tls_files` (tls_certs.py, throw-away
certificates), :class:`TcpRelay` (tcp_relay.py, a relay that keeps what
crossed it).

Names are imported lazily so ``python -m harness.upstream_app`` stays light.
"""

from importlib import import_module

_EXPORTS = {
    "RedisCluster": "redis_cluster",
    "key_hash_slot": "redis_cluster",
    "MongoDatabase": "mongo_db",
    "MongoWireClient": "mongo_wire",
    "ObjectId": "mongo_wire",
    "Int64": "mongo_wire",
    "Nginx": "nginx",
    "UpstreamApp": "upstream_app",
    "WebSocketClient": "ws_client",
    "Leveed": "leveed",
    "TlsFiles": "tls_certs",
    "make_tls_files": "tls_certs",
    "TcpRelay": "tcp_relay",
    "wait_until": "wait",
    "WaitTimeout": "wait",
    "free_port": "ports",
    "ComponentUnavailable": "proc",
    "HarnessError": "proc",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value
