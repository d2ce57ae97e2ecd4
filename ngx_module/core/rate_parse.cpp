#include "rate_parse.hpp"

namespace levee::limit {

namespace {
constexpr uint64_t kMaxRequests = 1000000; // per second, after scaling: GCRA has 1 us resolution
}

const char *parse_count(const char *text, size_t len, uint64_t max, uint64_t &out) {
    if (len == 0) {
        return "a number is expected";
    }
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9') {
            return "a number is expected";
        }
        v = v * 10 + static_cast<uint64_t>(text[i] - '0');
        if (v > max) {
            return "the number is too large";
        }
    }
    out = v;
    return nullptr;
}

const char *parse_rate(const char *text, size_t len, Rate &out) {
    if (len < 4 || text[len - 3] != 'r' || text[len - 2] != '/') {
        return "expected a rate like \"100r/s\" or \"1000r/m\"";
    }
    uint64_t window;
    switch (text[len - 1]) {
    case 's': window = 1; break;
    case 'm': window = 60; break;
    default: return "the unit must be r/s or r/m";
    }
    uint64_t n = 0;
    if (parse_count(text, len - 3, kMaxRequests * window, n) != nullptr) {
        return "expected a rate like \"100r/s\" or \"1000r/m\"";
    }
    if (n == 0) {
        return "the rate must be at least 1";
    }
    out.requests = n;
    out.window_s = window;
    return nullptr;
}

} // namespace levee::limit
