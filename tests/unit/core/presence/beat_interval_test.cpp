#include <gtest/gtest.h>

#include "core/presence/beat_interval.hpp"

using namespace levee::presence;

TEST(BeatInterval, IsTheIntervalUpToHalfTheBacklog) {
    for (uint64_t waiting : {0u, 1u, 250u, 500u}) {
        EXPECT_EQ(beat_interval_ms(60000, 180000, waiting, 1000, true), 60000u) << waiting;
    }
}

TEST(BeatInterval, GrowsLinearlyToTheMaximumAsTheBacklogFills) {
    EXPECT_EQ(beat_interval_ms(60000, 180000, 501, 1000, true), 60240u);
    EXPECT_EQ(beat_interval_ms(60000, 180000, 750, 1000, true), 120000u);
    EXPECT_EQ(beat_interval_ms(60000, 180000, 1000, 1000, true), 180000u);
    EXPECT_EQ(beat_interval_ms(60000, 180000, 5000, 1000, true), 180000u) << "never past the maximum";
    EXPECT_EQ(beat_interval_ms(60000, 60000, 900, 1000, true), 60000u);
}

TEST(BeatInterval, IsTheMaximumWithoutALinkToLeveed) {
    EXPECT_EQ(beat_interval_ms(60000, 180000, 0, 1000, false), 180000u);
    EXPECT_EQ(beat_interval_ms(60000, 180000, 750, 1000, false), 180000u);
}

TEST(BeatInterval, HeaderSecondsRoundUp) {
    EXPECT_EQ(header_seconds(0), 0u);
    EXPECT_EQ(header_seconds(1), 1u);
    EXPECT_EQ(header_seconds(60000), 60u);
    EXPECT_EQ(header_seconds(60001), 61u);
}

TEST(BeatInterval, RetryAfterIsFourFlushesAndAtLeastASecond) {
    EXPECT_EQ(retry_after_seconds(0), 1u);
    EXPECT_EQ(retry_after_seconds(250), 1u);
    EXPECT_EQ(retry_after_seconds(300), 2u);
    EXPECT_EQ(retry_after_seconds(1000), 4u);
}

TEST(BeatInterval, BacklogIsConfiguredOrDerivedFromTheTableSize) {
    EXPECT_EQ(backlog_limit(42, 1 << 20), 42u);
    EXPECT_EQ(backlog_limit(0, 5600), 100u);
    EXPECT_EQ(backlog_limit(0, 16 * 1024 * 1024), 16u * 1024 * 1024 / 56);
}
