// Writes presence behind to MongoDB: reads the spool from its checkpoint,
// keeps the newest last_seen per user of each batch, and writes unordered bulk
// upserts with $max, so replays and out-of-order batches never move a user's
// last_seen backwards. On its own thread; when the database is away the
// records simply wait in the spool, and are written in order once it is back.
// A record the database refuses for good (or that is not valid UTF-8, which
// no BSON document may hold) is counted as lost and passed over, so it never
// holds up the records behind it; the TTL index is prepared on the side and
// never holds up writing either (docs/leveed.md, "MongoDB").
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "log_budget.hpp"

typedef struct _mongoc_client_pool_t mongoc_client_pool_t;
typedef struct _mongoc_client_t mongoc_client_t;

namespace levee {

class Metrics;
class Spool;

// Where users' last_seen lives in the database; presence queries read it too.
constexpr const char *kPresenceCollection = "presence";

struct PresenceWriterOptions {
    std::string database = "levee";
    std::string collection = kPresenceCollection;
    std::uint32_t flush_ms = 1000;    // write-behind interval
    std::size_t max_batch = 100000;   // records read from the spool (and coalesced) per bulk write
    std::uint32_t ttl_s = 30 * 86400; // documents expire this long after last_seen
};

class PresenceWriter {
  public:
    PresenceWriter(mongoc_client_pool_t *pool, Spool &spool, PresenceWriterOptions options, Metrics &metrics);
    ~PresenceWriter(); // stops and joins; what is not written stays in the spool
    PresenceWriter(const PresenceWriter &) = delete;
    PresenceWriter &operator=(const PresenceWriter &) = delete;

    void start();
    // Wakes the writer now rather than at the next interval.
    void poke();
    // A reload: the writer waits the new interval from its next round on.
    void set_flush_ms(std::uint32_t flush_ms);

  private:
    void run();
    // Whether the database answered; behind a mongos, also shards the collection.
    bool prepare_collection();
    // The TTL index on last_seen; true once settled (made, changed, or found
    // impossible), false to try again later. Writing never waits for it.
    bool prepare_ttl_index();
    bool create_ttl_index(mongoc_client_t *client, std::string &error, std::int64_t &code, bool &reached);
    bool write_once(bool &wrote_any);
    // Records passed over for good: counted, and logged within a budget.
    void lose(const std::string &user, std::size_t records, const char *reason, const std::string &error);

    mongoc_client_pool_t *pool_;
    Spool &spool_;
    PresenceWriterOptions options_;
    Metrics &metrics_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool stopping_ = false;
    bool poked_ = false;
    bool prepared_ = false;
    bool index_settled_ = false;
    std::size_t ops_per_command_ = 0; // 0: as many as libmongoc sends in one command
    log::LogBudget loss_log_{5, 60000};
    std::thread thread_;
};

} // namespace levee
