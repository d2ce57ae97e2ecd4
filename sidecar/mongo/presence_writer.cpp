#include "presence_writer.hpp"

#include <algorithm>
#include <chrono>
#include <unordered_map>
#include <vector>

#include <mongoc/mongoc.h>

#include "bson_ptr.hpp"
#include "log.hpp"
#include "pooled_client.hpp"
#include "metrics.hpp"
#include "spool.hpp"

namespace levee {
namespace {

struct Newest {
    std::int64_t last_seen_ms;
    const std::string *room;
};

// After the `$max` of last_seen: a beat's room is set only where its
// last_seen is now the document's, so a record sent again after a newer one
// (a batch whose ack was lost) does not move the room back, as a `$set`
// beside the `$max` did. False with `err` when the write failed.
bool set_rooms(mongoc_collection_t *coll, const std::unordered_map<std::string, Newest> &newest, bson_error_t &err) {
    BsonPtr bulk_opts(BCON_NEW("ordered", BCON_BOOL(false)));
    std::unique_ptr<mongoc_bulk_operation_t, void (*)(mongoc_bulk_operation_t *)> bulk(
        mongoc_collection_create_bulk_operation_with_opts(coll, bulk_opts.get()), mongoc_bulk_operation_destroy);
    std::size_t n = 0;
    for (const auto &[user, beat] : newest) {
        if (beat.room->empty()) {
            continue;
        }
        BsonPtr selector(BCON_NEW("_id", BCON_UTF8(user.c_str()), "last_seen", BCON_DATE_TIME(beat.last_seen_ms)));
        BsonPtr update(BCON_NEW("$set", "{", "room", BCON_UTF8(beat.room->c_str()), "}"));
        if (!mongoc_bulk_operation_update_one_with_opts(bulk.get(), selector.get(), update.get(), nullptr, &err)) {
            return false;
        }
        n++;
    }
    if (n == 0) {
        return true;
    }
    bson_t reply;
    const bool ok = mongoc_bulk_operation_execute(bulk.get(), &reply, &err) != 0;
    bson_destroy(&reply);
    return ok;
}

} // namespace

PresenceWriter::PresenceWriter(mongoc_client_pool_t *pool, Spool &spool, PresenceWriterOptions options,
                               Metrics &metrics)
    : pool_(pool), spool_(spool), options_(std::move(options)), metrics_(metrics) {
    metrics_.describe("leveed_mongo_batches_total", "counter", "Bulk upserts of presence, by result.");
    metrics_.describe("leveed_mongo_records_total", "counter", "Spooled records written to MongoDB.");
    metrics_.describe("leveed_mongo_errors_total", "counter", "MongoDB errors, by operation.");
}

PresenceWriter::~PresenceWriter() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) {
        thread_.join();
    }
}

void PresenceWriter::start() {
    thread_ = std::thread([this] { run(); });
}

void PresenceWriter::poke() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        poked_ = true;
    }
    cv_.notify_one();
}

void PresenceWriter::set_flush_ms(std::uint32_t flush_ms) {
    std::lock_guard<std::mutex> lock(mutex_);
    options_.flush_ms = flush_ms;
}

bool PresenceWriter::prepare_collection() {
    PooledClient client(pool_);
    bson_error_t err;
    BsonPtr hello(BCON_NEW("hello", BCON_INT32(1)));
    bson_t reply;
    if (!mongoc_client_command_simple(client.get(), "admin", hello.get(), nullptr, &reply, &err)) {
        bson_destroy(&reply);
        return false;
    }
    bson_iter_t it;
    const bool mongos = bson_iter_init_find(&it, &reply, "msg") && BSON_ITER_HOLDS_UTF8(&it) &&
                        std::string(bson_iter_utf8(&it, nullptr)) == "isdbgrid";
    bson_destroy(&reply);

    if (mongos) {
        // Presence is written by user: a hashed _id spreads users over every shard.
        const std::string ns = options_.database + "." + options_.collection;
        BsonPtr enable(BCON_NEW("enableSharding", BCON_UTF8(options_.database.c_str())));
        BsonPtr shard(BCON_NEW("shardCollection", BCON_UTF8(ns.c_str()), "key", "{", "_id", BCON_UTF8("hashed"), "}"));
        for (const BsonPtr *cmd : {&enable, &shard}) {
            bson_t r;
            if (!mongoc_client_command_simple(client.get(), "admin", cmd->get(), nullptr, &r, &err)) {
                log::warn("mongo_shard_failed", {{"ns", ns}, {"error", err.message}});
            }
            bson_destroy(&r);
        }
        log::info("mongo_sharded", {{"ns", ns}, {"key", "_id hashed"}});
    }

    BsonPtr create(BCON_NEW("createIndexes", BCON_UTF8(options_.collection.c_str()), "indexes", "[", "{", "key", "{",
                            "last_seen", BCON_INT32(1), "}", "name", BCON_UTF8("last_seen_ttl"), "expireAfterSeconds",
                            BCON_INT32(static_cast<int32_t>(options_.ttl_s)), "}", "]"));
    bson_t r;
    const bool ok =
        mongoc_client_command_simple(client.get(), options_.database.c_str(), create.get(), nullptr, &r, &err);
    bson_destroy(&r);
    if (!ok) {
        log::warn("mongo_index_failed", {{"collection", options_.collection}, {"error", err.message}});
        return false;
    }
    log::info("mongo_ready", {{"database", options_.database},
                              {"collection", options_.collection},
                              {"mongos", mongos ? 1 : 0},
                              {"ttl_s", options_.ttl_s}});
    return true;
}

bool PresenceWriter::write_once(bool &wrote_any) {
    wrote_any = false;
    const SpoolPosition from = spool_.checkpoint();
    std::vector<SpoolRecord> records;
    SpoolPosition next;
    std::string error;
    if (!spool_.read(from, options_.max_batch, records, next, error)) {
        // An I/O error: damage is skipped (and reported) by the spool itself.
        metrics_.inc("leveed_mongo_errors_total", {{"op", "spool_read"}});
        log::error("spool_read_failed", {{"error", error}});
        return false;
    }
    if (records.empty()) {
        // Only damage was read past: move on, not to scan it again next round.
        if (next != from && !spool_.commit(next, 0, error)) {
            log::error("spool_commit_failed", {{"error", error}});
            return false;
        }
        return true;
    }

    std::unordered_map<std::string, Newest> newest;
    newest.reserve(records.size());
    for (const auto &r : records) {
        auto [it, inserted] = newest.try_emplace(r.user, Newest{r.last_seen_ms, &r.room});
        if (!inserted && r.last_seen_ms > it->second.last_seen_ms) {
            it->second = Newest{r.last_seen_ms, &r.room};
        }
    }

    PooledClient client(pool_);
    std::unique_ptr<mongoc_collection_t, void (*)(mongoc_collection_t *)> coll(
        mongoc_client_get_collection(client.get(), options_.database.c_str(), options_.collection.c_str()),
        mongoc_collection_destroy);
    BsonPtr bulk_opts(BCON_NEW("ordered", BCON_BOOL(false)));
    std::unique_ptr<mongoc_bulk_operation_t, void (*)(mongoc_bulk_operation_t *)> bulk(
        mongoc_collection_create_bulk_operation_with_opts(coll.get(), bulk_opts.get()), mongoc_bulk_operation_destroy);
    BsonPtr upsert(BCON_NEW("upsert", BCON_BOOL(true)));
    for (const auto &[user, n] : newest) {
        BsonPtr selector(BCON_NEW("_id", BCON_UTF8(user.c_str())));
        // the room of an existing user is set by set_rooms(), after this
        BsonPtr update(n.room->empty() ? BCON_NEW("$max", "{", "last_seen", BCON_DATE_TIME(n.last_seen_ms), "}")
                                       : BCON_NEW("$max", "{", "last_seen", BCON_DATE_TIME(n.last_seen_ms), "}",
                                                  "$setOnInsert", "{", "room", BCON_UTF8(n.room->c_str()), "}"));
        bson_error_t err;
        if (!mongoc_bulk_operation_update_one_with_opts(bulk.get(), selector.get(), update.get(), upsert.get(), &err)) {
            log::error("mongo_bulk_build_failed", {{"user", user}, {"error", err.message}});
            return false;
        }
    }
    bson_t reply;
    bson_error_t err;
    const bool ok = mongoc_bulk_operation_execute(bulk.get(), &reply, &err) != 0 && set_rooms(coll.get(), newest, err);
    bson_destroy(&reply);
    if (!ok) {
        metrics_.inc("leveed_mongo_batches_total", {{"result", "error"}});
        metrics_.inc("leveed_mongo_errors_total", {{"op", "bulk_upsert"}});
        log::warn("mongo_write_failed",
                  {{"records", records.size()}, {"error", err.message}, {"spooled", spool_.pending_records()}});
        return false;
    }
    if (!spool_.commit(next, records.size(), error)) {
        log::error("spool_commit_failed", {{"error", error}});
        return false;
    }
    metrics_.inc("leveed_mongo_batches_total", {{"result", "ok"}});
    metrics_.inc("leveed_mongo_records_total", {}, static_cast<double>(records.size()));
    log::debug("mongo_written", {{"records", records.size()}, {"users", newest.size()}});
    wrote_any = true;
    return true;
}

void PresenceWriter::run() {
    int failures = 0;
    for (;;) {
        {
            std::unique_lock<std::mutex> lock(mutex_);
            // After failures, back off (capped) instead of hammering a database that is away.
            const auto wait = std::chrono::milliseconds(
                failures == 0 ? options_.flush_ms : std::min<std::uint32_t>(5000, 250u << std::min(failures, 5)));
            cv_.wait_for(lock, wait, [this] { return stopping_ || poked_; });
            if (stopping_) {
                return;
            }
            poked_ = false;
        }
        if (!prepared_) {
            prepared_ = prepare_collection();
            if (!prepared_) {
                failures++;
                continue;
            }
        }
        bool wrote_any = true;
        bool ok = true;
        while (ok && wrote_any) {
            ok = write_once(wrote_any);
        }
        failures = ok ? 0 : failures + 1;
    }
}

} // namespace levee
