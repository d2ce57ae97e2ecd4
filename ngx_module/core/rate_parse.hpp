// Parsing of the limit directives' values, without nginx, so that
// `nginx -t` errors are unit-tested.
#pragma once

#include <cstddef>
#include <cstdint>

namespace levee::limit {

struct Rate {
    uint64_t requests = 0; // per window
    uint64_t window_s = 0; // 1 (r/s) or 60 (r/m)
};

// "100r/s", "1000r/m". Returns nullptr, or why the text is not a rate.
const char *parse_rate(const char *text, size_t len, Rate &out);

// A non-negative decimal count ("50"), at most `max`. nullptr or the reason.
const char *parse_count(const char *text, size_t len, uint64_t max, uint64_t &out);

} // namespace levee::limit
