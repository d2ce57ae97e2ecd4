// At most one log line per interval per kind: a peer that repeats a refused
// request thousands of times a second must not fill the disk, nor crowd the
// useful lines out of journald. The metrics count every occurrence; the log
// only has to say that it happens, and how often it was left unsaid.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>

#include "log.hpp"
#include "log_budget.hpp"

namespace levee::log {

class LogThrottle {
  public:
    // Milliseconds of a monotonic clock; injected so tests need no sleeps.
    using Clock = std::function<std::int64_t()>;

    explicit LogThrottle(std::int64_t interval_ms = 1000, Clock now_ms = steady_now_ms);

    // Whether a line of `key` may be written now. If so, `not_logged` is how
    // many of `key` were held back since its last line (the line says so);
    // if not, this one is counted. Keys must come from a fixed set (event
    // names, reasons), never from what a peer sends: each key is kept.
    bool allow(const std::string &key, std::uint64_t &not_logged);

    // Writes `event` with `fields` and not_logged=N if its kind `key` may be
    // logged now.
    void write(Level level, const std::string &key, std::string_view event, std::initializer_list<Field> fields);
    // The kind is the event.
    void warn(std::string_view event, std::initializer_list<Field> fields) {
        write(Level::kWarn, std::string(event), event, fields);
    }
    void warn(const std::string &key, std::string_view event, std::initializer_list<Field> fields) {
        write(Level::kWarn, key, event, fields);
    }

    static std::int64_t steady_now_ms();

  private:
    std::int64_t interval_ms_;
    Clock now_ms_;
    std::unordered_map<std::string, LogBudget> kinds_; // one line per interval each
};

} // namespace levee::log
