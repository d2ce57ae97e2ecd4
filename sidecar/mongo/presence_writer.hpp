// Writes presence behind to MongoDB: reads the spool from its checkpoint,
// keeps the newest last_seen per user of each batch, and writes unordered bulk
// upserts with $max, so replays and out-of-order batches never move a user's
// last_seen backwards. On its own thread; when the database is away the
// records simply wait in the spool, and are written in order once it is back.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

typedef struct _mongoc_client_pool_t mongoc_client_pool_t;

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
    bool prepare_collection(); // indexes, and sharding behind a mongos
    bool write_once(bool &wrote_any);

    mongoc_client_pool_t *pool_;
    Spool &spool_;
    PresenceWriterOptions options_;
    Metrics &metrics_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool stopping_ = false;
    bool poked_ = false;
    bool prepared_ = false;
    std::thread thread_;
};

} // namespace levee
