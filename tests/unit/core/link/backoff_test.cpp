#include <gtest/gtest.h>

#include "core/link/backoff.hpp"

using levee::link::Backoff;
using levee::link::backoff_delay;

TEST(Backoff, GrowsExponentiallyWithinJitter) {
    Backoff b;
    b.init(100, 5000, 12345);
    uint32_t expected_max = 100;
    for (int i = 0; i < 6; i++) {
        const uint32_t d = b.next();
        EXPECT_GE(d, expected_max / 2);
        EXPECT_LE(d, expected_max);
        expected_max *= 2;
    }
}

TEST(Backoff, NeverExceedsTheCap) {
    Backoff b;
    b.init(100, 5000, 7);
    for (int i = 0; i < 200; i++) {
        const uint32_t d = b.next();
        EXPECT_LE(d, 5000u);
        if (i > 10) {
            EXPECT_GE(d, 2500u);
        }
    }
}

TEST(Backoff, ResetStartsOver) {
    Backoff b;
    b.init(100, 5000, 99);
    for (int i = 0; i < 10; i++) {
        b.next();
    }
    b.reset();
    const uint32_t d = b.next();
    EXPECT_GE(d, 50u);
    EXPECT_LE(d, 100u);
}

TEST(Backoff, WorkersWithDifferentSeedsSpreadOut) {
    Backoff a, b;
    a.init(1000, 1000, 1);
    b.init(1000, 1000, 2);
    int differ = 0;
    for (int i = 0; i < 20; i++) {
        differ += a.next() != b.next();
    }
    EXPECT_GT(differ, 10);
}

// random 0 gives the low end (half), random = half the full delay.
TEST(BackoffDelay, GrowsThenCaps) {
    EXPECT_EQ(backoff_delay(0, 20, 1000, 0), 10u);
    EXPECT_EQ(backoff_delay(0, 20, 1000, 10), 20u);
    EXPECT_EQ(backoff_delay(1, 20, 1000, 20), 40u);
    EXPECT_EQ(backoff_delay(2, 20, 1000, 40), 80u);
    EXPECT_EQ(backoff_delay(49, 20, 1000, 500), 1000u);
    EXPECT_EQ(backoff_delay(999999, 20, 1000, 0), 500u);
}

TEST(BackoffDelay, StaysWithinJitterBounds) {
    for (uint32_t doublings = 0; doublings < 11; doublings++) {
        for (uint32_t r = 0; r < 5000; r += 37) {
            const uint32_t d = backoff_delay(doublings, 20, 1000, uint64_t{r} * 2654435761u);
            EXPECT_GE(d, 10u);
            EXPECT_LE(d, 1000u);
        }
    }
}

TEST(BackoffDelay, DegenerateOptions) {
    EXPECT_LE(backoff_delay(0, 0, 0, 7), 1u);
    EXPECT_LE(backoff_delay(4, 100, 10, 7), 100u); // cap below base: base wins
}
