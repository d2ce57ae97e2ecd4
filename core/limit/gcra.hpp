// GCRA (generic cell rate algorithm): a token bucket kept as one number, the
// theoretical arrival time (TAT) of the next conforming request. Used by the
// local limits in shared memory and, in the same arithmetic, by the Redis
// bucket that hands out global quota (lua/limit_lease.lua).
#pragma once

#include <cstdint>

namespace levee::limit {

struct GcraParams {
    uint64_t period_us = 0;    // emission interval: one request every period_us
    uint64_t tolerance_us = 0; // burst * period_us: how far ahead TAT may run

    static GcraParams from_rate(uint64_t requests, uint64_t window_s, uint32_t burst);
    uint64_t capacity() const; // requests a full bucket admits at once: burst + 1
};

struct GcraDecision {
    bool allowed = false;
    uint64_t delay_us = 0;       // allowed, but conforms only this much later (burst in use)
    uint64_t retry_after_us = 0; // refused: wait this long for one request
    uint64_t remaining = 0;      // requests that would be admitted right now, after this one
    uint64_t reset_us = 0;       // until the bucket is full again
    uint64_t excess_us = 0;      // backlog met on arrival: excess / rate, as limit_req logs it
};

// How long an allowed request waits, as limit_req's `delay=`: the first
// `delay` requests beyond the rate pass at once, later ones wait until they
// conform. `delay` of UINT64_MAX is `nodelay`.
uint64_t gcra_delay_us(const GcraParams &p, const GcraDecision &d, uint64_t delay);

// Decides one request at `now_us` and, if allowed, advances `tat`.
GcraDecision gcra_take(const GcraParams &p, int64_t &tat, int64_t now_us);

// Undoes one gcra_take that was allowed (a later limit refused the request).
void gcra_refund(const GcraParams &p, int64_t &tat);

// Takes up to `want` requests' worth at once (quota leasing); returns how many.
// leveed uses it for the buckets it keeps itself when it runs without Redis.
uint64_t gcra_take_n(const GcraParams &p, int64_t &tat, int64_t now_us, uint64_t want);

// The TAT a key written under `from` has under `to` (a reload changed the
// zone's rate or burst): the requests the key has used up are kept, not the
// time it owes, so that a key exhausted under the old rate is exhausted
// under the new one, and a raised rate is not held back by the old, longer
// period. Capped at a full bucket of `to`.
int64_t gcra_rescale(const GcraParams &from, const GcraParams &to, int64_t tat, int64_t now_us);

// True when the bucket is full again at `now_us`: the state equals no state.
inline bool gcra_idle(int64_t tat, int64_t now_us) {
    return tat <= now_us;
}

} // namespace levee::limit
