"""Where leveed keeps things in Redis (see docs/heartbeat.md, README.md)."""

from __future__ import annotations

from .redis_cluster import _crc16

PRESENCE_BUCKETS = 256  # sidecar/service/presence_service.hpp: kPresenceBuckets


def presence_key(user: str) -> str:
    """``levee:p:{b<crc16(user) % 256>}:<user>``: a user's last_seen, with its TTL."""
    return f"levee:p:{{b{_crc16(user.encode()) % PRESENCE_BUCKETS}}}:{user}"


def room_key(room: str) -> str:
    return f"levee:r:{{{room}}}"


def registry_key(key: str) -> str:
    return f"levee:s:{{{key}}}"
