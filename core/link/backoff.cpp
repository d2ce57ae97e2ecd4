#include "core/link/backoff.h"

extern "C" void levee_backoff_init(levee_backoff_t *b, uint32_t base_ms, uint32_t cap_ms, uint64_t seed) {
    b->base_ms = base_ms == 0 ? 1 : base_ms;
    b->cap_ms = cap_ms < b->base_ms ? b->base_ms : cap_ms;
    b->attempt = 0;
    b->rng = seed == 0 ? 0x9e3779b97f4a7c15ull : seed;
}

extern "C" void levee_backoff_reset(levee_backoff_t *b) {
    b->attempt = 0;
}

extern "C" uint32_t levee_backoff_delay(uint32_t doublings, uint32_t base_ms, uint32_t cap_ms, uint64_t random) {
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

extern "C" uint32_t levee_backoff_next(levee_backoff_t *b) {
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    const uint32_t delay = levee_backoff_delay(b->attempt, b->base_ms, b->cap_ms, b->rng);
    if (b->attempt < 64) {
        b->attempt++;
    }
    return delay;
}
