// The connection registry: records, for each sticky key (user), the upstream
// server nginx sent it to, so application servers can find where a user's
// socket lives. In Redis: `SET levee:registry:{KEY} server PX ttl`
// (redis::keys::registry).
// Standalone (no Redis) the records live in this process.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>

#include "levee.pb-c.h"
#include "log_throttle.hpp"
#include "service/probe.hpp"

namespace levee {

namespace redis {
class ClusterClient;
}
class Metrics;

class RegistryService {
  public:
    RegistryService(redis::ClusterClient *redis, Metrics &metrics);
    RegistryService(const RegistryService &) = delete;
    RegistryService &operator=(const RegistryService &) = delete;

    // Acknowledges once every entry was answered by Redis (or failed).
    void handle(std::uint64_t request_id, const Levee__RegistryBatch &batch, Reply reply);

    // Standalone only: the server recorded for a key, "" if none or expired.
    std::string lookup(const std::string &key) const;

  private:
    redis::ClusterClient *redis_;
    Metrics &metrics_;
    // standalone: redis key -> (server, expiry in steady-clock ms)
    std::unordered_map<std::string, std::pair<std::string, std::int64_t>> local_;
    // Every batch fails alike while Redis refuses writes.
    log::LogThrottle log_throttle_;
};

} // namespace levee
