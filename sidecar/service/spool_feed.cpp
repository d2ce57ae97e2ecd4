#include "service/spool_feed.hpp"

#include "log.hpp"
#include "metrics.hpp"

namespace levee {

SpoolFeed::SpoolFeed(Spool *spool, Metrics &metrics) : spool_(spool), metrics_(metrics) {
    if (spool_ != nullptr) {
        metrics_.describe("leveed_spool_dropped_records_total", "counter",
                          "Presence records acknowledged without a spool copy, so never written to MongoDB, by "
                          "reason (full: spool_max_bytes; disk: the file system refused).");
    }
}

bool SpoolFeed::append(const std::vector<SpoolRecord> &records) {
    if (spool_ == nullptr) {
        return false;
    }
    std::string error;
    SpoolRefusal why = SpoolRefusal::kNone;
    if (spool_->append(records, error, &why)) {
        if (dropping_ != SpoolRefusal::kNone) {
            log::info("spool_accepting_again", {{"dropped_records", dropped_}});
            dropping_ = SpoolRefusal::kNone;
            dropped_ = 0;
        }
        return true;
    }
    const char *reason = why == SpoolRefusal::kFull ? "full" : "disk";
    metrics_.inc("leveed_spool_dropped_records_total", {{"reason", reason}}, static_cast<double>(records.size()));
    if (dropping_ != why) {
        log::warn("spool_dropping", {{"reason", reason},
                                     {"error", error},
                                     {"lost", "the MongoDB last_seen of these beats; Redis presence is kept"}});
        dropping_ = why;
    }
    dropped_ += records.size();
    return false;
}

} // namespace levee
