#include "core/limit/rate_parse.hpp"

namespace levee::limit {

namespace {
constexpr uint64_t kMaxRequests = 1000000; // per second, after scaling: GCRA has 1 us resolution
constexpr const char *kExpected = "expected a rate like \"100r/s\", \"1000r/m\", \"500r/h\" or \"100r/d\"";
constexpr const char *kNotNumber = "a number is expected";
constexpr const char *kTooLarge = "the number is too large";
constexpr const char *kRange = "the supported rates are 1r/d to 1000000r/s";
} // namespace

const char *parse_count(const char *text, size_t len, uint64_t max, uint64_t &out) {
    if (len == 0) {
        return kNotNumber;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9') {
            return kNotNumber;
        }
        v = v * 10 + static_cast<uint64_t>(text[i] - '0');
        if (v > max) {
            return kTooLarge;
        }
    }
    out = v;
    return nullptr;
}

const char *parse_rate(const char *text, size_t len, Rate &out) {
    if (len < 4 || text[len - 3] != 'r' || text[len - 2] != '/') {
        return kExpected;
    }
    uint64_t window;
    switch (text[len - 1]) {
    case 's': window = 1; break;
    case 'm': window = 60; break;
    case 'h': window = 3600; break;
    case 'd': window = 86400; break;
    default: return "the unit must be r/s, r/m, r/h or r/d";
    }
    uint64_t n = 0;
    const char *err = parse_count(text, len - 3, kMaxRequests * window, n);
    if (err != nullptr) {
        return err == kTooLarge ? kRange : kExpected;
    }
    if (n == 0) {
        return kRange;
    }
    out.requests = n;
    out.window_s = window;
    return nullptr;
}

const char *check_span(const Rate &rate, uint64_t burst) {
    // (burst + 1) * window / requests, in us, without overflow: burst is at
    // most 1e6 and the window at most 86400 s
    const long double span_us = static_cast<long double>(burst + 1) * rate.window_s * 1e6L / rate.requests;
    if (span_us > static_cast<long double>(kMaxSpanUs)) {
        return "the bucket, (burst + 1) / rate, would span more than 365 days, the most a zone supports; "
               "lower burst or raise the rate";
    }
    return nullptr;
}

} // namespace levee::limit
