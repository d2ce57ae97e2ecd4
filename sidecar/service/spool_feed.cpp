#include "service/spool_feed.hpp"

#include "log.hpp"
#include "metrics.hpp"

namespace levee {

SpoolFeed::SpoolFeed(Spool *spool, Metrics &metrics, ToLoop to_loop)
    : spool_(spool), metrics_(metrics), to_loop_(std::move(to_loop)) {
    if (spool_ != nullptr) {
        metrics_.describe("leveed_spool_dropped_records_total", "counter",
                          "Presence records acknowledged without a spool copy, so never written to MongoDB, by "
                          "reason (full: spool_max_bytes; disk: the file system refused, or a sync failed).");
    }
}

bool SpoolFeed::append(const std::vector<SpoolRecord> &records, std::function<void()> then) {
    if (spool_ == nullptr) {
        then();
        return false;
    }
    const std::size_t n = records.size();
    SpoolSynced synced;
    if (spool_->syncs_each_batch()) {
        auto settle = [this, n, then](bool ok, const std::string &error) {
            if (ok) {
                taken();
            } else {
                dropped(SpoolRefusal::kDisk, error, n);
            }
            then();
        };
        // Runs on the sync thread, which may outlive this feed (the spool
        // is destroyed after it): touches only its own copies.
        synced = [to_loop = to_loop_, settle](bool ok, const std::string &error) {
            if (to_loop) {
                to_loop([settle, ok, error] { settle(ok, error); });
            } else {
                settle(ok, error);
            }
        };
    }
    std::string error;
    SpoolRefusal why = SpoolRefusal::kNone;
    if (!spool_->append(records, error, &why, std::move(synced))) {
        dropped(why, error, n);
        then();
        return false;
    }
    if (!spool_->syncs_each_batch()) {
        taken();
        then();
    }
    return true;
}

void SpoolFeed::taken() {
    if (dropping_ != SpoolRefusal::kNone) {
        log::info("spool_accepting_again", {{"dropped_records", dropped_}});
        dropping_ = SpoolRefusal::kNone;
        dropped_ = 0;
    }
}

void SpoolFeed::dropped(SpoolRefusal why, const std::string &error, std::size_t records) {
    const char *reason = why == SpoolRefusal::kFull ? "full" : "disk";
    metrics_.inc("leveed_spool_dropped_records_total", {{"reason", reason}}, static_cast<double>(records));
    if (dropping_ != why) {
        log::warn("spool_dropping", {{"reason", reason},
                                     {"error", error},
                                     {"lost", "the MongoDB last_seen of these beats; Redis presence is kept"}});
        dropping_ = why;
    }
    dropped_ += records;
}

} // namespace levee
