"""Where leveed keeps things in Redis (see docs/heartbeat.md, README.md)."""

from __future__ import annotations

from .redis_cluster import _crc16

PRESENCE_BUCKETS = 64  # leveed's presence_buckets default (sidecar/config/config.hpp)


def presence_key(user: str, ttl_ms: int = 180000, buckets: int = PRESENCE_BUCKETS) -> str:
    """``levee:p:{b<crc16(user) % buckets>}:<ttl_ms>``: the ZSET holding ``user``
    (scored by when its presence expires) if it beat with that ttl."""
    return f"levee:p:{{b{_crc16(user.encode()) % buckets}}}:{ttl_ms}"


def last_seen(score: str | None, ttl_ms: int = 180000) -> int | None:
    """A user's last_seen (ms) from its ZSCORE in its presence key."""
    return None if score is None else int(float(score)) - ttl_ms


def room_key(room: str) -> str:
    return f"levee:r:{{{room}}}"


def registry_key(key: str) -> str:
    return f"levee:s:{{{key}}}"
