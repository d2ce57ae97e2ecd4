// Puts presence batches into the spool for the MongoDB writer. A spool that
// cannot take a batch (spool_max_bytes reached, or the disk full or failing)
// costs only the database's copy of it: the batch still goes to Redis and is
// acknowledged, the records are counted in
// leveed_spool_dropped_records_total{reason}, and each episode is logged once
// when it starts (warn) and once when the spool takes batches again (info).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "spool.hpp"

namespace levee {

class Metrics;

class SpoolFeed {
  public:
    // `spool` may be null: no database, nothing to feed.
    SpoolFeed(Spool *spool, Metrics &metrics);

    // Whether the records are in the spool.
    bool append(const std::vector<SpoolRecord> &records);

  private:
    Spool *spool_;
    Metrics &metrics_;
    SpoolRefusal dropping_ = SpoolRefusal::kNone; // the episode under way, if any
    std::uint64_t dropped_ = 0;                   // records lost to it so far
};

} // namespace levee
