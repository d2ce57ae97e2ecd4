#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <unistd.h>

#include "config/config_source.hpp"

namespace {

// A settings file of its own per test, removed at the end.
class TempFile {
  public:
    explicit TempFile(const std::string &text) {
        char tmpl[] = "/tmp/levee-config-source-XXXXXX";
        const int fd = ::mkstemp(tmpl);
        path_ = tmpl;
        ::close(fd);
        std::ofstream(path_) << text;
    }
    ~TempFile() { std::remove(path_.c_str()); }
    const std::string &path() const { return path_; }

  private:
    std::string path_;
};

TEST(ConfigSource, AGivenFileIsRequired) {
    const levee::ConfigSource source = levee::ConfigSource::from_command_line("/nonexistent/leveed.conf");
    EXPECT_FALSE(source.optional);
    levee::Config c;
    const auto errors = levee::load_config(source, c);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].line, 0);
}

TEST(ConfigSource, WithoutAFlagTheDefaultFileIsOptionalAndMovable) {
    ::unsetenv(levee::kConfigPathEnv);
    EXPECT_EQ(levee::ConfigSource::from_command_line("").path, levee::kDefaultConfigPath);
    ::setenv(levee::kConfigPathEnv, "/nonexistent/leveed.conf", 1);
    const levee::ConfigSource source = levee::ConfigSource::from_command_line("");
    ::unsetenv(levee::kConfigPathEnv);
    EXPECT_EQ(source.path, "/nonexistent/leveed.conf");
    EXPECT_TRUE(source.optional);

    levee::Config c;
    c.log_level = levee::log::Level::kError;
    bool used_file = true;
    EXPECT_TRUE(levee::load_config(source, c, &used_file).empty());
    EXPECT_FALSE(used_file);
    EXPECT_EQ(c.socket_path, "/run/levee/leveed.sock");
    EXPECT_EQ(c.log_level, levee::log::Level::kInfo) << "loading starts from the defaults";
    EXPECT_TRUE(c.standalone());
}

TEST(ConfigSource, FlagsOverrideTheFileAndTheirErrorsNameTheFlag) {
    TempFile file("socket /tmp/from-file.sock\nlog_level warn\n");
    levee::ConfigSource source = levee::ConfigSource::from_command_line(file.path());
    source.overrides = {{"socket", "/tmp/from-flag.sock"}};
    levee::Config c;
    bool used_file = false;
    ASSERT_TRUE(levee::load_config(source, c, &used_file).empty());
    EXPECT_TRUE(used_file);
    EXPECT_EQ(c.socket_path, "/tmp/from-flag.sock");
    EXPECT_EQ(c.log_level, levee::log::Level::kWarn);

    source.overrides = {{"redis", "nope"}};
    const auto errors = levee::load_config(source, c);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].message.rfind("--redis: ", 0), 0u) << errors[0].message;
}

TEST(ConfigSource, EveryErrorOfFileFlagsAndRelationsIsListed) {
    TempFile file("log_level loud\nredis_user levee\n");
    levee::ConfigSource source = levee::ConfigSource::from_command_line(file.path());
    source.overrides = {{"socket", "relative.sock"}};
    levee::Config c;
    const auto errors = levee::load_config(source, c);
    ASSERT_EQ(errors.size(), 3u);
    EXPECT_EQ(errors[0].line, 1);
    EXPECT_EQ(errors[1].line, 0); // --socket
    EXPECT_EQ(errors[2].line, 0); // redis_user without a password
}

TEST(ConfigSource, RefusesAGroupOrALogFileStartWouldFailOn) {
    TempFile file("socket_group no-such-group-levee\nlog_file /nonexistent-dir/leveed.log\n");
    levee::Config c;
    const auto errors = levee::load_config(levee::ConfigSource::from_command_line(file.path()), c);
    ASSERT_EQ(errors.size(), 2u);
    EXPECT_NE(errors[0].message.find("no such group"), std::string::npos) << errors[0].message;
    EXPECT_NE(errors[1].message.find("/nonexistent-dir/leveed.log"), std::string::npos) << errors[1].message;
}

} // namespace
