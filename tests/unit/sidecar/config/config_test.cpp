#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <utility>

#include "config/config.hpp"
#include "core/link/frame_bounds.hpp"

namespace {

TEST(Config, DefaultsAreStandaloneWithA0660Socket) {
    levee::Config c;
    EXPECT_TRUE(c.standalone());
    EXPECT_EQ(c.socket_mode, 0660u);
    EXPECT_EQ(c.max_frame_bytes, 1u << 20);
}

TEST(Config, ParsesEverySetting) {
    levee::Config c;
    const auto errors = levee::parse_config(
        "# leveed\n"
        "socket /tmp/l.sock   # trailing comment\n"
        "socket_mode 0600\n"
        "redis 127.0.0.1:7000,127.0.0.1:7001\n"
        "mongo mongodb://127.0.0.1:27017/\n"
        "mongo_database presence\n"
        "log_level debug\n"
        "metrics_listen 127.0.0.1:9465\n"
        "max_frame_bytes 768k\n"
        "\n",
        c);
    ASSERT_TRUE(errors.empty()) << errors[0].message;
    EXPECT_EQ(c.socket_path, "/tmp/l.sock");
    EXPECT_EQ(c.socket_mode, 0600u);
    EXPECT_EQ(c.redis_seeds, "127.0.0.1:7000,127.0.0.1:7001");
    EXPECT_EQ(c.mongo_uri, "mongodb://127.0.0.1:27017/");
    EXPECT_EQ(c.mongo_database, "presence");
    EXPECT_EQ(c.log_level, levee::log::Level::kDebug);
    EXPECT_EQ(c.metrics_listen, "127.0.0.1:9465");
    EXPECT_EQ(c.max_frame_bytes, 786432u);
    EXPECT_FALSE(c.standalone());
}

TEST(Config, ReportsEveryErrorWithItsLine) {
    levee::Config c;
    const auto errors = levee::parse_config(
        "socket relative.sock\n"
        "bogus 1\n"
        "\n"
        "redis localhost\n"
        "socket_mode 999\n"
        "mongo http://x\n"
        "log_level loud\n"
        "max_frame_bytes 12\n"
        "log_level\n",
        c);
    ASSERT_EQ(errors.size(), 8u);
    const int lines[] = {1, 2, 4, 5, 6, 7, 8, 9};
    for (std::size_t i = 0; i < errors.size(); i++) {
        EXPECT_EQ(errors[i].line, lines[i]) << errors[i].message;
        EXPECT_FALSE(errors[i].message.empty());
    }
    EXPECT_NE(errors[1].message.find("unknown setting \"bogus\""), std::string::npos);
}

TEST(Config, FramesLargerThanTheModuleReadsAreRefused) {
    levee::Config c;
    const auto errors = levee::parse_config("max_frame_bytes 2m\n", c);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_NE(errors[0].message.find("and 1m"), std::string::npos);
}

// Below the module's largest batch frame (a heartbeat batch of 4000 records
// and 512k of names), leveed would close the link on that batch and the
// module would send it again, forever.
TEST(Config, FramesSmallerThanTheModulesLargestBatchAreRefused) {
    EXPECT_EQ(levee::link::kMinMaxFrameBytes, 595u * 1024);
    for (const char *v : {"1k", "64k", "512k", "594k", "609279"}) {
        levee::Config c;
        const auto errors = levee::parse_config(std::string("max_frame_bytes ") + v + "\n", c);
        ASSERT_EQ(errors.size(), 1u) << v;
        EXPECT_NE(errors[0].message.find("between 595k (the module's largest batch frame) and 1m"), std::string::npos)
            << errors[0].message;
    }
    levee::Config c;
    ASSERT_TRUE(levee::parse_config("max_frame_bytes 595k\n", c).empty());
    EXPECT_EQ(c.max_frame_bytes, 595u * 1024);
}

TEST(Config, SocketModeRefusesWorldWritableAndSpecialBits) {
    const std::pair<const char *, const char *> refused[] = {
        {"0777", "world-writable"}, {"0666", "world-writable"}, {"0662", "world-writable"}, {"2", "world-writable"},
        {"7777", "setuid, setgid or sticky"}, {"4660", "setuid, setgid or sticky"}, {"1660", "setuid, setgid or sticky"},
    };
    for (const auto &[mode, reason] : refused) {
        levee::Config c;
        const auto errors = levee::parse_config(std::string("socket_mode ") + mode + "\n", c);
        ASSERT_EQ(errors.size(), 1u) << mode;
        EXPECT_NE(errors[0].message.find(reason), std::string::npos) << errors[0].message;
        EXPECT_EQ(c.socket_mode, 0660u) << mode;
    }
    for (const auto &[mode, want] : {std::pair<const char *, unsigned>{"0600", 0600}, {"0660", 0660}, {"0664", 0664},
                                     {"0775", 0775}}) {
        levee::Config c;
        ASSERT_TRUE(levee::parse_config(std::string("socket_mode ") + mode + "\n", c).empty()) << mode;
        EXPECT_EQ(c.socket_mode, want);
    }
}

TEST(Config, PresenceBucketsAreBounded) {
    levee::Config c;
    EXPECT_EQ(c.presence_buckets, 64u);
    EXPECT_TRUE(levee::parse_config("presence_buckets 256\n", c).empty());
    EXPECT_EQ(c.presence_buckets, 256u);
    levee::Config d;
    EXPECT_EQ(levee::parse_config("presence_buckets 0\n", d).size(), 1u);
    EXPECT_EQ(levee::parse_config("presence_buckets 16385\n", d).size(), 1u);
}

TEST(Config, SpoolMaxBytesIsASizeOfAtLeastOneMegabyte) {
    levee::Config c;
    EXPECT_EQ(c.spool_max_bytes, std::uint64_t{1} << 30);
    EXPECT_TRUE(levee::parse_config("spool_max_bytes 20g\n", c).empty());
    EXPECT_EQ(c.spool_max_bytes, std::uint64_t{20} << 30);
    levee::Config d;
    EXPECT_TRUE(levee::parse_config("spool_max_bytes 512M\n", d).empty());
    EXPECT_EQ(d.spool_max_bytes, std::uint64_t{512} << 20);
    for (const char *bad : {"0", "1048575", "1023k", "lots", "-1g", "1t"}) {
        levee::Config e;
        const auto errors = levee::parse_config(std::string("spool_max_bytes ") + bad + "\n", e);
        ASSERT_EQ(errors.size(), 1u) << bad;
        EXPECT_NE(errors[0].message.find("spool_max_bytes must be a size from 1m"), std::string::npos)
            << errors[0].message;
        EXPECT_EQ(e.spool_max_bytes, std::uint64_t{1} << 30);
    }
}

TEST(Config, ConnectionLimitsHaveDefaultsAndRanges) {
    levee::Config c;
    EXPECT_EQ(c.hello_timeout_ms, 5000u);
    EXPECT_EQ(c.frame_timeout_ms, 10000u);
    EXPECT_EQ(c.max_output_bytes, 8u << 20);
    EXPECT_EQ(c.max_connection_in_flight, 50000u);
    EXPECT_TRUE(levee::parse_config("hello_timeout_ms 100\nframe_timeout_ms 600000\nmax_output_bytes 1m\n"
                                    "max_connection_in_flight 1\n",
                                    c)
                    .empty());
    EXPECT_EQ(c.hello_timeout_ms, 100u);
    EXPECT_EQ(c.frame_timeout_ms, 600000u);
    EXPECT_EQ(c.max_output_bytes, 1u << 20);
    EXPECT_EQ(c.max_connection_in_flight, 1u);
    levee::Config d;
    const auto errors = levee::parse_config("hello_timeout_ms 99\nframe_timeout_ms 600001\nmax_output_bytes 1023k\n"
                                            "max_output_bytes_x 1\nmax_connection_in_flight 100001\n",
                                            d);
    ASSERT_EQ(errors.size(), 5u);
    EXPECT_NE(errors[0].message.find("hello_timeout_ms must be 100..600000"), std::string::npos);
    EXPECT_NE(errors[1].message.find("frame_timeout_ms must be 100..600000"), std::string::npos);
    EXPECT_NE(errors[2].message.find("between 1m and 256m"), std::string::npos);
    EXPECT_NE(errors[4].message.find("max_connection_in_flight must be 1..100000"), std::string::npos);
}

// --check-config said ok to these, then leveed refused to start with them.
TEST(Config, RefusesWhatStartupWouldRefuse) {
    levee::Config c;
    EXPECT_NE(levee::apply_setting("redis", "::1:7000", c), "") << "unbracketed IPv6";
    EXPECT_NE(levee::apply_setting("redis", "127.0.0.1:7000,", c), "") << "empty entry";
    EXPECT_EQ(levee::apply_setting("redis", "[::1]:7000, 127.0.0.1:7001", c), "");
    EXPECT_NE(levee::apply_setting("mongo", "mongodb://127.0.0.1:notaport/", c), "");
    const std::string err = levee::apply_setting("mongo", "mongodb://u:hidden@127.0.0.1:99999/", c);
    EXPECT_NE(err, "");
    EXPECT_EQ(err.find("hidden"), std::string::npos) << err;
    EXPECT_EQ(levee::apply_setting("mongo", "mongodb://u:p@127.0.0.1:27017/?appname=leveed", c), "");
}

TEST(Config, RefusesASettingGivenTwice) {
    levee::Config c;
    const auto errors = levee::parse_config("socket /a\nsocket /b\n", c);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].line, 2);
    EXPECT_NE(errors[0].message.find("line 1"), std::string::npos);
}

TEST(Config, OverridesAreCheckedLikeTheFile) {
    levee::Config c;
    EXPECT_EQ(levee::apply_setting("redis", "127.0.0.1:7000", c), "");
    EXPECT_EQ(c.redis_seeds, "127.0.0.1:7000");
    EXPECT_NE(levee::apply_setting("redis", "nope", c), "");
    EXPECT_NE(levee::apply_setting("socket", "x", c), "");
}

TEST(Config, RedisUserAndPasswordAreTakenAsWritten) {
    levee::Config c;
    EXPECT_TRUE(c.redis_password.empty());
    const auto errors = levee::parse_config("redis_user   levee\nredis_password  two words\t\n", c);
    ASSERT_TRUE(errors.empty()) << errors[0].message;
    EXPECT_EQ(c.redis_user, "levee");
    EXPECT_EQ(c.redis_password, "two words");
}

TEST(Config, BadRedisAuthLinesAreReportedWithoutTheSecret) {
    levee::Config c;
    const auto errors = levee::parse_config(
        "redis_user two words\n"
        "redis_password\n"
        "redis_password pa#ss\n"
        "redis_password secret # the prod one\n",
        c);
    ASSERT_EQ(errors.size(), 4u);
    for (int i = 0; i < 4; i++) {
        EXPECT_EQ(errors[i].line, i + 1) << errors[i].message;
        EXPECT_EQ(errors[i].message.find("pa#ss"), std::string::npos) << errors[i].message;
        EXPECT_EQ(errors[i].message.find("secret"), std::string::npos) << errors[i].message;
    }
    EXPECT_NE(errors[0].message.find("one word"), std::string::npos) << errors[0].message;
    EXPECT_NE(errors[1].message.find("needs a value"), std::string::npos) << errors[1].message;
    EXPECT_NE(errors[2].message.find("LEVEE_REDIS_PASSWORD"), std::string::npos) << errors[2].message;
    EXPECT_TRUE(c.redis_password.empty()) << "a cut password must not be used";
}

TEST(Config, EnvironmentPasswordOverridesTheFileUnlessEmpty) {
    levee::Config c;
    ASSERT_TRUE(levee::parse_config("redis_password from-file\n", c).empty());
    ::setenv(levee::kRedisPasswordEnv, "", 1);
    EXPECT_TRUE(levee::apply_environment(c).empty());
    EXPECT_EQ(c.redis_password, "from-file");
    ::setenv(levee::kRedisPasswordEnv, "from#env ", 1);
    EXPECT_TRUE(levee::apply_environment(c).empty());
    EXPECT_EQ(c.redis_password, "from#env ") << "the environment is taken byte for byte";
    ::unsetenv(levee::kRedisPasswordEnv);
}

TEST(Config, RedisUserNeedsAPassword) {
    levee::Config c;
    ASSERT_TRUE(levee::parse_config("redis_user levee\n", c).empty());
    const auto errors = levee::validate_config(c);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_NE(errors[0].message.find("LEVEE_REDIS_PASSWORD"), std::string::npos) << errors[0].message;
    c.redis_password = "x";
    EXPECT_TRUE(levee::validate_config(c).empty());
}

TEST(Config, RedisTlsSettings) {
    levee::Config c;
    EXPECT_FALSE(c.redis_tls);
    auto errors = levee::parse_config("redis_tls on\n"
                                      "redis_tls_ca_file /etc/levee/ca.crt\n"
                                      "redis_tls_cert_file /etc/levee/leveed.crt\n"
                                      "redis_tls_key_file /etc/levee/leveed.key\n"
                                      "redis_tls_server_name redis.internal\n",
                                      c);
    ASSERT_TRUE(errors.empty()) << errors[0].message;
    EXPECT_TRUE(c.redis_tls);
    EXPECT_EQ(c.redis_tls_ca_file, "/etc/levee/ca.crt");
    EXPECT_EQ(c.redis_tls_cert_file, "/etc/levee/leveed.crt");
    EXPECT_EQ(c.redis_tls_key_file, "/etc/levee/leveed.key");
    EXPECT_EQ(c.redis_tls_server_name, "redis.internal");
    EXPECT_TRUE(levee::validate_config(c).empty());

    levee::Config bad;
    errors = levee::parse_config("redis_tls yes\nredis_tls_ca_file ca.crt\nredis_tls_server_name a b\n", bad);
    ASSERT_EQ(errors.size(), 3u);
    EXPECT_EQ(errors[0].line, 1);
    EXPECT_EQ(errors[0].message, "redis_tls must be on or off");
    EXPECT_EQ(errors[1].message, "redis_tls_ca_file must be an absolute path");
    EXPECT_EQ(errors[2].message, "redis_tls_server_name must be a host name or address");
}

TEST(Config, RedisTlsFilesWithTlsOffOrACertWithoutKeyAreRefused) {
    levee::Config c;
    ASSERT_TRUE(levee::parse_config("redis_tls_ca_file /etc/levee/ca.crt\n", c).empty());
    auto errors = levee::validate_config(c);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].message, "redis_tls_ca_file is set but redis_tls is off: set redis_tls on");

    levee::Config half;
    ASSERT_TRUE(levee::parse_config("redis_tls on\nredis_tls_cert_file /etc/levee/leveed.crt\n", half).empty());
    errors = levee::validate_config(half);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].message, "redis_tls_cert_file and redis_tls_key_file go together: set both or neither");
}

TEST(Config, TheAdminSocketIsBesideTheSocketUnlessToldOrOff) {
    levee::Config c;
    EXPECT_EQ(c.admin_socket_path(), "/run/levee/leveed-admin.sock");
    ASSERT_TRUE(levee::parse_config("socket /tmp/x/nginx.sock\n", c).empty());
    EXPECT_EQ(c.admin_socket_path(), "/tmp/x/nginx-admin.sock");
    ASSERT_TRUE(levee::parse_config("admin_socket /tmp/admin\n", c).empty());
    EXPECT_EQ(c.admin_socket_path(), "/tmp/admin");
    levee::Config off;
    ASSERT_TRUE(levee::parse_config("admin_socket off\n", off).empty());
    EXPECT_EQ(off.admin_socket_path(), "");
    levee::Config same;
    ASSERT_TRUE(levee::parse_config("admin_socket /run/levee/leveed.sock\n", same).empty());
    ASSERT_EQ(levee::validate_config(same).size(), 1u);
    EXPECT_NE(levee::validate_config(same)[0].message.find("must not be the socket"), std::string::npos);
    const auto errors = levee::parse_config("admin_socket relative.sock\n", same);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].message, "admin_socket must be an absolute path");
}

TEST(Config, AllowedPeersMustExist) {
    levee::Config c;
    ASSERT_TRUE(levee::parse_config("allow_users root, 33\nallow_groups root 33\n", c).empty());
    EXPECT_EQ(c.allow_users, "root, 33");
    const auto errors = levee::parse_config("allow_users no-such-user-levee\nallow_groups no-such-group-levee\n", c);
    ASSERT_EQ(errors.size(), 2u);
    EXPECT_EQ(errors[0].message, "allow_users: no such user \"no-such-user-levee\" (give user names or uids)");
    EXPECT_EQ(errors[1].line, 2);
    EXPECT_EQ(c.allow_users, "root, 33") << "a bad line changes nothing";
}

TEST(Config, UnreadableFileIsOneErrorAtLineZero) {
    levee::Config c;
    const auto errors = levee::load_config_file("/nonexistent/leveed.conf", c);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].line, 0);
}

} // namespace
