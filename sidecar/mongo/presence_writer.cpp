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
#include "write_outcome.hpp"

namespace levee {
namespace {

constexpr const char *kTtlIndexName = "last_seen_ttl";
constexpr std::size_t kFerretDbOpsPerCommand = 50;

struct Newest {
    std::int64_t last_seen_ms;
    const std::string *room;
    std::size_t records; // of the batch, coalesced into this user's operation
};

std::int64_t int_field(const bson_t *doc, const char *key) {
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_NUMBER(&it) ? bson_iter_as_int64(&it) : 0;
}

bool non_empty_array(const bson_t *doc, const char *key) {
    bson_iter_t it, child;
    return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &child) &&
           bson_iter_next(&child);
}

// The reply of a failed bulk write, as libmongoc completes it.
BulkAnswer read_bulk_answer(const bson_t *reply, std::size_t operations) {
    BulkAnswer a;
    a.operations = operations;
    a.applied = int_field(reply, "nMatched") + int_field(reply, "nUpserted");
    a.write_concern_error = non_empty_array(reply, "writeConcernErrors");
    bson_iter_t it, labels;
    if (bson_iter_init_find(&it, reply, "errorLabels") && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &labels)) {
        while (bson_iter_next(&labels)) {
            if (BSON_ITER_HOLDS_UTF8(&labels) &&
                std::string(bson_iter_utf8(&labels, nullptr)) == "RetryableWriteError") {
                a.retryable_label = true;
            }
        }
    }
    bson_iter_t errors;
    if (bson_iter_init_find(&it, reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &errors)) {
        while (bson_iter_next(&errors)) {
            bson_t doc;
            const uint8_t *data = nullptr;
            uint32_t len = 0;
            if (!BSON_ITER_HOLDS_DOCUMENT(&errors)) {
                continue;
            }
            bson_iter_document(&errors, &len, &data);
            if (!bson_init_static(&doc, data, len)) {
                continue;
            }
            bson_iter_t msg;
            const std::int64_t index = int_field(&doc, "index");
            a.write_errors.push_back({index < 0 ? operations : static_cast<std::size_t>(index), int_field(&doc, "code"),
                                      bson_iter_init_find(&msg, &doc, "errmsg") && BSON_ITER_HOLDS_UTF8(&msg)
                                          ? bson_iter_utf8(&msg, nullptr)
                                          : ""});
        }
    }
    return a;
}

using Entry = std::pair<const std::string, Newest>;
using BulkPtr = std::unique_ptr<mongoc_bulk_operation_t, void (*)(mongoc_bulk_operation_t *)>;

BulkPtr new_bulk(mongoc_collection_t *coll) {
    BsonPtr opts(BCON_NEW("ordered", BCON_BOOL(false)));
    return BulkPtr(mongoc_collection_create_bulk_operation_with_opts(coll, opts.get()), mongoc_bulk_operation_destroy);
}

// The user's upsert; false (and why in `err`) if libmongoc refuses to build it.
bool append_upsert(mongoc_bulk_operation_t *bulk, const Entry &entry, bson_error_t *err) {
    const auto &[user, n] = entry;
    BsonPtr selector(BCON_NEW("_id", BCON_UTF8(user.c_str())));
    // the room of an existing user is set by set_rooms(), after this
    BsonPtr update(n.room->empty() ? BCON_NEW("$max", "{", "last_seen", BCON_DATE_TIME(n.last_seen_ms), "}")
                                   : BCON_NEW("$max", "{", "last_seen", BCON_DATE_TIME(n.last_seen_ms), "}",
                                              "$setOnInsert", "{", "room", BCON_UTF8(n.room->c_str()), "}"));
    BsonPtr upsert(BCON_NEW("upsert", BCON_BOOL(true)));
    return mongoc_bulk_operation_update_one_with_opts(bulk, selector.get(), update.get(), upsert.get(), err);
}

// True if every operation was applied; else what the reply says, and why.
bool execute(mongoc_bulk_operation_t *bulk, std::size_t operations, BulkAnswer &answer, std::string &error) {
    bson_t reply;
    bson_error_t err;
    const bool ok = mongoc_bulk_operation_execute(bulk, &reply, &err) != 0;
    if (!ok) {
        answer = read_bulk_answer(&reply, operations);
        error = err.message;
    }
    bson_destroy(&reply);
    return ok;
}

// After the `$max` of last_seen: a beat's room is set only where its
// last_seen is now the document's, so a record sent again after a newer one
// (a batch whose ack was lost) does not move the room back, as a `$set`
// beside the `$max` did. `skip` holds the indexes of `ops` refused for good.
bool set_rooms(mongoc_collection_t *coll, const std::vector<const Entry *> &ops, const std::vector<WriteError> &skip,
               std::string &error) {
    BulkPtr bulk = new_bulk(coll);
    std::size_t n = 0;
    for (std::size_t i = 0; i < ops.size(); i++) {
        const auto &[user, beat] = *ops[i];
        const bool refused = std::any_of(skip.begin(), skip.end(), [i](const WriteError &e) { return e.index == i; });
        if (beat.room->empty() || refused) {
            continue;
        }
        BsonPtr selector(BCON_NEW("_id", BCON_UTF8(user.c_str()), "last_seen", BCON_DATE_TIME(beat.last_seen_ms)));
        BsonPtr update(BCON_NEW("$set", "{", "room", BCON_UTF8(beat.room->c_str()), "}"));
        bson_error_t err;
        if (!mongoc_bulk_operation_update_one_with_opts(bulk.get(), selector.get(), update.get(), nullptr, &err)) {
            error = err.message;
            return false;
        }
        n++;
    }
    BulkAnswer answer;
    return n == 0 || execute(bulk.get(), n, answer, error);
}

// Each operation on its own, to learn which ones the server refuses for good
// (BulkVerdict::kOneByOne). False at the first answer that is not a
// permanent refusal: the batch is then sent again later.
bool refusals_one_by_one(mongoc_collection_t *coll, const std::vector<const Entry *> &ops,
                         std::vector<WriteError> &refused, std::string &error) {
    for (std::size_t i = 0; i < ops.size(); i++) {
        BulkPtr single = new_bulk(coll);
        bson_error_t err;
        if (!append_upsert(single.get(), *ops[i], &err)) {
            error = err.message;
            return false;
        }
        BulkAnswer answer;
        if (execute(single.get(), 1, answer, error)) {
            continue;
        }
        if (judge_bulk(answer) == BulkVerdict::kRetry) {
            return false;
        }
        refused.push_back({i, answer.write_errors.front().code, answer.write_errors.front().message});
    }
    return true;
}

} // namespace

PresenceWriter::PresenceWriter(mongoc_client_pool_t *pool, Spool &spool, PresenceWriterOptions options,
                               Metrics &metrics)
    : pool_(pool), spool_(spool), options_(std::move(options)), metrics_(metrics) {
    metrics_.describe("leveed_mongo_batches_total", "counter", "Bulk upserts of presence, by result.");
    metrics_.describe("leveed_mongo_records_total", "counter", "Spooled records written to MongoDB.");
    metrics_.describe("leveed_mongo_errors_total", "counter", "MongoDB errors, by operation.");
    metrics_.describe("leveed_mongo_records_lost_total", "counter",
                      "Spooled records passed over without reaching MongoDB, by reason (invalid: user or room not "
                      "valid UTF-8; refused: the database refused the write for good).");
    metrics_.describe("leveed_mongo_ttl_index", "gauge",
                      "1 when the TTL index on last_seen expires presence documents after mongo_ttl_s, 0 when the "
                      "database lacks TTL indexes or refused it (documents then stay until deleted by hand).");
    metrics_.set("leveed_mongo_ttl_index", {}, 0);
    metrics_.describe("leveed_mongo_up", "gauge",
                      "1 while the database answers: its hello at start, then each bulk write of presence.");
    metrics_.set("leveed_mongo_up", {}, 0);
    metrics_.describe_histogram("leveed_mongo_write_duration_seconds",
                                "One bulk write of presence (up to one command's records), retries of refused "
                                "records and the room update included.",
                                {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10});
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
        metrics_.set("leveed_mongo_up", {}, 0);
        return false;
    }
    metrics_.set("leveed_mongo_up", {}, 1);
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

    // FerretDB v1 (buildInfo says ferretdbVersion) hangs for good on an
    // update command of 100 or more operations that match existing documents
    // (v1.24.2 over SQLite, measured: 99 pass, 100 never answer): its
    // batches are cut to half that.
    BsonPtr build_info(BCON_NEW("buildInfo", BCON_INT32(1)));
    ops_per_command_ = 0;
    if (mongoc_client_command_simple(client.get(), "admin", build_info.get(), nullptr, &reply, &err) &&
        bson_iter_init_find(&it, &reply, "ferretdbVersion") && BSON_ITER_HOLDS_UTF8(&it)) {
        ops_per_command_ = kFerretDbOpsPerCommand;
        log::info("mongo_ferretdb", {{"version", bson_iter_utf8(&it, nullptr)}, {"ops_per_command", ops_per_command_}});
    }
    bson_destroy(&reply);
    log::info("mongo_ready",
              {{"database", options_.database}, {"collection", options_.collection}, {"mongos", mongos ? 1 : 0}});
    return true;
}

bool PresenceWriter::create_ttl_index(mongoc_client_t *client, std::string &error, std::int64_t &code, bool &reached) {
    BsonPtr create(BCON_NEW("createIndexes", BCON_UTF8(options_.collection.c_str()), "indexes", "[", "{", "key", "{",
                            "last_seen", BCON_INT32(1), "}", "name", BCON_UTF8(kTtlIndexName), "expireAfterSeconds",
                            BCON_INT32(static_cast<int32_t>(options_.ttl_s)), "}", "]"));
    bson_t r;
    bson_error_t err;
    const bool ok = mongoc_client_command_simple(client, options_.database.c_str(), create.get(), nullptr, &r, &err);
    bson_destroy(&r);
    if (!ok) {
        error = err.message;
        code = err.code;
        reached = err.domain == MONGOC_ERROR_SERVER;
    }
    return ok;
}

bool PresenceWriter::prepare_ttl_index() {
    PooledClient client(pool_);
    std::string error;
    std::int64_t code = 0;
    bool reached = false;
    const std::string ttl = std::to_string(options_.ttl_s);
    if (create_ttl_index(client.get(), error, code, reached)) {
        metrics_.set("leveed_mongo_ttl_index", {}, 1);
        log::info("mongo_ttl_index_ready", {{"collection", options_.collection}, {"ttl_s", options_.ttl_s}});
        return true;
    }
    switch (classify_index_failure(reached, code)) {
    case IndexFailure::kRetry:
        log::warn("mongo_ttl_index_retry", {{"collection", options_.collection}, {"error", error}});
        return false;
    case IndexFailure::kConflict: {
        // The index exists with another expireAfterSeconds (mongo_ttl_s was
        // changed): change it in place. collMod finds it by key, whatever its name.
        BsonPtr mod(BCON_NEW("collMod", BCON_UTF8(options_.collection.c_str()), "index", "{", "keyPattern", "{",
                             "last_seen", BCON_INT32(1), "}", "expireAfterSeconds",
                             BCON_INT32(static_cast<int32_t>(options_.ttl_s)), "}"));
        bson_t r;
        bson_error_t err;
        const bool modified =
            mongoc_client_command_simple(client.get(), options_.database.c_str(), mod.get(), nullptr, &r, &err);
        bson_destroy(&r);
        if (modified) {
            metrics_.set("leveed_mongo_ttl_index", {}, 1);
            log::info("mongo_ttl_index_changed", {{"collection", options_.collection}, {"ttl_s", options_.ttl_s}});
            return true;
        }
        // No collMod of indexes here (or the conflict is about the name):
        // drop what is in the way, by our name and by our key, and create it again.
        log::warn("mongo_ttl_index_recreated",
                  {{"collection", options_.collection}, {"ttl_s", options_.ttl_s}, {"collmod_error", err.message}});
        BsonPtr by_name(
            BCON_NEW("dropIndexes", BCON_UTF8(options_.collection.c_str()), "index", BCON_UTF8(kTtlIndexName)));
        BsonPtr by_key(BCON_NEW("dropIndexes", BCON_UTF8(options_.collection.c_str()), "index", "{", "last_seen",
                                BCON_INT32(1), "}"));
        for (const BsonPtr *cmd : {&by_name, &by_key}) {
            bson_t dr;
            mongoc_client_command_simple(client.get(), options_.database.c_str(), cmd->get(), nullptr, &dr, nullptr);
            bson_destroy(&dr);
        }
        if (create_ttl_index(client.get(), error, code, reached)) {
            metrics_.set("leveed_mongo_ttl_index", {}, 1);
            log::info("mongo_ttl_index_ready", {{"collection", options_.collection}, {"ttl_s", options_.ttl_s}});
            return true;
        }
        if (classify_index_failure(reached, code) == IndexFailure::kRetry) {
            return false;
        }
        break;
    }
    case IndexFailure::kUnsupported:
        metrics_.set("leveed_mongo_ttl_index", {}, 0);
        log::warn("mongo_ttl_index_unsupported",
                  {{"collection", options_.collection},
                   {"error", error},
                   {"lost", "the database does not expire presence documents: they stay after mongo_ttl_s=" + ttl},
                   {"do", "delete documents with last_seen older than " + ttl +
                              " s yourself (docs/leveed.md), or use a database with TTL indexes"}});
        return true;
    case IndexFailure::kFailed: break;
    }
    metrics_.set("leveed_mongo_ttl_index", {}, 0);
    log::warn("mongo_ttl_index_failed",
              {{"collection", options_.collection},
               {"error", error},
               {"code", static_cast<long long>(code)},
               {"lost", "the database does not expire presence documents: they stay after mongo_ttl_s=" + ttl},
               {"do", "fix the index on last_seen by hand, or delete old documents yourself (docs/leveed.md)"}});
    return true;
}

void PresenceWriter::lose(const std::string &user, std::size_t records, const char *reason, const std::string &error) {
    metrics_.inc("leveed_mongo_records_lost_total", {{"reason", reason}}, static_cast<double>(records));
    const auto now =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count();
    if (loss_log_.take(now)) {
        log::warn("mongo_record_lost", {{"user", printable_bytes(user)},
                                        {"records", records},
                                        {"reason", reason},
                                        {"error", error},
                                        {"suppressed", loss_log_.take_suppressed()}});
    }
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
        auto [it, inserted] = newest.try_emplace(r.user, Newest{r.last_seen_ms, &r.room, 1});
        if (inserted) {
            continue;
        }
        it->second.records++;
        if (r.last_seen_ms > it->second.last_seen_ms) {
            it->second.last_seen_ms = r.last_seen_ms;
            it->second.room = &r.room;
        }
    }

    PooledClient client(pool_);
    std::unique_ptr<mongoc_collection_t, void (*)(mongoc_collection_t *)> coll(
        mongoc_client_get_collection(client.get(), options_.database.c_str(), options_.collection.c_str()),
        mongoc_collection_destroy);
    // Records passed over are said once the batch is settled: a batch sent
    // again must not count them twice.
    struct Loss {
        const Entry *entry;
        const char *reason;
        std::string error;
    };
    std::vector<Loss> losses;
    std::vector<const Entry *> valid;
    valid.reserve(newest.size());
    for (const auto &entry : newest) {
        // No BSON string may be other than UTF-8, but libmongoc 1.23 sends
        // such a user or room as it is, and SecantusDB then refuses the whole
        // command, every time: refuse it here, the same for every database,
        // and with embedded NULs, which a C string would cut short.
        if (bson_utf8_validate(entry.first.data(), entry.first.size(), false) &&
            bson_utf8_validate(entry.second.room->data(), entry.second.room->size(), false)) {
            valid.push_back(&entry);
        } else {
            losses.push_back({&entry, "invalid", "user or room is not valid UTF-8"});
        }
    }
    const std::size_t per_command = ops_per_command_ != 0 ? ops_per_command_ : valid.size();
    for (std::size_t from = 0; from < valid.size(); from += per_command) {
        BulkPtr bulk = new_bulk(coll.get());
        std::vector<const Entry *> ops; // the bulk's operations, in order
        for (std::size_t i = from; i < std::min(valid.size(), from + per_command); i++) {
            bson_error_t err;
            if (append_upsert(bulk.get(), *valid[i], &err)) {
                ops.push_back(valid[i]);
            } else {
                losses.push_back({valid[i], "invalid", err.message});
            }
        }
        BulkAnswer answer;
        std::vector<WriteError> refused;
        const auto started = std::chrono::steady_clock::now();
        bool ok = ops.empty() || execute(bulk.get(), ops.size(), answer, error);
        if (!ok) {
            const BulkVerdict verdict = judge_bulk(answer);
            if (verdict == BulkVerdict::kSettled) {
                refused = std::move(answer.write_errors);
                ok = true;
            } else if (verdict == BulkVerdict::kOneByOne) {
                ok = refusals_one_by_one(coll.get(), ops, refused, error);
            }
        }
        ok = ok && set_rooms(coll.get(), ops, refused, error);
        const std::chrono::duration<double> took = std::chrono::steady_clock::now() - started;
        metrics_.observe("leveed_mongo_write_duration_seconds", {}, took.count());
        metrics_.set("leveed_mongo_up", {}, ok ? 1 : 0);
        if (!ok) {
            metrics_.inc("leveed_mongo_batches_total", {{"result", "error"}});
            metrics_.inc("leveed_mongo_errors_total", {{"op", "bulk_upsert"}});
            log::warn("mongo_write_failed",
                      {{"records", records.size()}, {"error", error}, {"spooled", spool_.pending_records()}});
            return false;
        }
        // What was refused for good would be refused again: passing over it
        // is what lets the records behind it through.
        for (const auto &e : refused) {
            losses.push_back({ops[e.index], "refused", "code " + std::to_string(e.code) + ": " + e.message});
        }
    }
    if (!spool_.commit(next, records.size(), error)) {
        log::error("spool_commit_failed", {{"error", error}});
        return false;
    }
    std::size_t lost = 0;
    for (const auto &l : losses) {
        lose(l.entry->first, l.entry->second.records, l.reason, l.error);
        lost += l.entry->second.records;
    }
    metrics_.inc("leveed_mongo_batches_total", {{"result", lost == 0 ? "ok" : "partial"}});
    metrics_.inc("leveed_mongo_records_total", {}, static_cast<double>(records.size() - lost));
    log::debug("mongo_written", {{"records", records.size()}, {"users", newest.size()}, {"lost", lost}});
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
        if (!index_settled_) {
            index_settled_ = prepare_ttl_index();
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
