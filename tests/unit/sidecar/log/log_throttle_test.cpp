#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "log_throttle.hpp"

namespace {

using levee::log::LogThrottle;

struct Throttle : ::testing::Test {
    std::int64_t now = 50000;
    LogThrottle throttle{1000, [this] { return now; }};

    // The not_logged of the line allowed now, or -1 when none is.
    long long line(const std::string &key) {
        std::uint64_t not_logged = 99;
        return throttle.allow(key, not_logged) ? static_cast<long long>(not_logged) : -1;
    }
};

TEST_F(Throttle, TheFirstLineOfAKindIsWrittenAtOnce) {
    EXPECT_EQ(line("request_refused/admin_only"), 0);
}

TEST_F(Throttle, OneLinePerIntervalAndTheNextSaysHowManyWereNot) {
    EXPECT_EQ(line("k"), 0);
    for (int i = 0; i < 2000; i++) {
        EXPECT_EQ(line("k"), -1);
    }
    now += 999;
    EXPECT_EQ(line("k"), -1);
    now += 1;
    EXPECT_EQ(line("k"), 2001);
    // counted afresh from that line
    EXPECT_EQ(line("k"), -1);
    now += 1000;
    EXPECT_EQ(line("k"), 1);
}

TEST_F(Throttle, AQuietKindLogsItsNextLineAtOnce) {
    EXPECT_EQ(line("k"), 0);
    now += 60000;
    EXPECT_EQ(line("k"), 0);
}

TEST_F(Throttle, KindsAreThrottledApart) {
    EXPECT_EQ(line("request_refused/admin_only"), 0);
    EXPECT_EQ(line("request_refused/admin_only"), -1);
    // another reason of the same event is not held back by the first
    EXPECT_EQ(line("request_refused/undeclared_registry"), 0);
    EXPECT_EQ(line("limit_lease_undeclared"), 0);
    now += 1000;
    EXPECT_EQ(line("request_refused/undeclared_registry"), 0);
    EXPECT_EQ(line("request_refused/admin_only"), 1);
}

TEST_F(Throttle, WritesTheLinesItAllowsWithHowManyWereNot) {
    const std::string path = ::testing::TempDir() + "log_throttle_test.log";
    std::remove(path.c_str());
    std::string error;
    ASSERT_TRUE(levee::log::open_file(path, error)) << error;
    for (int i = 0; i < 5; i++) {
        throttle.warn("request_refused/admin_only", "request_refused", {{"reason", "admin_only"}});
    }
    now += 1000;
    throttle.warn("request_refused/admin_only", "request_refused", {{"reason", "admin_only"}});
    throttle.warn("limit_lease_undeclared", {{"zone", "z"}});
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    const std::string log = text.str();
    const auto first = log.find(" warn request_refused reason=admin_only not_logged=0\n");
    const auto second = log.find(" warn request_refused reason=admin_only not_logged=4\n");
    EXPECT_NE(first, std::string::npos) << log;
    EXPECT_NE(second, std::string::npos) << log;
    EXPECT_NE(log.find(" warn limit_lease_undeclared zone=z not_logged=0\n"), std::string::npos) << log;
    EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 3) << log;
}

TEST(LogThrottle, TheDefaultIsOneLineASecondOnTheSteadyClock) {
    LogThrottle throttle;
    const std::int64_t before = LogThrottle::steady_now_ms();
    std::uint64_t not_logged = 7;
    EXPECT_TRUE(throttle.allow("k", not_logged));
    EXPECT_EQ(not_logged, 0u);
    // held back, unless this machine stalled this test for a second
    const bool again = throttle.allow("k", not_logged);
    if (LogThrottle::steady_now_ms() - before < 1000) {
        EXPECT_FALSE(again);
    }
}

} // namespace
