// SpoolFeed: a spool that refuses batches is counted per record and said
// once per episode, with what is lost; its end is said too.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <unistd.h>

#include "log.hpp"
#include "metrics.hpp"
#include "service/spool_feed.hpp"
#include "spool.hpp"

namespace levee {
namespace {

class SpoolFeedTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/levee-spool-feed-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        SpoolOptions o;
        o.dir = dir_ + "/spool";
        o.fsync = SpoolFsync::kNever;
        std::string error;
        spool_ = Spool::open(o, error);
        ASSERT_NE(spool_, nullptr) << error;
        ASSERT_TRUE(log::open_file(dir_ + "/leveed.log", error)) << error;
    }
    void TearDown() override {
        std::string error;
        log::open_file("/dev/stderr", error);
        spool_.reset();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    std::string log_text() const {
        std::ifstream f(dir_ + "/leveed.log");
        std::stringstream ss;
        ss << f.rdbuf();
        return ss.str();
    }
    static std::size_t count(const std::string &text, const std::string &what) {
        std::size_t n = 0;
        for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
            n++;
        }
        return n;
    }
    std::string dir_;
    std::unique_ptr<Spool> spool_;
};

const std::vector<SpoolRecord> kTwo = {{"alice", "", 1}, {"bob", "lobby", 2}};

TEST_F(SpoolFeedTest, AFullSpoolIsSaidOncePerEpisodeAndCountedPerRecord) {
    Metrics metrics;
    SpoolFeed feed(spool_.get(), metrics);
    EXPECT_TRUE(feed.append(kTwo, [] {}));
    spool_->set_max_bytes(1);
    for (int i = 0; i < 3; i++) {
        EXPECT_FALSE(feed.append(kTwo, [] {}));
    }
    spool_->set_max_bytes(0);
    EXPECT_TRUE(feed.append(kTwo, [] {}));
    spool_->set_max_bytes(1);
    EXPECT_FALSE(feed.append(kTwo, [] {})); // a second episode

    EXPECT_EQ(metrics.value("leveed_spool_dropped_records_total", {{"reason", "full"}}), 8);
    EXPECT_EQ(metrics.value("leveed_spool_dropped_records_total", {{"reason", "disk"}}), 0);
    const std::string text = log_text();
    EXPECT_EQ(count(text, " warn spool_dropping reason=full "), 2u) << text;
    EXPECT_NE(text.find("lost=\"the MongoDB last_seen of these beats; Redis presence is kept\""), std::string::npos)
        << text;
    EXPECT_EQ(count(text, " info spool_accepting_again dropped_records=6"), 1u) << text;
}

TEST_F(SpoolFeedTest, NoSpoolIsNothingToFeed) {
    Metrics metrics;
    SpoolFeed feed(nullptr, metrics);
    EXPECT_FALSE(feed.append(kTwo, [] {}));
    EXPECT_EQ(metrics.value("leveed_spool_dropped_records_total", {{"reason", "full"}}), 0);
    EXPECT_EQ(log_text(), "");
}

} // namespace
} // namespace levee
