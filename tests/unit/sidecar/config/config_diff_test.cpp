#include <gtest/gtest.h>

#include <algorithm>

#include "config/config_diff.hpp"

namespace {

using Names = std::vector<std::string>;

TEST(ConfigDiff, EverySettingOfTheFileIsShown) {
    Names shown = levee::shown_setting_names();
    Names known = levee::setting_names();
    std::sort(shown.begin(), shown.end());
    std::sort(known.begin(), known.end());
    EXPECT_EQ(shown, known);
}

TEST(ConfigDiff, EffectiveSettingsMarkDefaultsAndMaskSecrets) {
    levee::Config c;
    c.socket_path = "/tmp/x.sock";
    c.redis_password = "s3cret-pw";
    c.mongo_uri = "mongodb://levee:m0ngo-pw@127.0.0.1:27017/?appname=leveed";
    const std::string text = levee::format_effective_settings(c);
    EXPECT_EQ(text.find("s3cret-pw"), std::string::npos) << text;
    EXPECT_EQ(text.find("m0ngo-pw"), std::string::npos) << text;
    EXPECT_NE(text.find("redis_password           ********\n"), std::string::npos) << text;
    EXPECT_NE(text.find("mongodb://levee:"), std::string::npos) << text;
    EXPECT_NE(text.find("socket                   /tmp/x.sock\n"), std::string::npos) << text;
    EXPECT_NE(text.find("log_level                info    # default\n"), std::string::npos) << text;
    EXPECT_NE(text.find("socket_mode              0660    # default\n"), std::string::npos) << text;
    EXPECT_NE(text.find("redis                    -    # default\n"), std::string::npos) << text;
    EXPECT_NE(text.find("spool_max_bytes          1073741824    # default\n"), std::string::npos) << text;
    EXPECT_EQ(static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')), levee::setting_names().size());
}

TEST(ConfigDiff, NothingChangedIsAnEmptyDiff) {
    const levee::ConfigChanges changes = levee::diff_config(levee::Config{}, levee::Config{});
    EXPECT_TRUE(changes.live.empty());
    EXPECT_TRUE(changes.restart.empty());
}

TEST(ConfigDiff, SplitsWhatAppliesLiveFromWhatNeedsARestart) {
    levee::Config running;
    levee::Config next;
    next.log_level = levee::log::Level::kDebug;
    next.socket_path = "/tmp/other.sock";
    next.mongo_flush_ms = 50;
    next.presence_buckets = 16;
    next.redis_wait_replicas = 0;
    next.drain_timeout_ms = 1;
    next.max_connections = 7;
    next.spool_fsync_interval_ms = 5;
    next.spool_max_bytes = 5u << 20;
    const levee::ConfigChanges changes = levee::diff_config(running, next);
    EXPECT_EQ(changes.live, (Names{"redis_wait_replicas", "mongo_flush_ms", "spool_fsync_interval_ms",
                                   "spool_max_bytes", "log_level", "max_connections", "drain_timeout_ms"}));
    // the admin socket is beside the socket unless set: it moves with it
    EXPECT_EQ(changes.restart, (Names{"socket", "admin_socket", "presence_buckets"}));
}

// They are fixed into each connection when it is accepted: a reload applies
// them to the next ones.
TEST(ConfigDiff, ConnectionLimitsApplyLive) {
    levee::Config running;
    levee::Config next;
    next.hello_timeout_ms = 1000;
    next.frame_timeout_ms = 2000;
    next.max_output_bytes = 2u << 20;
    next.max_connection_in_flight = 10;
    EXPECT_EQ(levee::diff_config(running, next).live,
              (Names{"hello_timeout_ms", "frame_timeout_ms", "max_output_bytes", "max_connection_in_flight"}));
    const levee::Config merged = levee::merge_live(running, next);
    EXPECT_EQ(merged.max_output_bytes, 2u << 20);
    EXPECT_EQ(merged.max_connection_in_flight, 10u);
}

TEST(ConfigDiff, AChangedSecretIsSeenThoughItIsShownMasked) {
    levee::Config running;
    levee::Config next;
    running.redis_password = "old";
    next.redis_password = "new";
    EXPECT_EQ(levee::diff_config(running, next).live, (Names{"redis_password"}));
    EXPECT_EQ(levee::merge_live(running, next).redis_password, "new");
}

TEST(ConfigDiff, MergeTakesLiveSettingsAndKeepsTheRest) {
    levee::Config running;
    levee::Config next;
    next.log_level = levee::log::Level::kWarn;
    next.redis_wait_timeout_ms = 7;
    next.socket_path = "/tmp/other.sock";
    next.spool_dir = "/tmp/spool";
    const levee::Config merged = levee::merge_live(running, next);
    EXPECT_EQ(merged.log_level, levee::log::Level::kWarn);
    EXPECT_EQ(merged.redis_wait_timeout_ms, 7u);
    EXPECT_EQ(merged.socket_path, running.socket_path);
    EXPECT_EQ(merged.spool_dir, running.spool_dir);
    // What is left differs only in settings that need a restart.
    EXPECT_TRUE(levee::diff_config(merged, next).live.empty());
    EXPECT_EQ(levee::diff_config(merged, next).restart, (Names{"socket", "admin_socket", "spool_dir"}));
}

} // namespace
