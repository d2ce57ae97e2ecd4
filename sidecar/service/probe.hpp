// The probe: writes a key into the Redis Cluster and a document into the
// database, reads both back, and says where they went. Lets an operator (and
// the tests) check the whole path from the socket to both stores.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "levee.pb-c.h"

namespace levee {

namespace redis {
class ClusterClient;
}
class DocumentStore;

using Reply = std::function<void(const Levee__Frame &frame)>;

class ProbeService {
  public:
    // Either store may be null (standalone mode, or no database configured).
    ProbeService(redis::ClusterClient *redis, DocumentStore *mongo) : redis_(redis), mongo_(mongo) {}
    void run(std::uint64_t request_id, const Levee__ProbeRequest &request, Reply reply);

  private:
    redis::ClusterClient *redis_;
    DocumentStore *mongo_;
};

} // namespace levee
