// At most `per_window` log lines of one kind per window: a stream of refused
// records must not flood the log. What was left out is counted, so the next
// line allowed can say how many were not. One kind, one thread; LogThrottle
// keeps one per kind.
#pragma once

#include <cstdint>

namespace levee::log {

class LogBudget {
  public:
    LogBudget(std::uint32_t per_window, std::int64_t window_ms) : per_window_(per_window), window_ms_(window_ms) {}

    // Whether a line may be written at `now_ms`; if not, it is counted.
    bool take(std::int64_t now_ms) {
        if (!started_ || now_ms - window_start_ms_ >= window_ms_ || now_ms < window_start_ms_) {
            started_ = true;
            window_start_ms_ = now_ms;
            used_ = 0;
        }
        if (used_ < per_window_) {
            used_++;
            return true;
        }
        suppressed_++;
        return false;
    }

    // Lines left out since the last call.
    std::uint64_t take_suppressed() {
        const std::uint64_t n = suppressed_;
        suppressed_ = 0;
        return n;
    }

  private:
    std::uint32_t per_window_;
    std::int64_t window_ms_;
    bool started_ = false;
    std::int64_t window_start_ms_ = 0;
    std::uint32_t used_ = 0;
    std::uint64_t suppressed_ = 0;
};

} // namespace levee::log
