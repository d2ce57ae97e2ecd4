#include <cstring>

#include <gtest/gtest.h>

#include "core/limit/rate_parse.hpp"

using namespace levee::limit;

static const char *rate(const char *s, Rate &r) { return parse_rate(s, std::strlen(s), r); }

TEST(RateParse, Accepts) {
    Rate r;
    ASSERT_EQ(rate("100r/s", r), nullptr);
    EXPECT_EQ(r.requests, 100u);
    EXPECT_EQ(r.window_s, 1u);
    ASSERT_EQ(rate("1000r/m", r), nullptr);
    EXPECT_EQ(r.requests, 1000u);
    EXPECT_EQ(r.window_s, 60u);
    ASSERT_EQ(rate("500r/h", r), nullptr);
    EXPECT_EQ(r.window_s, 3600u);
    ASSERT_EQ(rate("100r/d", r), nullptr);
    EXPECT_EQ(r.requests, 100u);
    EXPECT_EQ(r.window_s, 86400u);
    ASSERT_EQ(rate("1000000r/s", r), nullptr);
    ASSERT_EQ(rate("1r/d", r), nullptr);
}

TEST(RateParse, Refuses) {
    Rate r;
    for (const char *bad : {"", "r/s", "10/s", "10r/w", "10rs", "-1r/s", "1.5r/s", "0r/s", "99999999r/s", "x10r/s"}) {
        EXPECT_NE(rate(bad, r), nullptr) << bad;
    }
    EXPECT_STREQ(rate("10r/w", r), "the unit must be r/s, r/m, r/h or r/d");
    // out of range: the message names the supported range
    EXPECT_STREQ(rate("1000001r/s", r), "the supported rates are 1r/d to 1000000r/s");
    EXPECT_STREQ(rate("0r/d", r), "the supported rates are 1r/d to 1000000r/s");
}

TEST(RateParse, SpanOfTheBucket) {
    Rate r;
    ASSERT_EQ(rate("1r/d", r), nullptr);
    EXPECT_EQ(check_span(r, 364), nullptr); // 365 days
    EXPECT_NE(check_span(r, 365), nullptr);
    ASSERT_EQ(rate("100r/d", r), nullptr);
    EXPECT_EQ(check_span(r, 99), nullptr); // a day's quota at once
    ASSERT_EQ(rate("1000000r/s", r), nullptr);
    EXPECT_EQ(check_span(r, 1000000), nullptr);
}

TEST(RateParse, Count) {
    uint64_t v = 0;
    EXPECT_EQ(parse_count("50", 2, 100, v), nullptr);
    EXPECT_EQ(v, 50u);
    EXPECT_NE(parse_count("101", 3, 100, v), nullptr);
    EXPECT_NE(parse_count("", 0, 100, v), nullptr);
    EXPECT_NE(parse_count("5a", 2, 100, v), nullptr);
}
