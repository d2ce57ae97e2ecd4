// Parsing of the limit directives' values, without nginx, so that
// `nginx -t` errors are unit-tested.
#pragma once

#include <cstddef>
#include <cstdint>

namespace levee::limit {

struct Rate {
    uint64_t requests = 0; // per window
    uint64_t window_s = 0; // 1 (r/s), 60 (r/m), 3600 (r/h) or 86400 (r/d)
};

// The longest bucket a zone may keep, (burst + 1) / rate: TATs this far ahead
// stay exact in the doubles of the Redis script (2^53 us is 285 years from
// the epoch, and now is 56 years from it).
constexpr uint64_t kMaxSpanUs = 365ull * 86400 * 1000000;

// "100r/s", "1000r/m", "500r/h", "100r/d": from 1r/d to 1000000r/s.
// Returns nullptr, or why the text is not a rate.
const char *parse_rate(const char *text, size_t len, Rate &out);

// nullptr when a bucket of `burst` + 1 requests at `rate` spans at most
// kMaxSpanUs, else the reason, naming the supported range.
const char *check_span(const Rate &rate, uint64_t burst);

// A non-negative decimal count ("50"), at most `max`. nullptr or the reason.
const char *parse_count(const char *text, size_t len, uint64_t max, uint64_t &out);

} // namespace levee::limit
