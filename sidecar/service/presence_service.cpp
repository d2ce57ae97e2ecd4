#include "presence_service.hpp"

#include <chrono>
#include <cstring>
#include <vector>

#include "cluster_client.hpp"
#include "log.hpp"
#include "metrics.hpp"
#include "script.hpp"
#include "spool.hpp"

namespace levee {
namespace {

std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

void send_ack(const Reply &reply, std::uint64_t request_id, bool ok, std::uint32_t records,
              const std::string &error) {
    Levee__Frame frame = LEVEE__FRAME__INIT;
    Levee__PresenceAck ack = LEVEE__PRESENCE_ACK__INIT;
    frame.request_id = request_id;
    frame.body_case = LEVEE__FRAME__BODY_PRESENCE_ACK;
    frame.presence_ack = &ack;
    ack.ok = ok;
    ack.records = records;
    ack.error = const_cast<char *>(error.c_str());
    reply(frame);
}

// Counts the Redis answers of one batch and acknowledges when all are in.
struct BatchState {
    std::uint64_t request_id;
    std::uint32_t records;
    std::size_t pending;
    std::string error;
    Reply reply;
};

} // namespace

std::string presence_key(const std::string &user) { return "levee:p:{" + user + "}"; }

PresenceService::PresenceService(redis::ClusterClient *redis, Spool *spool, Metrics &metrics)
    : redis_(redis), spool_(spool), metrics_(metrics) {
    if (redis_ != nullptr) {
        beat_ = std::make_unique<redis::Script>(*redis_, "presence_beat");
    }
    metrics_.describe("leveed_presence_records_total", "counter", "Presence records received, by result.");
    metrics_.describe("leveed_presence_batches_total", "counter", "Presence batches acknowledged, by result.");
}

PresenceService::~PresenceService() = default;

std::int64_t PresenceService::local_last_seen(const std::string &user, std::int64_t now_ms) const {
    const auto it = local_.find(user);
    return it == local_.end() || it->second.expires_ms <= now_ms ? -1 : it->second.last_seen_ms;
}

void PresenceService::handle(std::uint64_t request_id, const Levee__PresenceBatch &batch, Reply reply) {
    const std::uint32_t n = static_cast<std::uint32_t>(batch.n_records);
    const std::int64_t ttl_ms = batch.ttl_ms == 0 ? 180000 : batch.ttl_ms;

    std::vector<SpoolRecord> records;
    records.reserve(n);
    for (std::size_t i = 0; i < batch.n_records; i++) {
        const Levee__PresenceRecord &r = *batch.records[i];
        const std::size_t user_len = std::strlen(r.user);
        if (user_len == 0 || user_len > kMaxPresenceUserBytes || std::strlen(r.room) > kMaxPresenceUserBytes) {
            metrics_.inc("leveed_presence_batches_total", {{"result", "invalid"}});
            send_ack(reply, request_id, false, n, "record " + std::to_string(i) + ": invalid user or room");
            return;
        }
        records.push_back({r.user, r.room, r.last_seen_ms});
    }

    // The spool first: once the batch is there, the database gets it even if
    // leveed dies before Redis answers (the module resends; $max makes that harmless).
    if (spool_ != nullptr) {
        std::string error;
        if (!spool_->append(records, error)) {
            metrics_.inc("leveed_presence_batches_total", {{"result", "spool_error"}});
            log::error("spool_append_failed", {{"error", error}});
            send_ack(reply, request_id, false, n, "spool: " + error);
            return;
        }
    }

    if (redis_ == nullptr) {
        const std::int64_t now = wall_ms();
        for (const auto &r : records) {
            Local &l = local_[r.user];
            l.last_seen_ms = std::max(l.last_seen_ms, r.last_seen_ms);
            l.expires_ms = now + ttl_ms;
        }
        metrics_.inc("leveed_presence_records_total", {{"result", "ok"}}, n);
        metrics_.inc("leveed_presence_batches_total", {{"result", "ok"}});
        send_ack(reply, request_id, true, n, "");
        return;
    }

    auto st = std::make_shared<BatchState>(BatchState{request_id, n, records.size() + 1, "", std::move(reply)});
    auto finish_one = [this, st] {
        if (--st->pending > 0) {
            return;
        }
        const bool ok = st->error.empty();
        metrics_.inc("leveed_presence_records_total", {{"result", ok ? "ok" : "error"}}, st->records);
        metrics_.inc("leveed_presence_batches_total", {{"result", ok ? "ok" : "error"}});
        send_ack(st->reply, st->request_id, ok, st->records, st->error);
    };
    const std::string ttl = std::to_string(ttl_ms);
    for (const auto &r : records) {
        const bool queued = beat_->run({presence_key(r.user)}, {ttl, std::to_string(r.last_seen_ms)},
                                       [st, finish_one](const redis::Reply &answer) {
                                           if (answer.is_error() && st->error.empty()) {
                                               st->error = "redis: " + answer.str;
                                           }
                                           finish_one();
                                       });
        if (!queued) {
            metrics_.inc("leveed_presence_refused_total");
            if (st->error.empty()) {
                st->error = "redis: too many commands in flight";
            }
            finish_one();
        }
    }
    finish_one();
}

} // namespace levee
