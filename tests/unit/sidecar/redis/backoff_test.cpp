#include "backoff.hpp"

#include <gtest/gtest.h>

using levee::redis::backoff_ms;

TEST(Backoff, GrowsThenCaps) {
    // random = 0 gives the low end (half), random = max gives the full delay.
    EXPECT_EQ(backoff_ms(1, 20, 1000, 0), 10);
    EXPECT_EQ(backoff_ms(1, 20, 1000, 10), 20);
    EXPECT_EQ(backoff_ms(2, 20, 1000, 20), 40);
    EXPECT_EQ(backoff_ms(3, 20, 1000, 40), 80);
    EXPECT_EQ(backoff_ms(50, 20, 1000, 500), 1000);
    EXPECT_EQ(backoff_ms(1000000, 20, 1000, 0), 500);
}

TEST(Backoff, StaysWithinJitterBounds) {
    for (int attempt = 1; attempt < 12; ++attempt) {
        for (uint32_t r = 0; r < 5000; r += 37) {
            const int d = backoff_ms(attempt, 20, 1000, r * 2654435761u);
            EXPECT_GE(d, 10);
            EXPECT_LE(d, 1000);
        }
    }
}

TEST(Backoff, DegenerateOptions) {
    EXPECT_GE(backoff_ms(1, 0, 0, 7), 0);
    EXPECT_LE(backoff_ms(5, 100, 10, 7), 100); // max below min: min wins
}
