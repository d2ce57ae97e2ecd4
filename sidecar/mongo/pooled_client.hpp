// A client borrowed from a mongoc pool for one job, returned when it goes out
// of scope.
#pragma once

#include <mongoc/mongoc.h>

namespace levee {

class PooledClient {
  public:
    explicit PooledClient(mongoc_client_pool_t *pool) : pool_(pool), client_(mongoc_client_pool_pop(pool)) {}
    ~PooledClient() { mongoc_client_pool_push(pool_, client_); }
    PooledClient(const PooledClient &) = delete;
    PooledClient &operator=(const PooledClient &) = delete;
    mongoc_client_t *get() const { return client_; }

  private:
    mongoc_client_pool_t *pool_;
    mongoc_client_t *client_;
};

} // namespace levee
