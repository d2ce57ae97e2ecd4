// Retry delays: capped exponential with "equal jitter", so that clients
// failing together do not retry together, yet never retry sooner than half
// the nominal delay.
#pragma once

#include <cstdint>

namespace levee::redis {

// Delay before retry number `attempt` (1 = first retry). `random` is any
// uniformly distributed value; the result lies in [d/2, d] where
// d = min(max_ms, min_ms * 2^(attempt-1)).
int backoff_ms(int attempt, int min_ms, int max_ms, uint32_t random);

} // namespace levee::redis
