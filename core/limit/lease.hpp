// How much global quota an nginx asks leveed for, per key and sync interval.
#pragma once

#include <cstdint>

namespace levee::limit {

// Enough for the demand seen over the last interval, twice (asking ahead of
// need, as Doorman does), less what is still held; never more than the
// bucket can hold plus what it refills in two intervals, since Redis could
// not grant more anyway. 0: nothing to ask.
//
// A key's first lease (`first`) asks for at least the whole bucket: a client
// that just appeared may be firing its burst, and with a demand-sized lease
// it would meet 429s until the next sync interval although the bucket in
// Redis is full. Redis still grants each token once, so this costs other
// nginx instances nothing but the order in which they are served.
uint32_t lease_want(uint32_t demand, int32_t held, uint64_t capacity, uint64_t refill_per_sync, bool first = false);

} // namespace levee::limit
