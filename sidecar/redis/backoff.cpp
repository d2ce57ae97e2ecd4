#include "backoff.hpp"

#include <algorithm>

namespace levee::redis {

int backoff_ms(int attempt, int min_ms, int max_ms, uint32_t random) {
    min_ms = std::max(min_ms, 1);
    max_ms = std::max(max_ms, min_ms);
    long long d = min_ms;
    for (int i = 1; i < attempt && d < max_ms; ++i) {
        d *= 2;
    }
    d = std::min<long long>(d, max_ms);
    const long long half = d / 2;
    return static_cast<int>(d - half + static_cast<long long>(random % static_cast<uint32_t>(half + 1)));
}

} // namespace levee::redis
