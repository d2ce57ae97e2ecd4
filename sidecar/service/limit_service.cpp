#include "limit_service.hpp"

#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "cluster_client.hpp"
#include "event_ptr.hpp"
#include "core/limit/gcra.hpp"
#include "core/limit/lease.hpp"
#include "keys.hpp"
#include "log.hpp"
#include "metrics.hpp"
#include "script.hpp"

namespace levee {
namespace {

// Beyond this many standalone buckets, full (idle) ones are swept.
constexpr std::size_t kLocalSweepAt = 100000;

struct Grant {
    std::string zone;
    std::string key;
    std::string bucket;
    std::uint32_t granted = 0;
    bool failed = false;
    bool answered = false;
};

// Collects the answers of one lease request; replies when all are in.
struct LeaseState {
    std::uint64_t request_id = 0;
    Reply reply;
    std::vector<Grant> grants;
    std::size_t pending = 0;
    std::string error;
    bool replied = false;
    std::function<void(LeaseState &)> expire;
    EventPtr deadline;

    // Once: at the last answer or at the deadline, whichever comes first.
    void finish() {
        if (replied) {
            return;
        }
        replied = true;
        deadline.reset();
        std::vector<Levee__LimitLeaseGrant> out(grants.size());
        std::vector<Levee__LimitLeaseGrant *> ptrs(grants.size());
        for (std::size_t i = 0; i < grants.size(); i++) {
            levee__limit_lease_grant__init(&out[i]);
            out[i].zone = const_cast<char *>(grants[i].zone.c_str());
            out[i].key.data = reinterpret_cast<uint8_t *>(grants[i].key.data());
            out[i].key.len = grants[i].key.size();
            out[i].granted = grants[i].granted;
            out[i].failed = grants[i].failed;
            ptrs[i] = &out[i];
        }
        Levee__LimitLeaseReply body = LEVEE__LIMIT_LEASE_REPLY__INIT;
        body.n_grants = ptrs.size();
        body.grants = ptrs.data();
        body.error = const_cast<char *>(error.c_str());
        Levee__Frame frame = LEVEE__FRAME__INIT;
        frame.request_id = request_id;
        frame.body_case = LEVEE__FRAME__BODY_LIMIT_LEASE_REPLY;
        frame.limit_lease_reply = &body;
        reply(frame);
    }
};

void on_deadline(evutil_socket_t, short, void *arg) {
    auto *st = static_cast<LeaseState *>(arg);
    st->expire(*st);
}

std::string random_owner() {
    std::random_device rd;
    char out[17];
    std::snprintf(out, sizeof out, "%08x%08x", rd(), rd());
    return out;
}

std::int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

} // namespace

LimitService::LimitService(redis::ClusterClient *redis, Metrics &metrics, event_base *base, int deadline_ms)
    : redis_(redis), metrics_(metrics), base_(base), deadline_ms_(deadline_ms), lease_owner_(random_owner()) {
    if (redis_ != nullptr) {
        script_ = std::make_unique<redis::Script>(*redis_, lua::limit_lease());
    }
    metrics_.describe("leveed_limit_leases_total", "counter",
                      "Keys asked for quota, by result (ok, failed, invalid: parameters no zone can declare, "
                      "undeclared: a zone or bucket parameters the connection's hello did not declare, "
                      "timeout: no answer by the deadline, "
                      "stuck: an earlier lease of the key is still unanswered).");
    metrics_.describe("leveed_limit_tokens_granted_total", "counter", "Global rate-limit tokens leased to nginx.");
}

LimitService::~LimitService() = default;

std::uint32_t LimitService::grant_locally(const std::string &bucket, const Levee__LimitLeaseEntry &e) {
    const std::int64_t now = now_us();
    if (local_.size() > kLocalSweepAt) {
        for (auto it = local_.begin(); it != local_.end();) {
            it = it->second <= now ? local_.erase(it) : std::next(it);
        }
    }
    if (e.period_us == 0 || e.capacity == 0) {
        return 0;
    }
    // The module's own GCRA: a standalone leveed hands out quota exactly as
    // the Redis bucket (lua/limit_lease.lua) would.
    levee::limit::GcraParams params;
    params.period_us = e.period_us;
    params.tolerance_us = (static_cast<std::uint64_t>(e.capacity) - 1) * e.period_us;
    return static_cast<std::uint32_t>(levee::limit::gcra_take_n(params, local_[bucket], now, e.want));
}

void LimitService::handle(std::uint64_t request_id, const Levee__LimitLeaseRequest &request, Reply reply,
                          const DeclaredZones *declared) {
    auto st = std::make_shared<LeaseState>();
    st->request_id = request_id;
    st->reply = std::move(reply);
    st->grants.resize(request.n_entries);

    for (std::size_t i = 0; i < request.n_entries; i++) {
        const Levee__LimitLeaseEntry &e = *request.entries[i];
        Grant &g = st->grants[i];
        g.zone = e.zone;
        g.key.assign(reinterpret_cast<const char *>(e.key.data), e.key.len);
        // a bucket nginx did not declare at hello: a peer choosing its own
        // rate and burst for a key
        if (declared != nullptr) {
            const auto z = declared->find(g.zone);
            if (z == declared->end() || z->second.period_us != e.period_us || z->second.capacity != e.capacity) {
                g.failed = true;
                g.answered = true;
                metrics_.inc("leveed_limit_leases_total", {{"result", "undeclared"}});
                if (st->error.empty()) {
                    st->error = "undeclared lease: zone \"" + g.zone + "\" with period_us " +
                                std::to_string(e.period_us) + " and capacity " + std::to_string(e.capacity) +
                                (z == declared->end() ? " was not declared at hello"
                                                      : " differs from the period_us " +
                                                            std::to_string(z->second.period_us) + " and capacity " +
                                                            std::to_string(z->second.capacity) + " declared at hello");
                    log_throttle_.warn("limit_lease_undeclared", {{"zone", g.zone}, {"error", st->error}});
                }
                continue;
            }
        }
        // parameters no zone can declare: no arithmetic on them, the
        // module's fail mode decides for the key
        if (!levee::limit::lease_params_valid(e.period_us, e.capacity)) {
            g.failed = true;
            g.answered = true;
            metrics_.inc("leveed_limit_leases_total", {{"result", "invalid"}});
            if (st->error.empty()) {
                st->error = "invalid lease: period_us " + std::to_string(e.period_us) + " and capacity " +
                            std::to_string(e.capacity) + " are outside what a zone can declare";
                log_throttle_.warn("limit_lease_invalid", {{"zone", g.zone}, {"error", st->error}});
            }
        }
    }

    if (redis_ == nullptr) {
        std::uint64_t total = 0;
        std::size_t ok = 0;
        for (std::size_t i = 0; i < request.n_entries; i++) {
            Grant &g = st->grants[i];
            const Levee__LimitLeaseEntry &e = *request.entries[i];
            if (g.failed) {
                continue;
            }
            g.granted = grant_locally(redis::keys::limit_bucket(g.zone, g.key, e.period_us, e.capacity), e);
            total += g.granted;
            ok++;
        }
        metrics_.inc("leveed_limit_leases_total", {{"result", "ok"}}, static_cast<double>(ok));
        metrics_.inc("leveed_limit_tokens_granted_total", {}, static_cast<double>(total));
        st->finish();
        return;
    }

    if (base_ != nullptr && deadline_ms_ > 0) {
        st->expire = [this](LeaseState &state) {
            std::size_t expired = 0;
            for (Grant &g : state.grants) {
                if (!g.answered) {
                    g.failed = true;
                    stuck_.insert(g.bucket);
                    expired++;
                }
            }
            metrics_.inc("leveed_limit_leases_total", {{"result", "timeout"}}, static_cast<double>(expired));
            if (state.error.empty()) {
                state.error = "redis: no answer within " + std::to_string(deadline_ms_) + " ms";
                log_throttle_.warn("limit_lease_timeout",
                                   {{"keys", static_cast<long>(expired)}, {"error", state.error}});
            }
            state.finish();
        };
        st->deadline = start_timer(base_, deadline_ms_, on_deadline, st.get());
    }

    st->pending = request.n_entries + 1;
    auto one_done = [st] {
        if (--st->pending == 0) {
            st->finish();
        }
    };
    for (std::size_t i = 0; i < request.n_entries; i++) {
        const Levee__LimitLeaseEntry &e = *request.entries[i];
        Grant &g = st->grants[i];
        if (g.failed) {
            one_done();
            continue;
        }
        g.bucket = redis::keys::limit_bucket(g.zone, g.key, e.period_us, e.capacity);

        auto late = late_.find(g.bucket);
        if (late != late_.end()) {
            g.granted = late->second;
            late_.erase(late);
        }

        if (stuck_.count(g.bucket) != 0) {
            g.failed = true;
            g.answered = true;
            metrics_.inc("leveed_limit_leases_total", {{"result", "stuck"}});
            if (st->error.empty()) {
                st->error = "redis: an earlier lease of this key is still unanswered";
            }
            one_done();
            continue;
        }

        // Pipelined by the cluster client: one round trip per node, not per key.
        const bool queued = script_->run(
            {g.bucket, redis::keys::limit_leases(g.bucket)},
            {std::to_string(e.period_us), std::to_string(e.capacity), std::to_string(e.want), lease_owner_,
             std::to_string(++next_lease_)},
            [this, st, i, one_done](const redis::Reply &r) {
                Grant &g = st->grants[i];
                g.answered = true;
                const bool ok = r.type == redis::Reply::Type::Integer && r.integer >= 0;
                metrics_.inc("leveed_limit_leases_total", {{"result", ok ? "ok" : "failed"}});
                if (st->replied) {
                    // past the deadline: the worker was told "failed"
                    stuck_.erase(g.bucket);
                    if (ok && r.integer > 0 && late_.size() < kLocalSweepAt) {
                        late_[g.bucket] += static_cast<std::uint32_t>(r.integer);
                        metrics_.inc("leveed_limit_tokens_granted_total", {}, static_cast<double>(r.integer));
                    }
                } else if (ok) {
                    g.granted += static_cast<std::uint32_t>(r.integer);
                    metrics_.inc("leveed_limit_tokens_granted_total", {}, static_cast<double>(r.integer));
                } else {
                    g.failed = true;
                    if (st->error.empty()) {
                        st->error = r.is_error() ? r.str : "unexpected reply to limit_lease";
                        log_throttle_.warn("limit_lease_failed", {{"zone", g.zone}, {"error", st->error}});
                    }
                }
                one_done();
            });
        if (!queued) {
            g.failed = true;
            g.answered = true;
            if (st->error.empty()) {
                st->error = "redis: too many commands in flight";
            }
            one_done();
        }
    }
    one_done();
}

} // namespace levee
