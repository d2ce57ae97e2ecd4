#include "core/sticky/registry_buffer.hpp"

#include <cstring>

namespace levee::sticky {

RegistryBuffer::RegistryBuffer(size_t max_keys, size_t key_bytes) : max_keys_(max_keys), key_bytes_(key_bytes) {
    // at most half full: probe sequences stay short
    size_t cap = 16;
    while (cap < 2 * max_keys) {
        cap <<= 1;
    }
    mask_ = cap - 1;
    slots_ = std::make_unique<Slot[]>(cap);
    order_ = std::make_unique<uint32_t[]>(max_keys);
    arena_ = std::make_unique<char[]>(key_bytes);
}

RegistryBuffer::Put RegistryBuffer::put(uint64_t hash, const unsigned char *key, size_t key_len,
                                        const unsigned char *server, size_t server_len, uint32_t ttl_ms,
                                        int64_t now_ms) {
    if (key_len > UINT16_MAX || server_len > UINT16_MAX || server == nullptr) {
        dropped_++;
        return Put::kFull;
    }
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
        Slot &s = slots_[i];
        if (s.server == nullptr) {
            if (n_ == max_keys_ || key_bytes_ - used_ < key_len) {
                dropped_++;
                return Put::kFull;
            }
            std::memcpy(arena_.get() + used_, key, key_len);
            s = Slot{hash,
                     server,
                     now_ms,
                     static_cast<uint32_t>(used_),
                     ttl_ms,
                     static_cast<uint16_t>(key_len),
                     static_cast<uint16_t>(server_len)};
            used_ += key_len;
            order_[n_++] = static_cast<uint32_t>(i);
            return Put::kAdded;
        }
        if (s.hash == hash && s.key_len == key_len && std::memcmp(arena_.get() + s.key_off, key, key_len) == 0) {
            s.server = server;
            s.server_len = static_cast<uint16_t>(server_len);
            s.ttl_ms = ttl_ms;
            s.recorded_ms = now_ms;
            return Put::kUpdated;
        }
    }
}

void RegistryBuffer::clear() {
    for (size_t i = 0; i < n_; i++) {
        slots_[order_[i]].server = nullptr;
    }
    n_ = 0;
    used_ = 0;
}

} // namespace levee::sticky
