// Global rate limits: grants quota leases to nginx workers. Each (zone, key)
// is one GCRA bucket, in Redis (lua/limit_lease.lua) when a cluster is
// configured, else in this process (standalone: one leveed serves one nginx).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "levee.pb-c.h"
#include "service/probe.hpp"

namespace levee {

namespace redis {
class ClusterClient;
class Script;
} // namespace redis
class Metrics;

class LimitService {
  public:
    LimitService(redis::ClusterClient *redis, Metrics &metrics);
    ~LimitService();
    LimitService(const LimitService &) = delete;
    LimitService &operator=(const LimitService &) = delete;

    void handle(std::uint64_t request_id, const Levee__LimitLeaseRequest &request, Reply reply);

    // The Redis key of a bucket: the hash tag keeps it on one slot.
    static std::string bucket_key(const std::string &zone, const std::string &key);

  private:
    std::uint32_t grant_locally(const std::string &bucket, const Levee__LimitLeaseEntry &e);

    redis::ClusterClient *redis_;
    std::unique_ptr<redis::Script> script_;
    Metrics &metrics_;
    std::unordered_map<std::string, std::int64_t> local_; // bucket -> TAT (us), standalone
};

} // namespace levee
