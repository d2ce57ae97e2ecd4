// Access to the MongoDB database (a mongos in production) through libmongoc,
// on a thread of its own so that leveed's event loop never waits on it. Not
// the PresenceWriter's thread: lookups with a deadline must not queue behind
// its bulk writes (docs/architecture.md).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "loop_poster.hpp"

typedef struct _mongoc_client_pool_t mongoc_client_pool_t;
typedef struct _mongoc_client_t mongoc_client_t;

namespace levee {

class Metrics;

class DocumentStore {
  public:
    using Done = std::function<void(bool ok, const std::string &error)>;
    using Found = std::function<void(bool ok, const std::string &json, const std::string &error)>;
    // id -> `last_seen` in ms since the epoch, for the ids that have one.
    using LastSeen = std::unordered_map<std::string, std::int64_t>;
    using FoundLastSeen = std::function<void(bool ok, LastSeen seen, const std::string &error)>;

    DocumentStore(event_base *loop, std::string uri, std::string database, Metrics &metrics);
    ~DocumentStore(); // finishes queued work, then joins the thread
    DocumentStore(const DocumentStore &) = delete;
    DocumentStore &operator=(const DocumentStore &) = delete;

    bool start(std::string &error);

    // Upserts the document {_id: id} with `$set` of the fields in `fields_json`.
    void put(std::string collection, std::string id, std::string fields_json, Done done);
    // Finds {_id: id}; `json` is relaxed extended JSON, empty if there is none.
    void get(std::string collection, std::string id, Found found);
    // The `last_seen` field of the documents {_id: id} of `ids`, in one query
    // that the server gives at most `max_time_ms`.
    void last_seen(std::string collection, std::vector<std::string> ids, int max_time_ms, FoundLastSeen found);
    // Calls `done` once all work queued so far has finished.
    void flush(std::function<void()> done);

    std::size_t queued() const;
    // Thread-safe; for other writers of the same database (PresenceWriter).
    mongoc_client_pool_t *pool() const { return pool_.get(); }
    bool is_mongos() const { return is_mongos_; }

  private:
    using Job = std::function<void(mongoc_client_t *)>;
    void enqueue(Job job);
    void run();

    std::string uri_;
    std::string database_;
    Metrics &metrics_;
    LoopPoster poster_;
    std::unique_ptr<mongoc_client_pool_t, void (*)(mongoc_client_pool_t *)> pool_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<Job> jobs_;
    bool stopping_ = false;
    bool is_mongos_ = false;
    std::thread thread_;
};

} // namespace levee
