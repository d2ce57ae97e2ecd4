#include "core/link/backoff.hpp"

namespace levee::link {

uint32_t backoff_delay(uint32_t doublings, uint32_t base_ms, uint32_t cap_ms, uint64_t random) {
    const uint64_t base = base_ms == 0 ? 1 : base_ms;
    const uint64_t cap = cap_ms < base ? base : cap_ms;
    uint64_t d = base;
    for (uint32_t i = 0; i < doublings && d < cap; i++) {
        d *= 2;
    }
    if (d > cap) {
        d = cap;
    }
    const uint64_t half = d / 2;
    return static_cast<uint32_t>(d - half + random % (half + 1));
}

void Backoff::init(uint32_t base, uint32_t cap, uint64_t seed) {
    base_ms = base == 0 ? 1 : base;
    cap_ms = cap < base_ms ? base_ms : cap;
    attempt = 0;
    rng = seed == 0 ? 0x9e3779b97f4a7c15ull : seed;
}

uint32_t Backoff::next() {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    const uint32_t delay = backoff_delay(attempt, base_ms, cap_ms, rng);
    if (attempt < 64) {
        attempt++;
    }
    return delay;
}

} // namespace levee::link
