#include "core/presence/beat_interval.hpp"

#include <algorithm>

namespace levee::presence {

uint64_t backlog_limit(uint64_t configured, size_t table_bytes) {
    return configured ? configured : table_bytes / 56;
}

uint64_t beat_interval_ms(uint64_t interval_ms, uint64_t interval_max_ms, uint64_t waiting, uint64_t backlog,
                          bool link_ready) {
    if (!link_ready) {
        return interval_max_ms;
    }
    if (2 * waiting <= backlog) {
        return interval_ms;
    }
    return interval_ms + (interval_max_ms - interval_ms) * std::min(2 * waiting - backlog, backlog) / backlog;
}

uint64_t header_seconds(uint64_t ms) {
    return (ms + 999) / 1000;
}

uint64_t retry_after_seconds(uint64_t flush_ms) {
    return std::max<uint64_t>(1, header_seconds(4 * flush_ms));
}

} // namespace levee::presence
