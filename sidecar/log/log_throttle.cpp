#include "log_throttle.hpp"

#include <chrono>
#include <utility>
#include <vector>

namespace levee::log {

LogThrottle::LogThrottle(std::int64_t interval_ms, Clock now_ms)
    : interval_ms_(interval_ms), now_ms_(std::move(now_ms)) {}

std::int64_t LogThrottle::steady_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

bool LogThrottle::allow(const std::string &key, std::uint64_t &not_logged) {
    LogBudget &kind = kinds_.try_emplace(key, 1, interval_ms_).first->second;
    if (!kind.take(now_ms_())) {
        return false;
    }
    not_logged = kind.take_suppressed();
    return true;
}

void LogThrottle::write(Level level, const std::string &key, std::string_view event,
                        std::initializer_list<Field> fields) {
    std::uint64_t not_logged = 0;
    if (!enabled(level) || !allow(key, not_logged)) {
        return;
    }
    std::vector<Field> line(fields);
    line.emplace_back("not_logged", not_logged);
    log::write(level, event, line.data(), line.size());
}

} // namespace levee::log
