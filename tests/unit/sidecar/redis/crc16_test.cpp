#include "crc16.hpp"

#include <gtest/gtest.h>

using levee::redis::crc16;
using levee::redis::key_slot;

TEST(Crc16, XmodemCheckValue) {
    // The standard CRC-16/XMODEM check value, also in Redis's crc16.c.
    EXPECT_EQ(crc16("123456789"), 0x31C3);
    EXPECT_EQ(crc16(""), 0);
}

TEST(KeySlot, KnownVectors) {
    EXPECT_EQ(key_slot("foo"), 12182);
    EXPECT_EQ(key_slot("bar"), 5061);
    EXPECT_EQ(key_slot(""), 0);
}

TEST(KeySlot, HashTagSelectsSlot) {
    EXPECT_EQ(key_slot("{user1000}.following"), key_slot("{user1000}.followers"));
    EXPECT_EQ(key_slot("{user1000}.following"), key_slot("user1000"));
    EXPECT_EQ(key_slot("x{foo}y"), key_slot("foo"));
}

TEST(KeySlot, EmptyTagHashesWholeKey) {
    EXPECT_EQ(key_slot("foo{}{bar}"), crc16("foo{}{bar}") % 16384);
    EXPECT_NE(key_slot("foo{}{bar}"), key_slot("bar"));
}

TEST(KeySlot, FirstOpenThenFirstClose) {
    EXPECT_EQ(key_slot("foo{{bar}}zap"), key_slot("{bar"));
    EXPECT_EQ(key_slot("foo{{bar}}zap"), crc16("{bar") % 16384);
    EXPECT_EQ(key_slot("foo{bar}{zap}"), key_slot("bar"));
}

TEST(KeySlot, UnclosedTagHashesWholeKey) {
    EXPECT_EQ(key_slot("foo{bar"), crc16("foo{bar") % 16384);
    EXPECT_EQ(key_slot("foo}bar{"), crc16("foo}bar{") % 16384);
}

TEST(KeySlot, BinarySafe) {
    const std::string key("a\0b", 3);
    EXPECT_EQ(key_slot(key), crc16(key) % 16384);
    EXPECT_NE(key_slot(key), key_slot("a"));
}
