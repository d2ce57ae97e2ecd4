// Puts presence batches into the spool for the MongoDB writer. A spool that
// cannot take a batch (spool_max_bytes reached, or the disk full or failing)
// costs only the database's copy of it: the batch still goes to Redis and is
// acknowledged, the records are counted in
// leveed_spool_dropped_records_total{reason}, and each episode is logged once
// when it starts (warn) and once when the spool takes batches again (info).
//
// With spool_fsync always a batch is acknowledged only once it is durable:
// the spool's sync thread says so, and that word is handed back to the loop,
// which never waits for the disk meanwhile. A failed sync cuts the batch:
// counted and said like a refusal (reason disk), and still acknowledged.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "spool.hpp"

namespace levee {

class Metrics;

class SpoolFeed {
  public:
    // Runs a function on the event loop, from any thread (LoopPoster::post).
    using ToLoop = std::function<void(std::function<void()>)>;

    // `spool` may be null: no database, nothing to feed. Without `to_loop`
    // (tests that drive no loop) what the sync thread says is handled on it.
    SpoolFeed(Spool *spool, Metrics &metrics, ToLoop to_loop = {});

    // Puts the records in the spool, then calls `then`: at once, or with
    // spool_fsync always through `to_loop` once the sync thread made them
    // durable or cut them. `then` is called in every case, once. Returns
    // false when the spool refused them at once (or there is none).
    bool append(const std::vector<SpoolRecord> &records, std::function<void()> then);

  private:
    void taken();
    void dropped(SpoolRefusal why, const std::string &error, std::size_t records);

    Spool *spool_;
    Metrics &metrics_;
    ToLoop to_loop_;
    SpoolRefusal dropping_ = SpoolRefusal::kNone; // the episode under way, if any
    std::uint64_t dropped_ = 0;                   // records lost to it so far
};

} // namespace levee
