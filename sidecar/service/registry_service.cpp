#include "registry_service.hpp"

#include <chrono>
#include <memory>
#include <vector>

#include "cluster_client.hpp"
#include "keys.hpp"
#include "log.hpp"
#include "metrics.hpp"

namespace levee {
namespace {

// Beyond this many standalone records, expired ones are swept.
constexpr std::size_t kLocalSweepAt = 100000;

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

struct BatchState {
    std::uint64_t request_id = 0;
    Reply reply;
    std::size_t pending = 0;
    std::uint32_t written = 0;
    std::string error;

    void finish() {
        Levee__RegistryAck ack = LEVEE__REGISTRY_ACK__INIT;
        ack.ok = error.empty();
        ack.entries = written;
        ack.error = const_cast<char *>(error.c_str());
        Levee__Frame frame = LEVEE__FRAME__INIT;
        frame.request_id = request_id;
        frame.body_case = LEVEE__FRAME__BODY_REGISTRY_ACK;
        frame.registry_ack = &ack;
        reply(frame);
    }
};

} // namespace

RegistryService::RegistryService(redis::ClusterClient *redis, Metrics &metrics) : redis_(redis), metrics_(metrics) {
    metrics_.describe("leveed_registry_entries_total", "counter",
                      "Connection registry records written, by result (ok, failed).");
}

std::string RegistryService::lookup(const std::string &key) const {
    auto it = local_.find(redis::keys::registry(key));
    if (it == local_.end() || it->second.second <= now_ms()) {
        return "";
    }
    return it->second.first;
}

void RegistryService::handle(std::uint64_t request_id, const Levee__RegistryBatch &batch, Reply reply) {
    auto st = std::make_shared<BatchState>();
    st->request_id = request_id;
    st->reply = std::move(reply);

    // A zero TTL would make SET fail (and a record without TTL would outlive
    // the socket forever): the module never sends one, a foreign peer might.
    const std::uint32_t ttl_ms = batch.ttl_ms > 0 ? batch.ttl_ms : 1;

    if (redis_ == nullptr) {
        const std::int64_t now = now_ms();
        if (local_.size() > kLocalSweepAt) {
            for (auto it = local_.begin(); it != local_.end();) {
                it = it->second.second <= now ? local_.erase(it) : std::next(it);
            }
        }
        for (std::size_t i = 0; i < batch.n_entries; i++) {
            const Levee__RegistryEntry &e = *batch.entries[i];
            const std::string key(reinterpret_cast<const char *>(e.key.data), e.key.len);
            local_[redis::keys::registry(key)] = {e.server, now + ttl_ms};
        }
        st->written = static_cast<std::uint32_t>(batch.n_entries);
        metrics_.inc("leveed_registry_entries_total", {{"result", "ok"}}, static_cast<double>(batch.n_entries));
        st->finish();
        return;
    }

    st->pending = batch.n_entries + 1;
    auto one_done = [st] {
        if (--st->pending == 0) {
            st->finish();
        }
    };
    const std::string px = std::to_string(ttl_ms);
    for (std::size_t i = 0; i < batch.n_entries; i++) {
        const Levee__RegistryEntry &e = *batch.entries[i];
        std::string key =
            redis::keys::registry(std::string_view(reinterpret_cast<const char *>(e.key.data), e.key.len));
        std::vector<std::string> argv{"SET", key, e.server, "PX", px};
        // Pipelined per node by the cluster client: one round trip per master.
        const bool queued = redis_->command(key, std::move(argv), [this, st, one_done](const redis::Reply &r) {
            if (r.is_error()) {
                metrics_.inc("leveed_registry_entries_total", {{"result", "failed"}});
                if (st->error.empty()) {
                    st->error = r.str;
                    log_throttle_.warn("registry_write_failed", {{"error", r.str}});
                }
            } else {
                st->written++;
                metrics_.inc("leveed_registry_entries_total", {{"result", "ok"}});
            }
            one_done();
        });
        if (!queued) {
            metrics_.inc("leveed_registry_entries_total", {{"result", "failed"}});
            if (st->error.empty()) {
                st->error = "redis: too many commands in flight";
            }
            one_done();
        }
    }
    one_done();
}

} // namespace levee
