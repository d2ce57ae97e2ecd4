"""Where leveed keeps things in Redis (see docs/heartbeat.md, README.md)."""

from __future__ import annotations

from .redis_cluster import _crc16

PRESENCE_BUCKETS = 64  # leveed's presence_buckets default (sidecar/config/config.hpp)


def presence_key(user: str, buckets: int = PRESENCE_BUCKETS) -> str:
    """``levee:p:{b<crc16(user) % buckets>}:<user>``: a user's last_seen, with its TTL."""
    return f"levee:p:{{b{_crc16(user.encode()) % buckets}}}:{user}"


def room_key(room: str) -> str:
    return f"levee:r:{{{room}}}"


def registry_key(key: str) -> str:
    return f"levee:s:{{{key}}}"
