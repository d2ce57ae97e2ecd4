/* Capped exponential backoff with jitter for reconnecting to leveed: many
 * workers of many nginx instances must not all retry in the same millisecond. */
#ifndef LEVEE_BACKOFF_H
#define LEVEE_BACKOFF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint32_t base_ms;
    uint32_t cap_ms;
    uint32_t attempt; /* failures since the last success */
    uint64_t rng;     /* xorshift state, never 0 */
} levee_backoff_t;

void levee_backoff_init(levee_backoff_t *b, uint32_t base_ms, uint32_t cap_ms, uint64_t seed);

/* Delay before the next attempt: uniformly in [d/2, d] where
 * d = min(cap, base * 2^attempt); advances the attempt count. */
uint32_t levee_backoff_next(levee_backoff_t *b);

/* The same delay without state, for callers that count failures themselves
 * (leveed's Redis client): d = min(cap, base * 2^doublings), the result in
 * [d/2, d] chosen by `random`. A base of 0 counts as 1; a cap below the
 * base as the base. */
uint32_t levee_backoff_delay(uint32_t doublings, uint32_t base_ms, uint32_t cap_ms, uint64_t random);

void levee_backoff_reset(levee_backoff_t *b);

#ifdef __cplusplus
}
#endif

#endif
