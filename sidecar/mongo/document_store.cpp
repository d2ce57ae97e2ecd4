#include "document_store.hpp"

#include <mongoc/mongoc.h>

#include "bson_ptr.hpp"
#include "log.hpp"
#include "mongo_uri.hpp"
#include "pooled_client.hpp"
#include "metrics.hpp"

namespace levee {
namespace {

struct CollectionDeleter {
    void operator()(mongoc_collection_t *c) const { mongoc_collection_destroy(c); }
};

std::string to_json(const bson_t *doc) {
    size_t len = 0;
    char *s = bson_as_relaxed_extended_json(doc, &len);
    std::string out(s ? s : "", s ? len : 0);
    bson_free(s);
    return out;
}

} // namespace

DocumentStore::DocumentStore(event_base *loop, std::string uri, std::string database, Metrics &metrics)
    : uri_(std::move(uri)), database_(std::move(database)), metrics_(metrics), poster_(loop),
      pool_(nullptr, mongoc_client_pool_destroy) {
    metrics_.describe("leveed_mongo_operations_total", "counter", "Database operations by kind and result.");
}

DocumentStore::~DocumentStore() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) {
        thread_.join();
    }
}

bool DocumentStore::start(std::string &error) {
    bson_error_t err;
    std::unique_ptr<mongoc_uri_t, void (*)(mongoc_uri_t *)> uri(mongoc_uri_new_with_error(uri_.c_str(), &err),
                                                                mongoc_uri_destroy);
    if (!uri) {
        error = std::string("invalid mongo URI: ") + err.message;
        return false;
    }
    // libmongoc waits 30 s for a server by default; a writer that is told
    // quickly can spool instead of stalling.
    if (!mongoc_uri_has_option(uri.get(), MONGOC_URI_SERVERSELECTIONTIMEOUTMS)) {
        mongoc_uri_set_option_as_int32(uri.get(), MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 2000);
    }
    if (!mongoc_uri_has_option(uri.get(), MONGOC_URI_CONNECTTIMEOUTMS)) {
        mongoc_uri_set_option_as_int32(uri.get(), MONGOC_URI_CONNECTTIMEOUTMS, 2000);
    }
    pool_.reset(mongoc_client_pool_new(uri.get()));
    if (!pool_) {
        error = "cannot create a mongoc client pool";
        return false;
    }
    mongoc_client_pool_set_error_api(pool_.get(), MONGOC_ERROR_API_VERSION_2);
    mongoc_client_pool_set_appname(pool_.get(), "leveed");

    // Ask once who we talk to: a mongos needs its collections sharded.
    {
        PooledClient client(pool_.get());
        BsonPtr cmd(BCON_NEW("hello", BCON_INT32(1)));
        bson_t reply;
        if (mongoc_client_command_simple(client.get(), "admin", cmd.get(), nullptr, &reply, &err)) {
            bson_iter_t it;
            is_mongos_ = bson_iter_init_find(&it, &reply, "msg") && BSON_ITER_HOLDS_UTF8(&it) &&
                         std::string(bson_iter_utf8(&it, nullptr)) == "isdbgrid";
            log::info("mongo_connected",
                      {{"uri", redact_mongo_uri(uri_)}, {"database", database_}, {"mongos", is_mongos_ ? 1 : 0}});
        } else {
            // Not fatal: the database may come later; operations report errors meanwhile.
            log::warn("mongo_unreachable", {{"uri", redact_mongo_uri(uri_)}, {"error", err.message}});
        }
        bson_destroy(&reply);
    }

    thread_ = std::thread([this] { run(); });
    return true;
}

void DocumentStore::enqueue(Job job) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
}

std::size_t DocumentStore::queued() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return jobs_.size();
}

void DocumentStore::run() {
    for (;;) {
        Job job;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
            if (jobs_.empty()) {
                return; // stopping, and everything queued is done
            }
            job = std::move(jobs_.front());
            jobs_.pop_front();
        }
        PooledClient client(pool_.get());
        job(client.get());
    }
}

void DocumentStore::put(std::string collection, std::string id, std::string fields_json, Done done) {
    enqueue([this, collection = std::move(collection), id = std::move(id), fields_json = std::move(fields_json),
             done = std::move(done)](mongoc_client_t *client) mutable {
        bson_error_t err;
        std::string error;
        BsonPtr fields(bson_new_from_json(reinterpret_cast<const uint8_t *>(fields_json.data()),
                                          static_cast<ssize_t>(fields_json.size()), &err));
        bool ok = false;
        if (!fields) {
            error = std::string("bad document: ") + err.message;
        } else {
            std::unique_ptr<mongoc_collection_t, CollectionDeleter> coll(
                mongoc_client_get_collection(client, database_.c_str(), collection.c_str()));
            BsonPtr selector(BCON_NEW("_id", BCON_UTF8(id.c_str())));
            BsonPtr update(bson_new());
            bson_append_document(update.get(), "$set", -1, fields.get());
            BsonPtr opts(BCON_NEW("upsert", BCON_BOOL(true)));
            ok = mongoc_collection_update_one(coll.get(), selector.get(), update.get(), opts.get(), nullptr, &err);
            if (!ok) {
                error = err.message;
            }
        }
        metrics_.inc("leveed_mongo_operations_total", {{"op", "put"}, {"result", ok ? "ok" : "error"}});
        poster_.post([done = std::move(done), ok, error] { done(ok, error); });
    });
}

void DocumentStore::get(std::string collection, std::string id, Found found) {
    enqueue([this, collection = std::move(collection), id = std::move(id),
             found = std::move(found)](mongoc_client_t *client) mutable {
        std::unique_ptr<mongoc_collection_t, CollectionDeleter> coll(
            mongoc_client_get_collection(client, database_.c_str(), collection.c_str()));
        BsonPtr filter(BCON_NEW("_id", BCON_UTF8(id.c_str())));
        BsonPtr opts(BCON_NEW("limit", BCON_INT64(1)));
        std::unique_ptr<mongoc_cursor_t, void (*)(mongoc_cursor_t *)> cursor(
            mongoc_collection_find_with_opts(coll.get(), filter.get(), opts.get(), nullptr), mongoc_cursor_destroy);
        const bson_t *doc = nullptr;
        std::string json;
        if (mongoc_cursor_next(cursor.get(), &doc)) {
            json = to_json(doc);
        }
        bson_error_t err;
        const bool ok = !mongoc_cursor_error(cursor.get(), &err);
        std::string error = ok ? "" : err.message;
        metrics_.inc("leveed_mongo_operations_total", {{"op", "get"}, {"result", ok ? "ok" : "error"}});
        poster_.post([found = std::move(found), ok, json = std::move(json), error] { found(ok, json, error); });
    });
}

void DocumentStore::last_seen(std::string collection, std::vector<std::string> ids, int max_time_ms,
                              FoundLastSeen found) {
    enqueue([this, collection = std::move(collection), ids = std::move(ids), max_time_ms,
             found = std::move(found)](mongoc_client_t *client) mutable {
        std::unique_ptr<mongoc_collection_t, CollectionDeleter> coll(
            mongoc_client_get_collection(client, database_.c_str(), collection.c_str()));
        BsonPtr filter(bson_new());
        bson_t id_clause, in;
        BSON_APPEND_DOCUMENT_BEGIN(filter.get(), "_id", &id_clause);
        BSON_APPEND_ARRAY_BEGIN(&id_clause, "$in", &in);
        for (std::size_t i = 0; i < ids.size(); i++) {
            const std::string index = std::to_string(i);
            BSON_APPEND_UTF8(&in, index.c_str(), ids[i].c_str());
        }
        bson_append_array_end(&id_clause, &in);
        bson_append_document_end(filter.get(), &id_clause);
        BsonPtr opts(
            BCON_NEW("projection", "{", "last_seen", BCON_INT32(1), "}", "maxTimeMS", BCON_INT64(max_time_ms)));
        std::unique_ptr<mongoc_cursor_t, void (*)(mongoc_cursor_t *)> cursor(
            mongoc_collection_find_with_opts(coll.get(), filter.get(), opts.get(), nullptr), mongoc_cursor_destroy);
        LastSeen seen;
        const bson_t *doc = nullptr;
        while (mongoc_cursor_next(cursor.get(), &doc)) {
            bson_iter_t id, at;
            if (!bson_iter_init_find(&id, doc, "_id") || !BSON_ITER_HOLDS_UTF8(&id) ||
                !bson_iter_init_find(&at, doc, "last_seen")) {
                continue;
            }
            const std::string user = bson_iter_utf8(&id, nullptr);
            if (BSON_ITER_HOLDS_DATE_TIME(&at)) {
                seen[user] = bson_iter_date_time(&at);
            } else if (BSON_ITER_HOLDS_NUMBER(&at)) {
                seen[user] = bson_iter_as_int64(&at);
            }
        }
        bson_error_t err;
        const bool ok = !mongoc_cursor_error(cursor.get(), &err);
        std::string error = ok ? "" : err.message;
        metrics_.inc("leveed_mongo_operations_total", {{"op", "last_seen"}, {"result", ok ? "ok" : "error"}});
        poster_.post([found = std::move(found), ok, seen = std::move(seen), error]() mutable {
            found(ok, std::move(seen), error);
        });
    });
}

void DocumentStore::flush(std::function<void()> done) {
    enqueue([this, done = std::move(done)](mongoc_client_t *) mutable { poster_.post(std::move(done)); });
}

} // namespace levee
