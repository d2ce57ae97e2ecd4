#include "core/limit/lease.hpp"

namespace levee::limit {

uint32_t lease_want(uint32_t demand, int32_t held, uint64_t capacity, uint64_t refill_per_sync, bool first) {
    if (demand == 0) {
        return 0;
    }
    const uint64_t ceiling = capacity + 2 * refill_per_sync;
    uint64_t want = 2 * static_cast<uint64_t>(demand);
    if (first && want < capacity) {
        want = capacity;
    }
    if (want > ceiling) {
        want = ceiling;
    }
    const int64_t w = static_cast<int64_t>(want) - held;
    if (w <= 0) {
        return 0;
    }
    return w > 0x7fffffff ? 0x7fffffff : static_cast<uint32_t>(w);
}

} // namespace levee::limit
