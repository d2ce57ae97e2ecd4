#include "host_port.hpp"

#include <gtest/gtest.h>

using levee::redis::HostPort;
using levee::redis::parse_host_port;
using levee::redis::parse_host_ports;

TEST(HostPort, ParsesList) {
    std::vector<HostPort> out;
    std::string error;
    ASSERT_TRUE(parse_host_ports("127.0.0.1:7000, redis-a:7001,[::1]:7002", out, error)) << error;
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(out[0].host, "127.0.0.1");
    EXPECT_EQ(out[0].port, 7000);
    EXPECT_EQ(out[1].host, "redis-a");
    EXPECT_EQ(out[1].port, 7001);
    EXPECT_EQ(out[2].host, "::1");
    EXPECT_EQ(out[2].str(), "[::1]:7002");
    EXPECT_EQ(out[0].str(), "127.0.0.1:7000");
}

TEST(HostPort, SingleEntry) {
    std::vector<HostPort> out;
    std::string error;
    ASSERT_TRUE(parse_host_ports("localhost:6379", out, error));
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], (HostPort{"localhost", 6379}));
}

TEST(HostPort, RejectsBadInput) {
    const char *bad[] = {"",           "localhost",  "localhost:", ":6379",      "h:0",   "h:65536",
                         "h:12x",      "h:7000,",    ",h:7000",    "h:7000,,h:1", "::1:80", "h:123456"};
    for (const char *text : bad) {
        std::vector<HostPort> out{{"keep", 1}};
        std::string error;
        EXPECT_FALSE(parse_host_ports(text, out, error)) << text;
        EXPECT_FALSE(error.empty()) << text;
        ASSERT_EQ(out.size(), 1u) << "output must be untouched on error: " << text;
        EXPECT_EQ(out[0].host, "keep");
    }
}

TEST(HostPort, PortBounds) {
    HostPort hp;
    std::string error;
    EXPECT_TRUE(parse_host_port("h:1", hp, error));
    EXPECT_TRUE(parse_host_port("h:65535", hp, error));
    EXPECT_EQ(hp.port, 65535);
}
