// Global rate limits: grants quota leases to nginx workers. Each (zone, key)
// is one GCRA bucket, in Redis (lua/limit_lease.lua) when a cluster is
// configured, else in this process (standalone: one leveed serves one nginx).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "levee.pb-c.h"
#include "log_throttle.hpp"

struct event_base;
#include "net/frame_connection.hpp"
#include "service/probe.hpp"

namespace levee {

namespace redis {
class ClusterClient;
class Script;
} // namespace redis
class Metrics;

// How long a lease may wait for Redis before leveed answers it as failed. The
// cluster client keeps retrying a command through a failover for up to 15 s;
// a worker must instead learn within its patience (at least 1 s, see
// ngx_http_levee_limit_module) that the key cannot be counted globally, so
// that levee_limit_fail decides.
constexpr int kLeaseDeadlineMs = 500;

class LimitService {
  public:
    // `base` arms the per-lease deadline; without it (tests) a lease waits
    // for Redis as long as the cluster client does.
    LimitService(redis::ClusterClient *redis, Metrics &metrics, event_base *base = nullptr,
                 int deadline_ms = kLeaseDeadlineMs);
    ~LimitService();
    LimitService(const LimitService &) = delete;
    LimitService &operator=(const LimitService &) = delete;

    // `declared`: the zones the connection's hello declared; a key of another
    // zone, or with other bucket parameters, fails ("undeclared"). Null: the
    // caller vouches for the parameters (tests of the buckets themselves).
    void handle(std::uint64_t request_id, const Levee__LimitLeaseRequest &request, Reply reply,
                const DeclaredZones *declared = nullptr);

  private:
    std::uint32_t grant_locally(const std::string &bucket, const Levee__LimitLeaseEntry &e);

    redis::ClusterClient *redis_;
    std::unique_ptr<redis::Script> script_;
    Metrics &metrics_;
    std::unordered_map<std::string, std::int64_t> local_; // bucket -> TAT (us), standalone
    event_base *base_;
    int deadline_ms_;
    // Buckets whose command outlived its deadline and is still retried by
    // the cluster client: later leases of them fail at once instead of
    // piling one more command per sync interval onto an unreachable node.
    std::unordered_set<std::string> stuck_;
    // Tokens Redis granted after the lease's deadline: taken from the
    // global bucket, so handed out with the next lease of that bucket.
    std::unordered_map<std::string, std::uint32_t> late_;
    // A lease's id in the bucket's ledger (lua/limit_lease.lua): this
    // process, drawn at random, and a number. The cluster client sends a
    // command again, id included, when it cannot know whether it ran.
    std::string lease_owner_;
    std::uint64_t next_lease_ = 0;
    // Each lease may fail alike: a peer repeating an undeclared one, every
    // worker's leases while Redis is away.
    log::LogThrottle log_throttle_;
};

} // namespace levee
