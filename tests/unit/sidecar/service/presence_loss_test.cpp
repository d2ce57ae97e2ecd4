// PresenceLoss: which Redis errors are permanent, and losses counted per
// record and said once per episode, which ends after a quiet while.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <unistd.h>

#include "log.hpp"
#include "metrics.hpp"
#include "reply.hpp"
#include "service/presence_loss.hpp"

namespace levee {
namespace {

TEST(PresenceLoss, OnlyErrorsThatComeBackEveryTimeArePermanent) {
    EXPECT_TRUE(is_permanent(redis::Reply::error("ERR user_script:9: too many results to unpack")));
    EXPECT_TRUE(is_permanent(redis::Reply::error("WRONGTYPE Operation against a key holding the wrong kind")));
    for (const char *passes : {"OOM command not allowed", "BUSY Redis is busy", "LOADING", "READONLY", "CLUSTERDOWN",
                               "TRYAGAIN", "LEVEE_UNAVAILABLE gave up after 15000 ms", "ERRATIC not a code of Redis"}) {
        EXPECT_FALSE(is_permanent(redis::Reply::error(passes))) << passes;
    }
    EXPECT_FALSE(is_permanent(redis::Reply::status("OK")));
}

TEST(PresenceLoss, CountedPerRecordAndSaidOncePerEpisode) {
    char tmpl[] = "/tmp/levee-presence-loss-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    const std::string dir = tmpl;
    std::string error;
    ASSERT_TRUE(log::open_file(dir + "/leveed.log", error)) << error;

    Metrics metrics;
    PresenceLoss loss(metrics);
    const std::int64_t t = 1000000;
    loss.settle(0, 0, "", t);
    loss.settle(0, 4000, "redis: ERR unpack", t + 1);
    loss.settle(0, 0, "", t + 2); // between poison batches: the episode goes on
    loss.settle(3, 0, "redis: WRONGTYPE", t + 3);
    loss.settle(0, 0, "", t + 3 + PresenceLoss::kQuietMs - 1);
    loss.settle(0, 0, "", t + 3 + PresenceLoss::kQuietMs); // quiet long enough: ends
    loss.settle(0, 0, "", t + 3 + PresenceLoss::kQuietMs + 1);
    loss.settle(0, 2, "redis: ERR again", t + 2 * PresenceLoss::kQuietMs); // a second episode

    EXPECT_EQ(metrics.value("leveed_presence_lost_total", {{"kind", "room"}}), 4002);
    EXPECT_EQ(metrics.value("leveed_presence_lost_total", {{"kind", "user"}}), 3);
    std::ifstream f(dir + "/leveed.log");
    std::stringstream ss;
    ss << f.rdbuf();
    const std::string text = ss.str();
    auto count = [&text](const std::string &what) {
        std::size_t n = 0;
        for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
            n++;
        }
        return n;
    };
    EXPECT_EQ(count(" warn presence_lost "), 2u) << text;
    EXPECT_EQ(count(" info presence_loss_ended "), 1u) << text;
    EXPECT_EQ(count(" info presence_loss_ended lost_records=4003"), 1u) << text;
    EXPECT_NE(text.find("error=\"redis: ERR unpack\""), std::string::npos) << text;

    log::open_file("/dev/stderr", error);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
}

} // namespace
} // namespace levee
