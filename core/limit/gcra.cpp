#include "core/limit/gcra.hpp"

namespace levee::limit {

GcraParams GcraParams::from_rate(uint64_t requests, uint64_t window_s, uint32_t burst) {
    GcraParams p;
    // Rounded to the microsecond: 1e6 r/s is the finest rate we represent.
    p.period_us = requests == 0 ? 0 : (window_s * 1000000 + requests / 2) / requests;
    if (p.period_us == 0) {
        p.period_us = 1;
    }
    p.tolerance_us = p.period_us * burst;
    return p;
}

uint64_t GcraParams::capacity() const {
    return tolerance_us / period_us + 1;
}

GcraDecision gcra_take(const GcraParams &p, int64_t &tat, int64_t now_us) {
    GcraDecision d;
    const int64_t start = tat > now_us ? tat : now_us;
    const int64_t ahead = start - now_us; // backlog already promised
    d.excess_us = static_cast<uint64_t>(ahead);
    if (ahead > static_cast<int64_t>(p.tolerance_us)) {
        d.allowed = false;
        d.retry_after_us = static_cast<uint64_t>(ahead) - p.tolerance_us;
        d.remaining = 0;
        d.reset_us = static_cast<uint64_t>(ahead);
        return d;
    }
    d.allowed = true;
    d.delay_us = static_cast<uint64_t>(ahead);
    tat = start + static_cast<int64_t>(p.period_us);
    const uint64_t used = static_cast<uint64_t>(tat - now_us);
    const uint64_t room = p.tolerance_us + p.period_us - used;
    d.remaining = room / p.period_us;
    d.reset_us = used;
    return d;
}

uint64_t gcra_delay_us(const GcraParams &p, const GcraDecision &d, uint64_t delay) {
    // compared in requests first: delay * period_us overflows for nodelay
    if (!d.allowed || delay > d.delay_us / p.period_us) {
        return 0;
    }
    return d.delay_us - delay * p.period_us;
}

void gcra_refund(const GcraParams &p, int64_t &tat) {
    tat -= static_cast<int64_t>(p.period_us);
}

uint64_t gcra_take_n(const GcraParams &p, int64_t &tat, int64_t now_us, uint64_t want) {
    const int64_t start = tat > now_us ? tat : now_us;
    const int64_t room = now_us + static_cast<int64_t>(p.tolerance_us + p.period_us) - start;
    if (room <= 0) {
        return 0;
    }
    uint64_t n = static_cast<uint64_t>(room) / p.period_us;
    if (n > want) {
        n = want;
    }
    tat = start + static_cast<int64_t>(n * p.period_us);
    return n;
}

int64_t gcra_rescale(const GcraParams &from, const GcraParams &to, int64_t tat, int64_t now_us) {
    if (tat <= now_us || from.period_us == 0) {
        return tat;
    }
    // 128 bits: owed time (up to years) times a period (up to a day) in us
    const unsigned __int128 owed = static_cast<unsigned __int128>(tat - now_us) * to.period_us / from.period_us;
    const uint64_t full = to.tolerance_us + to.period_us;
    return now_us + static_cast<int64_t>(owed > full ? full : static_cast<uint64_t>(owed));
}

} // namespace levee::limit
