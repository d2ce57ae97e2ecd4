// Every Redis key leveed writes or reads, in one place: `levee:<feature>:...`.
// The test harness (tests/e2e/harness/levee_keys.py) parses the k...Prefix
// constants below, so keep them as `inline constexpr std::string_view kName =
// "levee:...";` on one line each.
//
// Hash tags: Redis Cluster hashes only the text between the first '{' and the
// first '}' after it. A tag is placed where keys must share a slot (one
// command touches them together) or where a slot must follow from an
// application's own id alone. A tag never holds the prefix, so renaming a
// prefix moves no key to another slot.
// Ids holding '{' or '}' shift the tag (as Redis would): callers pass ids as
// nginx and the module give them.
//
// These names replaced levee:p:, levee:r: and levee:s: (and unprefixed probe
// keys) in 0.2.0: see docs/leveed.md, "Redis keys".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace levee::redis::keys {

inline constexpr std::string_view kLimitPrefix = "levee:limit:";
inline constexpr std::string_view kPresencePrefix = "levee:presence:";
inline constexpr std::string_view kPresenceTtlsKey = "levee:presence:ttls";
inline constexpr std::string_view kRoomPrefix = "levee:presence:room:";
inline constexpr std::string_view kRegistryPrefix = "levee:registry:";
inline constexpr std::string_view kProbePrefix = "levee:probe:";

// A global rate limit's GCRA bucket (lua/limit_lease.lua):
// "levee:limit:{ZONE:KEY}:PERIOD_US:CAPACITY". The rate is in the name so a
// TAT is only read with the period it was written with; the tag leaves it
// out so that during a rolling reload one key's buckets at the old and the
// new rate live on one slot, one master.
std::string limit_bucket(std::string_view zone, std::string_view key, std::uint64_t period_us, std::uint32_t capacity);

// The bucket's lease ledger: "BUCKET:leases", a HASH of each leveed's last
// lease of it (lua/limit_lease.lua), so that a lease sent again after an
// unknown outcome is answered its first grant instead of spending twice.
std::string limit_leases(std::string_view bucket);

// The online set of a presence bucket's users who beat with one ttl:
// "levee:presence:{bBUCKET}:TTL_MS", a ZSET scored by when each expires.
// The tag is the bucket alone: all of a bucket's users share a slot, so one
// ZADD records all of a batch's users of that bucket, and a query's ZMSCORE
// for one bucket reads every ttl's key on one master.
std::string presence_bucket(std::uint16_t bucket, std::int64_t ttl_ms);

// The online set of a room (lua/presence_room.lua, presence_room_query.lua):
// "levee:presence:room:{ROOM}". Each script touches this one key; the tag
// makes the slot CRC16(ROOM), from the room's name alone.
std::string room(std::string_view room);

// The connection registry's record of a sticky key (levee_sticky):
// "levee:registry:{KEY}" = "host:port". Applications read it: the tag makes
// its slot CRC16(KEY), computable from the key alone.
std::string registry(std::string_view key);

// What `leveectl probe KEY VALUE` writes and reads back:
// "levee:probe:{KEY}". The tag makes its slot CRC16(KEY), so an operator
// (and the tests) choose the master a probe lands on by choosing KEY.
std::string probe(std::string_view key);

} // namespace levee::redis::keys
