// What the error log says about the connection registry: choices that were
// not recorded, and leveed's writes failing or succeeding again. Both are
// reported on change only, so a Redis outage or a flood of long keys does
// not flood the log.
#pragma once

#include <cstdint>

namespace levee::sticky {

// The count of choices not recorded, reported when it grew and at most once
// per interval.
class DropReport {
  public:
    constexpr explicit DropReport(int64_t interval_ms) : interval_ms_(interval_ms) {}

    // Choices dropped since the last report when one is due (the report is
    // then taken as made), else 0. `dropped_total` only grows.
    uint64_t due(uint64_t dropped_total, int64_t now_ms);

  private:
    int64_t interval_ms_;
    uint64_t reported_ = 0;
    int64_t reported_at_ms_ = 0;
};

// leveed's acks of registry batches: one line when writes start failing, one
// when they succeed again, nothing for the acks in between. Writes are
// assumed to succeed until an ack says otherwise.
class AckWatch {
  public:
    enum class Change { kNone, kFailing, kRecovered };

    Change on_ack(bool ok);

  private:
    bool ok_ = true;
};

} // namespace levee::sticky
