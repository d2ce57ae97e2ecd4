#include "core/limit/lease.hpp"

#include <cstdint>

#include "core/limit/rate_parse.hpp"

namespace levee::limit {

bool lease_params_valid(uint64_t period_us, uint64_t capacity) {
    constexpr uint64_t kMaxPeriodUs = 86400ull * 1000000; // 1r/d
    constexpr uint64_t kMaxCapacity = 1000001;            // burst 1000000 + 1
    // + 1: a zone's period is rounded to the microsecond, so a bucket that
    // check_span() accepted may exceed the span by less than one period
    return period_us >= 1 && period_us <= kMaxPeriodUs && capacity >= 1 && capacity <= kMaxCapacity &&
           capacity <= kMaxSpanUs / period_us + 1;
}

uint32_t lease_want(uint32_t demand, int32_t held, uint64_t capacity, uint64_t refill_per_sync, bool first) {
    if (demand == 0) {
        return 0;
    }
    const uint64_t ceiling = capacity + 2 * refill_per_sync;
    uint64_t want = 2 * static_cast<uint64_t>(demand);
    if (first && want < capacity) {
        want = capacity;
    }
    if (want > ceiling) {
        want = ceiling;
    }
    const int64_t w = static_cast<int64_t>(want) - held;
    if (w <= 0) {
        return 0;
    }
    return w > 0x7fffffff ? 0x7fffffff : static_cast<uint32_t>(w);
}

LeaseTurn lease_turn(Entry &e, GlobalPart &g, uint32_t now_ms, uint64_t timeout_ms, uint64_t capacity,
                     uint64_t refill_per_sync) {
    LeaseTurn turn{false, false, 0};
    if (g.pending_ms != 0) {
        if (now_ms - g.pending_ms < timeout_ms) {
            turn.waiting = true;
            return turn;
        }
        e.flags |= kEntryUnavailable;
        turn.unanswered = true;
        g.pending_ms = 0;
    }
    turn.want = lease_want(g.demand, g.tokens, capacity, refill_per_sync, !(e.flags & kEntryLeased));
    if (turn.want == 0) {
        g.demand = 0;
    }
    return turn;
}

bool lease_apply(Entry &e, GlobalPart &g, uint32_t granted, bool failed) {
    // granted comes off the socket: summed in 64 bits, held at what the
    // counter can take (leveed never grants near that much)
    const int64_t tokens = static_cast<int64_t>(g.tokens) + granted;
    g.tokens = tokens > INT32_MAX ? INT32_MAX : static_cast<int32_t>(tokens);
    g.pending_ms = 0;
    e.flags |= kEntryLeased;
    if (failed) {
        e.flags |= kEntryUnavailable;
        return true;
    }
    e.flags &= static_cast<uint8_t>(~kEntryUnavailable);
    return false;
}

bool lease_late(const GlobalPart &g, uint32_t now_ms, uint32_t wait_ms) {
    return g.pending_ms != 0 && now_ms - g.pending_ms >= wait_ms;
}

GlobalDecision global_admit(const Entry &e, GlobalPart &g, bool link_ready, bool may_wait, bool late) {
    const bool available = link_ready && !(e.flags & kEntryUnavailable);

    if (g.tokens > -kLeaseCredit && (g.tokens > 0 || available)) {
        g.tokens--;
        return {Admission::kPass, false, false};
    }
    if (!available) {
        return {Admission::kFailMode, false, false};
    }
    const bool ask_now = g.pending_ms == 0;
    if (!(e.flags & kEntryLeased)) {
        return {may_wait ? Admission::kWait : Admission::kFailMode, ask_now, !may_wait};
    }
    if (late) {
        return {Admission::kFailMode, false, true};
    }
    return {Admission::kRefuse, ask_now, false};
}

} // namespace levee::limit
