#include "backoff.h"

extern "C" void levee_backoff_init(levee_backoff_t *b, uint32_t base_ms, uint32_t cap_ms, uint64_t seed) {
    b->base_ms = base_ms == 0 ? 1 : base_ms;
    b->cap_ms = cap_ms < b->base_ms ? b->base_ms : cap_ms;
    b->attempt = 0;
    b->rng = seed == 0 ? 0x9e3779b97f4a7c15ull : seed;
}

extern "C" void levee_backoff_reset(levee_backoff_t *b) { b->attempt = 0; }

extern "C" uint32_t levee_backoff_next(levee_backoff_t *b) {
    uint64_t d = b->base_ms;
    for (uint32_t i = 0; i < b->attempt && d < b->cap_ms; i++) {
        d *= 2;
    }
    if (d > b->cap_ms) {
        d = b->cap_ms;
    }
    if (b->attempt < 64) {
        b->attempt++;
    }
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    const uint64_t half = d / 2;
    return static_cast<uint32_t>(d - half + b->rng % (half + 1));
}
