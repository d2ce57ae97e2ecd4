// Presence batches from the module: each record goes into the spool (for the
// MongoDB write-behind) and into the Redis Cluster with its TTL, and a record
// with a room into that room's online set; the batch is acknowledged only
// when all of them hold it. Presence queries read the same keys. Standalone
// (no Redis), presence lives in this process's memory.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "levee.pb-c.h"
#include "service/probe.hpp"

namespace levee {

namespace redis {
class ClusterClient;
class Script;
} // namespace redis
class Metrics;
class Spool;

// Users are spread over `presence_buckets` hash tags (leveed setting): a
// bucket's users share a slot, so one script call records all of a batch's
// users of that bucket. Fewer buckets, more users per call; more buckets,
// presence spread over more slots (and so over more masters).
constexpr std::uint16_t kDefaultPresenceBuckets = 64;

// Bucket of a user: CRC16 (Redis's own hash) of the user id, mod `buckets`.
std::uint16_t presence_bucket(const std::string &user, std::uint16_t buckets);

// The Redis key of a user's presence: "levee:p:{b<bucket>}:<user>".
std::string presence_key(std::uint16_t bucket, const std::string &user);
// The online set of a room: a ZSET of users scored by when they expire.
std::string room_key(const std::string &room);

constexpr std::size_t kMaxPresenceUserBytes = 256;

class PresenceService {
  public:
    // Either may be null: no Redis is standalone mode, no spool means no database.
    PresenceService(redis::ClusterClient *redis, Spool *spool, Metrics &metrics,
                    std::uint16_t buckets = kDefaultPresenceBuckets);
    ~PresenceService();

    void handle(std::uint64_t request_id, const Levee__PresenceBatch &batch, Reply reply);
    void query(std::uint64_t request_id, const Levee__PresenceQuery &q, Reply reply);

    // Standalone mode: last_seen of a user, or -1.
    std::int64_t local_last_seen(const std::string &user, std::int64_t now_ms) const;

  private:
    redis::ClusterClient *redis_;
    Spool *spool_;
    std::uint16_t buckets_;
    Metrics &metrics_;
    std::unique_ptr<redis::Script> beat_;
    std::unique_ptr<redis::Script> room_beat_;
    std::unique_ptr<redis::Script> room_query_;
    struct Local {
        std::int64_t last_seen_ms;
        std::int64_t expires_ms;
    };
    std::unordered_map<std::string, Local> local_;
    // room -> user -> expires_ms; expired members are dropped by queries
    std::unordered_map<std::string, std::unordered_map<std::string, std::int64_t>> local_rooms_;
};

} // namespace levee
