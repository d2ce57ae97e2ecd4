#include "resp_command.hpp"

#include <gtest/gtest.h>

#include <hiredis/hiredis.h>

using levee::redis::resp_command;

TEST(RespCommand, WireForm) {
    EXPECT_EQ(resp_command({"GET", "k"}), "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    const char wire[] = "*3\r\n$3\r\nSET\r\n$0\r\n\r\n$5\r\na\0b\r\n\r\n";
    EXPECT_EQ(resp_command({"SET", "", std::string("a\0b\r\n", 5)}), std::string(wire, sizeof(wire) - 1));
}

TEST(RespCommand, SameBytesAsHiredis) {
    std::vector<std::string> argv = {"ZADD", "levee:presence:{b7}:180000", "GT"};
    for (int i = 0; i < 1200; i++) {  // more than 999 arguments: four-digit counts
        argv.push_back(std::to_string(1795446540247LL + i));
        argv.push_back("user-" + std::string(static_cast<std::size_t>(i % 40), 'x'));
    }
    std::vector<const char *> ptrs;
    std::vector<size_t> lens;
    for (const auto &a : argv) {
        ptrs.push_back(a.data());
        lens.push_back(a.size());
    }
    char *theirs = nullptr;
    const int n = redisFormatCommandArgv(&theirs, static_cast<int>(argv.size()), ptrs.data(), lens.data());
    ASSERT_GT(n, 0);
    const std::string ours = resp_command(argv);
    EXPECT_EQ(ours, std::string(theirs, static_cast<std::size_t>(n)));
    redisFreeCommand(theirs);
}
