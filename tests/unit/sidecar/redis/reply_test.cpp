#include "reply.hpp"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <string>

using levee::redis::Reply;

namespace {

enum class Read { Reply, Incomplete, Refused };

// Feeds `wire` to `reader` and copies the first reply out. Frees the reader.
Read read_one(redisReader *reader, const std::string &wire, Reply &out) {
    void *raw = nullptr;
    Read result = Read::Refused;
    if (redisReaderFeed(reader, wire.data(), wire.size()) == REDIS_OK &&
        redisReaderGetReply(reader, &raw) == REDIS_OK) {
        result = raw != nullptr ? Read::Reply : Read::Incomplete;
    }
    if (raw != nullptr) {
        out = Reply::from_hiredis(*static_cast<redisReply *>(raw));
        freeReplyObject(raw);
    }
    redisReaderFree(reader);
    return result;
}

} // namespace

TEST(Reply, ErrorIsMatchesWholeCode) {
    const Reply moved = Reply::error("MOVED 3999 127.0.0.1:6381");
    EXPECT_TRUE(moved.error_is("MOVED"));
    EXPECT_FALSE(moved.error_is("MOVE"));
    EXPECT_FALSE(Reply::error("ASKING is fine").error_is("ASK"));
    EXPECT_TRUE(Reply::error("ASK 1 h:1").error_is("ASK"));
    EXPECT_TRUE(Reply::error("TRYAGAIN").error_is("TRYAGAIN"));
    EXPECT_FALSE(Reply::status("MOVED 1 h:1").error_is("MOVED"));
}

TEST(Reply, CopiesHiredisReplyDeeply) {
    // Build a reply the way hiredis's reader does, then copy and free it.
    Reply r;
    ASSERT_EQ(read_one(redisReaderCreate(), "*3\r\n$3\r\nfoo\r\n:42\r\n*2\r\n+OK\r\n$-1\r\n", r), Read::Reply);

    ASSERT_EQ(r.type, Reply::Type::Array);
    ASSERT_EQ(r.elements.size(), 3u);
    EXPECT_EQ(r.elements[0].type, Reply::Type::String);
    EXPECT_EQ(r.elements[0].str, "foo");
    EXPECT_EQ(r.elements[1].type, Reply::Type::Integer);
    EXPECT_EQ(r.elements[1].integer, 42);
    ASSERT_EQ(r.elements[2].elements.size(), 2u);
    EXPECT_EQ(r.elements[2].elements[0].type, Reply::Type::Status);
    EXPECT_EQ(r.elements[2].elements[0].str, "OK");
    EXPECT_EQ(r.elements[2].elements[1].type, Reply::Type::Nil);
}

// hiredis allocates an array when it reads the header: the header alone
// must not make leveed ask for gigabytes.
TEST(Reply, TheReaderRefusesAnArrayHeaderAboveTheBound) {
    const std::string over = "*" + std::to_string(levee::redis::kMaxReplyElements + 1) + "\r\n";
    for (const std::string &wire : {std::string("*2147483647\r\n"), over, std::string("*1\r\n*-2\r\n")}) {
        Reply r;
        EXPECT_EQ(read_one(levee::redis::new_reply_reader(), wire, r), Read::Refused) << wire;
    }
    Reply r;
    ASSERT_EQ(read_one(levee::redis::new_reply_reader(), "*2\r\n:1\r\n*-1\r\n", r), Read::Reply);
    ASSERT_EQ(r.elements.size(), 2u);
    EXPECT_EQ(r.elements[1].type, Reply::Type::Nil);
}
