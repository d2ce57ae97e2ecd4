// Beats whose presence Redis refused for good. A command of a presence batch
// that Redis answers with a permanent error (see is_permanent: a script
// error, a key of the wrong type) would get the same answer if sent again,
// so the batch is acknowledged anyway, not failed: failing it made the
// module resend it forever and blocked the batches behind it. What the other
// commands wrote stays, the spool has every record for MongoDB, and what was
// refused is counted here in leveed_presence_lost_total{kind} (kind=user: a
// user's presence, kind=room: a room membership) and logged once per
// episode: a warn when losses start, an info with the count once batches
// have gone through without loss for kQuietMs.
#pragma once

#include <cstdint>
#include <string>

namespace levee {

namespace redis {
struct Reply;
} // namespace redis

class Metrics;

// Whether Redis would refuse the same command again: WRONGTYPE, or ERR (a
// script error, a syntax or argument error). Not OOM, BUSY, LOADING,
// READONLY, CLUSTERDOWN, TRYAGAIN nor leveed's own LEVEE_* (no connection,
// too many in flight): those pass, and the batch is sent again.
bool is_permanent(const redis::Reply &answer);

class PresenceLoss {
  public:
    static constexpr std::int64_t kQuietMs = 60000;

    explicit PresenceLoss(Metrics &metrics);

    // An acknowledged batch: how many of its users and room members Redis
    // refused for good (both 0 when none), the first such error, and now
    // (wall ms).
    void settle(std::uint64_t users, std::uint64_t members, const std::string &error, std::int64_t now_ms);

  private:
    Metrics &metrics_;
    bool losing_ = false; // an episode is under way
    std::int64_t last_loss_ms_ = 0;
    std::uint64_t lost_ = 0; // records lost in it so far
};

} // namespace levee
