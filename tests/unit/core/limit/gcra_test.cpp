#include <vector>

#include <gtest/gtest.h>

#include "core/limit/gcra.hpp"

using namespace levee::limit;

TEST(Gcra, ParamsFromRate) {
    GcraParams p = GcraParams::from_rate(100, 1, 50);
    EXPECT_EQ(p.period_us, 10000u);
    EXPECT_EQ(p.tolerance_us, 500000u);
    EXPECT_EQ(p.capacity(), 51u);
    EXPECT_EQ(GcraParams::from_rate(1000, 60, 0).period_us, 60000u);
}

TEST(Gcra, BurstThenRefusedThenRefilled) {
    GcraParams p = GcraParams::from_rate(10, 1, 2); // 100 ms period
    int64_t tat = 0;
    const int64_t now = 1000000;
    for (int i = 0; i < 3; i++) {
        GcraDecision d = gcra_take(p, tat, now);
        ASSERT_TRUE(d.allowed) << i;
        EXPECT_EQ(d.remaining, static_cast<uint64_t>(2 - i));
        EXPECT_EQ(d.delay_us, static_cast<uint64_t>(i) * 100000);
    }
    GcraDecision d = gcra_take(p, tat, now);
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.retry_after_us, 100000u);
    EXPECT_FALSE(gcra_take(p, tat, now + 99999).allowed);
    EXPECT_TRUE(gcra_take(p, tat, now + 100000).allowed);
}

TEST(Gcra, SteadyRateOverALongRun) {
    GcraParams p = GcraParams::from_rate(100, 1, 5);
    int64_t tat = 0;
    int allowed = 0;
    // 10 s of one attempt per ms: rate x T + burst + 1
    for (int64_t ms = 0; ms < 10000; ms++) {
        allowed += gcra_take(p, tat, 1000000000 + ms * 1000).allowed;
    }
    EXPECT_EQ(allowed, 1000 + 5);
}

TEST(Gcra, RefundUndoesATake) {
    GcraParams p = GcraParams::from_rate(1, 60, 0);
    int64_t tat = 0;
    EXPECT_TRUE(gcra_take(p, tat, 5).allowed);
    EXPECT_FALSE(gcra_take(p, tat, 5).allowed);
    gcra_refund(p, tat);
    EXPECT_TRUE(gcra_take(p, tat, 5).allowed);
}

TEST(Gcra, TakeNGrantsEachTokenOnce) {
    GcraParams p = GcraParams::from_rate(100, 1, 9); // capacity 10
    int64_t tat = 0;
    const int64_t t0 = 5000000;
    EXPECT_EQ(gcra_take_n(p, tat, t0, 4), 4u);
    EXPECT_EQ(gcra_take_n(p, tat, t0, 100), 6u);
    EXPECT_EQ(gcra_take_n(p, tat, t0, 100), 0u);
    EXPECT_EQ(gcra_take_n(p, tat, t0 + 25000, 100), 2u); // 2.5 periods later
    EXPECT_EQ(gcra_take_n(p, tat, t0 + 30000, 100), 1u);
    EXPECT_TRUE(gcra_idle(tat, t0 + 10 * 10000 + 30000));
}

TEST(Gcra, DelayLetsTheFirstExcessRequestsPassAtOnce) {
    // 10 r/s, burst 5, delay 2: as limit_req, requests 1-3 of an instant pass
    // at once (the first, then 2 excess), requests 4-6 wait until they conform
    const GcraParams p = GcraParams::from_rate(10, 1, 5);
    int64_t tat = 0;
    std::vector<uint64_t> waits;
    for (int i = 0; i < 6; i++) {
        const GcraDecision d = gcra_take(p, tat, 1000000);
        ASSERT_TRUE(d.allowed);
        EXPECT_EQ(d.excess_us, static_cast<uint64_t>(i) * 100000);
        waits.push_back(gcra_delay_us(p, d, 2));
    }
    EXPECT_EQ(waits, (std::vector<uint64_t>{0, 0, 0, 100000, 200000, 300000}));
    EXPECT_FALSE(gcra_take(p, tat, 1000000).allowed);
}

TEST(Gcra, DelayZeroWaitsForEveryExcessAndNodelayForNone) {
    const GcraParams p = GcraParams::from_rate(1, 1, 3);
    int64_t tat = 0;
    gcra_take(p, tat, 0);
    const GcraDecision d = gcra_take(p, tat, 0);
    EXPECT_EQ(gcra_delay_us(p, d, 0), 1000000u);
    EXPECT_EQ(gcra_delay_us(p, d, UINT64_MAX), 0u);
}

TEST(Gcra, RescaleKeepsAnExhaustedKeyExhaustedUnderASlowerRate) {
    GcraParams fast = GcraParams::from_rate(10, 1, 4); // 100 ms period, capacity 5
    GcraParams slow = GcraParams::from_rate(1, 60, 4); // 60 s period, capacity 5
    int64_t tat = 0;
    const int64_t now = 1000000000;
    for (int i = 0; i < 5; i++) {
        ASSERT_TRUE(gcra_take(fast, tat, now).allowed);
    }
    tat = gcra_rescale(fast, slow, tat, now);
    // read as a time, 500 ms owed would leave 4 of the slow rate's 5 requests
    EXPECT_FALSE(gcra_take(slow, tat, now + 1000000).allowed);
    EXPECT_EQ(tat, now + 5 * 60000000LL);
}

TEST(Gcra, RescaleUnderAFasterRateOwesAtMostAFullBucket) {
    GcraParams slow = GcraParams::from_rate(1, 60, 0); // 60 s period
    GcraParams fast = GcraParams::from_rate(100, 1, 0); // 10 ms period
    int64_t tat = 0;
    const int64_t now = 1000000000;
    ASSERT_TRUE(gcra_take(slow, tat, now).allowed);
    tat = gcra_rescale(slow, fast, tat, now);
    GcraDecision d = gcra_take(fast, tat, now);
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.retry_after_us, 10000u); // one new period, not the old minute
    EXPECT_TRUE(gcra_take(fast, tat, now + 10000).allowed);
}

TEST(Gcra, RescaleKeepsThePartUsedAndLeavesAnIdleKeyAlone) {
    GcraParams a = GcraParams::from_rate(10, 1, 9); // capacity 10, 100 ms
    GcraParams b = GcraParams::from_rate(1, 1, 9);  // capacity 10, 1 s
    int64_t tat = 0;
    const int64_t now = 1000000000;
    EXPECT_EQ(gcra_take_n(a, tat, now, 3), 3u);
    tat = gcra_rescale(a, b, tat, now);
    EXPECT_EQ(gcra_take_n(b, tat, now, 100), 7u);
    EXPECT_EQ(gcra_rescale(a, b, now - 5, now), now - 5);
}
