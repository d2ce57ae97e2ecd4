// Capped exponential backoff with jitter for reconnecting: many workers of
// many nginx instances (and leveed's connections to Redis nodes) must not all
// retry in the same millisecond.
#pragma once

#include <cstdint>

namespace levee::link {

// The delay without state, for callers that count failures themselves
// (leveed's Redis client): d = min(cap, base * 2^doublings), the result in
// [d/2, d] chosen by `random`. A base of 0 counts as 1; a cap below the base
// as the base.
uint32_t backoff_delay(uint32_t doublings, uint32_t base_ms, uint32_t cap_ms, uint64_t random);

// The same with its own failure count and random source. A plain aggregate:
// the module keeps it in memory nginx allocates, where no constructor runs.
struct Backoff {
    uint32_t base_ms;
    uint32_t cap_ms;
    uint32_t attempt; // failures since the last success
    uint64_t rng;     // xorshift state, never 0

    void init(uint32_t base, uint32_t cap, uint64_t seed);
    // Delay before the next attempt, uniformly in [d/2, d]; counts a failure.
    uint32_t next();
    void reset() { attempt = 0; }
};

} // namespace levee::link
