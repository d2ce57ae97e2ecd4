// Owns a heap bson_t. (unique_ptr<bson_t> trips -Wignored-attributes: bson_t
// is over-aligned.)
#pragma once

#include <bson/bson.h>

namespace levee {

class BsonPtr {
  public:
    explicit BsonPtr(bson_t *b) : b_(b) {}
    ~BsonPtr() {
        if (b_) {
            bson_destroy(b_);
        }
    }
    BsonPtr(const BsonPtr &) = delete;
    BsonPtr &operator=(const BsonPtr &) = delete;
    bson_t *get() const { return b_; }
    explicit operator bool() const { return b_ != nullptr; }

  private:
    bson_t *b_;
};

} // namespace levee
