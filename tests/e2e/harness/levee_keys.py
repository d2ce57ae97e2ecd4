"""Where leveed keeps things in Redis, read from the one source:
``sidecar/redis/keys.hpp`` (see docs/heartbeat.md, README.md). The prefixes
are parsed from its ``inline constexpr std::string_view kName = "levee:...";``
constants, so a renamed key changes here too; a constant that went missing
fails the import, not a test that then finds nothing in Redis."""

from __future__ import annotations

import os
import re

from .build import repo_root
from .redis_cluster import _crc16

KEYS_HPP = os.path.join(repo_root(), "sidecar", "redis", "keys.hpp")
_NAMES = ("kLimitPrefix", "kPresencePrefix", "kPresenceTtlsKey", "kRoomPrefix", "kRegistryPrefix", "kProbePrefix")


def _constants(path: str = KEYS_HPP) -> dict[str, str]:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    found = dict(re.findall(r'constexpr\s+std::string_view\s+(k\w+)\s*=\s*"(levee:[^"]*)"\s*;', text))
    missing = [n for n in _NAMES if n not in found]
    if missing:
        raise ImportError(f"{path} no longer defines {', '.join(missing)}: update tests/e2e/harness/levee_keys.py")
    return found


_K = _constants()
LIMIT_PREFIX = _K["kLimitPrefix"]
PRESENCE_PREFIX = _K["kPresencePrefix"]
PRESENCE_TTLS_KEY = _K["kPresenceTtlsKey"]
ROOM_PREFIX = _K["kRoomPrefix"]
REGISTRY_PREFIX = _K["kRegistryPrefix"]
PROBE_PREFIX = _K["kProbePrefix"]

PRESENCE_BUCKETS = 64  # leveed's presence_buckets default (sidecar/config/config.hpp)


def limit_key(zone: str, key: str, period_us: int, capacity: int) -> str:
    """A global limit's GCRA bucket: ``levee:limit:{ZONE:KEY}:PERIOD_US:CAPACITY``."""
    return f"{LIMIT_PREFIX}{{{zone}:{key}}}:{period_us}:{capacity}"


def presence_key(user: str, ttl_ms: int = 180000, buckets: int = PRESENCE_BUCKETS) -> str:
    """``levee:presence:{b<crc16(user) % buckets>}:<ttl_ms>``: the ZSET holding
    ``user`` (scored by when its presence expires) if it beat with that ttl."""
    return f"{PRESENCE_PREFIX}{{b{_crc16(user.encode()) % buckets}}}:{ttl_ms}"


def last_seen(score: str | None, ttl_ms: int = 180000) -> int | None:
    """A user's last_seen (ms) from its ZSCORE in its presence key."""
    return None if score is None else int(float(score)) - ttl_ms


def room_key(room: str) -> str:
    return f"{ROOM_PREFIX}{{{room}}}"


def registry_key(key: str) -> str:
    return f"{REGISTRY_PREFIX}{{{key}}}"


def probe_key(key: str) -> str:
    """What ``leveectl probe KEY VALUE`` writes: its slot is KEY's."""
    return f"{PROBE_PREFIX}{{{key}}}"
