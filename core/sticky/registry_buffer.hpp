// The sticky balancer's connection registry, per nginx worker: the server
// chosen for each key since the last flush, one record per key (the latest
// choice wins). Everything is allocated when the buffer is built, so
// recording a choice on the request path neither allocates nor blocks; when
// the buffer is full, new keys are dropped and counted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace levee::sticky {

class RegistryBuffer {
  public:
    struct Record {
        std::string_view key;
        std::string_view server;
        uint32_t ttl_ms;
        int64_t recorded_ms;
    };

    enum class Put { kAdded, kUpdated, kFull };

    // max_keys distinct keys and key_bytes bytes of keys between flushes.
    // Throws std::bad_alloc.
    RegistryBuffer(size_t max_keys, size_t key_bytes);

    // `server` is not copied: it must outlive the next clear(). nginx's peer
    // names do (they live as long as the configuration).
    Put put(uint64_t hash, const unsigned char *key, size_t key_len, const unsigned char *server, size_t server_len,
            uint32_t ttl_ms, int64_t now_ms);

    size_t size() const { return n_; }
    size_t max_keys() const { return max_keys_; }
    bool empty() const { return n_ == 0; }
    uint64_t dropped() const { return dropped_; }

    // Records in the order their keys were first put.
    template <typename F> void for_each(F &&f) const {
        for (size_t i = 0; i < n_; i++) {
            const Slot &s = slots_[order_[i]];
            f(Record{std::string_view(arena_.get() + s.key_off, s.key_len),
                     std::string_view(reinterpret_cast<const char *>(s.server), s.server_len), s.ttl_ms,
                     s.recorded_ms});
        }
    }

    void clear();

  private:
    struct Slot {
        uint64_t hash;
        const unsigned char *server; // nullptr: free
        int64_t recorded_ms;
        uint32_t key_off;
        uint32_t ttl_ms;
        uint16_t key_len;
        uint16_t server_len;
    };

    size_t max_keys_;
    size_t key_bytes_;
    size_t mask_;
    std::unique_ptr<Slot[]> slots_;
    std::unique_ptr<uint32_t[]> order_;
    std::unique_ptr<char[]> arena_;
    size_t n_ = 0;
    size_t used_ = 0;
    uint64_t dropped_ = 0;
};

} // namespace levee::sticky
