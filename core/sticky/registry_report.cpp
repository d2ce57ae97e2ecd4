#include "core/sticky/registry_report.hpp"

namespace levee::sticky {

uint64_t DropReport::due(uint64_t dropped_total, int64_t now_ms) {
    if (dropped_total == reported_ || now_ms - reported_at_ms_ < interval_ms_) {
        return 0;
    }
    uint64_t since = dropped_total - reported_;
    reported_ = dropped_total;
    reported_at_ms_ = now_ms;
    return since;
}

AckWatch::Change AckWatch::on_ack(bool ok) {
    if (ok == ok_) {
        return Change::kNone;
    }
    ok_ = ok;
    return ok ? Change::kRecovered : Change::kFailing;
}

} // namespace levee::sticky
