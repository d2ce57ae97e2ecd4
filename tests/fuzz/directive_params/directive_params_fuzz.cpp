// libFuzzer target: the values of the module's directives, as nginx hands
// them to the core parsers that `nginx -t` relies on (rate=, burst=,
// levee_sidecar, method=, load_factor=, presence keys). A value a parser
// accepts is within the range it documents, and what the module derives
// from it next (a GCRA bucket) stays in range.
//
// Input: [parser][value...].
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/limit/gcra.hpp"
#include "core/limit/rate_parse.hpp"
#include "core/link/sidecar_url.hpp"
#include "core/presence/presence_table.hpp"
#include "core/sticky/bounded_load.hpp"
#include "core/sticky/sticky_chooser.hpp"

namespace {

void check(bool ok) {
    if (!ok) {
        __builtin_trap();
    }
}

// "rate=<r> burst=<n>" as limit zones take them: the value split at the
// first space.
void rate_and_burst(const char *p, std::size_t n) {
    const char *space = static_cast<const char *>(std::memchr(p, ' ', n));
    const std::size_t rate_len = space ? static_cast<std::size_t>(space - p) : n;
    levee::limit::Rate rate;
    if (levee::limit::parse_rate(p, rate_len, rate) != nullptr) {
        return;
    }
    check(rate.window_s == 1 || rate.window_s == 60 || rate.window_s == 3600 || rate.window_s == 86400);
    check(rate.requests >= 1 && rate.requests <= 1000000 * rate.window_s); // 1r/d to 1000000r/s
    std::uint64_t burst = 0;
    if (space != nullptr && levee::limit::parse_count(space + 1, n - rate_len - 1, 1000000, burst) != nullptr) {
        return;
    }
    check(burst <= 1000000);
    if (levee::limit::check_span(rate, burst) != nullptr) {
        return;
    }
    const auto params =
        levee::limit::GcraParams::from_rate(rate.requests, rate.window_s, static_cast<std::uint32_t>(burst));
    check(params.period_us > 0 && params.tolerance_us <= levee::limit::kMaxSpanUs);
    check(params.capacity() == burst + 1);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    if (size < 1) {
        return 0;
    }
    const char *p = reinterpret_cast<const char *>(data + 1);
    const std::size_t n = size - 1;
    switch (data[0] % 6) {
    case 0: rate_and_burst(p, n); break;
    case 1: {
        std::uint64_t count = 0;
        const std::uint64_t max = 1000;
        if (levee::limit::parse_count(p, n, max, count) == nullptr) {
            check(count <= max);
        }
        break;
    }
    case 2: {
        char path[levee::link::kSidecarPathMax + 1];
        if (levee::link::parse_sidecar_url(p, n, path) == nullptr) {
            check(path[0] == '/' && std::strlen(path) <= levee::link::kSidecarPathMax);
        }
        break;
    }
    case 3: {
        levee::sticky::Method method;
        levee::sticky::parse_method(p, n, &method);
        break;
    }
    case 4: {
        std::uint32_t milli = 0;
        if (levee::sticky::parse_load_factor(p, n, &milli)) {
            check(milli >= 1000 && milli <= 100000);
        }
        break;
    }
    case 5: levee::presence::check_key(data + 1, n, 64, (data[0] & 0x80) != 0); break;
    }
    return 0;
}
