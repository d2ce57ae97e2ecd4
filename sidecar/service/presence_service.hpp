// Presence batches from the module: each record goes into the spool (for the
// MongoDB write-behind) and into the Redis Cluster with its TTL, and a record
// with a room into that room's online set; the batch is acknowledged only
// when Redis answered all of it, and failed (the module sends it again) if
// any answer was an error that may pass. An error that would not pass (a
// script error, a key of the wrong type) does not fail the batch: what it
// refused is counted as lost (see PresenceLoss), so that one poison batch
// never blocks the ones behind it. With spool_fsync always the ack also
// waits for the spool's sync thread to say the batch is durable (the loop
// serves other frames meanwhile). A spool that cannot take a batch does not
// hold up the ack: only the database's copy is lost (see SpoolFeed).
// Presence queries read the same keys. Standalone (no Redis), presence lives
// in this process's memory.
//
// In Redis a user's presence is a member of a ZSET scored by when it expires
// (last_seen + ttl), like a room's members: one ZADD GT records all of a
// batch's users of one bucket and only ever moves a user forward, so a
// replay after a failover is harmless. A key per user set by a script
// (MGET, then SET PX if newer) cost 3.4-3.9 us of Redis CPU per beat, master
// and replica, against 1.0 us for this; every beat is a Redis write, on CPUs
// that nginx may share.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "levee.pb-c.h"
#include "log_throttle.hpp"
#include "service/presence_loss.hpp"
#include "service/probe.hpp"
#include "service/spool_feed.hpp"

struct event_base;

namespace levee {

namespace redis {
class ClusterClient;
class Script;
} // namespace redis
class DocumentStore;
class Metrics;
class Spool;

// Users are spread over `presence_buckets` hash tags (leveed setting): a
// bucket's users share a slot, so one command records all of a batch's users
// of that bucket. Fewer buckets, more users per command; more buckets,
// presence spread over more slots (and so over more masters).
constexpr std::uint16_t kDefaultPresenceBuckets = 64;

// Bucket of a user: CRC16 (Redis's own hash) of the user id, mod `buckets`.
std::uint16_t presence_bucket(const std::string &user, std::uint16_t buckets);

// Keys: redis::keys::presence_bucket (one ZSET per bucket and ttl, the ttl
// in the name so that last_seen = score - ttl), kPresenceTtlsKey (the SET of
// the ttls that presence keys exist for: a query reads it to know which keys
// a user can be in) and redis::keys::room.

constexpr std::size_t kMaxPresenceUserBytes = 256;
// The latest last_seen a record may carry: with any ttl (32 bits of ms) added
// it stays below 2^53, exact in Lua's and JSON's doubles, and never overflows.
constexpr std::int64_t kMaxLastSeenMs = (std::int64_t{1} << 53) - (std::int64_t{1} << 32);

// A room's members of one batch go to Redis in script calls of at most this
// many: a call blocks Redis while it runs, and a batch (up to 4,000 records
// from the module) may be all of one room.
constexpr std::size_t kRoomMembersPerCall = 1000;

// How long a query waits for MongoDB's last_seen of users who are offline in
// Redis before it answers without it ("last_seen": null), and how many such
// lookups may wait for the database at once (beyond, none is made).
constexpr int kOfflineLookupMs = 300;
constexpr std::size_t kMaxOfflineLookups = 64;

struct QueryAnswer;

class PresenceService {
  public:
    // Any may be null: no Redis is standalone mode, no spool and no mongo
    // means no database. `base` arms the deadline of offline lookups.
    // `to_loop` brings the spool's word that a batch is durable back to the
    // loop (see SpoolFeed).
    PresenceService(redis::ClusterClient *redis, Spool *spool, DocumentStore *mongo, event_base *base, Metrics &metrics,
                    std::uint16_t buckets = kDefaultPresenceBuckets, SpoolFeed::ToLoop to_loop = {});
    ~PresenceService();

    void handle(std::uint64_t request_id, const Levee__PresenceBatch &batch, Reply reply);
    void query(std::uint64_t request_id, const Levee__PresenceQuery &q, Reply reply);

  private:
    // The PEXPIRE and SADD commands a batch carries besides its ZADDs (see maintained_).
    std::vector<std::vector<std::string>> maintenance(const std::map<std::uint16_t, std::vector<std::string>> &buckets,
                                                      std::int64_t ttl_ms, std::int64_t now);

    // Fills in MongoDB's last_seen of the users that Redis does not know,
    // then calls `then` (at once without a database; after kOfflineLookupMs
    // at the latest).
    void lookup_offline(const std::shared_ptr<QueryAnswer> &a, std::function<void()> then);

    redis::ClusterClient *redis_;
    DocumentStore *mongo_;
    event_base *base_;
    std::uint16_t buckets_;
    Metrics &metrics_;
    SpoolFeed spool_feed_;
    PresenceLoss loss_;
    std::unique_ptr<redis::Script> room_beat_;
    std::unique_ptr<redis::Script> room_query_;
    struct Local {
        std::int64_t last_seen_ms;
        std::int64_t expires_ms;
    };
    std::unordered_map<std::string, Local> local_;
    // When each presence key's expiry and each ttl's entry in redis::keys::kPresenceTtlsKey
    // were last written (wall ms): both are refreshed now and then, not per batch.
    std::unordered_map<std::string, std::int64_t> maintained_;
    // room -> user -> expires_ms; expired members are dropped by queries
    std::unordered_map<std::string, std::unordered_map<std::string, std::int64_t>> local_rooms_;
    // Every query's lookup fails alike while MongoDB is away.
    log::LogThrottle log_throttle_;
};

} // namespace levee
