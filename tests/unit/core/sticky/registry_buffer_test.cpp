// The registry's per-worker buffer: one record per key (the latest choice
// wins), insertion order, bounded keys and key bytes, reuse after clear().
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/sticky/key_hash.hpp"
#include "core/sticky/registry_buffer.hpp"

namespace levee::sticky {
namespace {

using Put = RegistryBuffer::Put;

Put put(RegistryBuffer &b, const std::string &key, const std::string &server, uint32_t ttl = 1000) {
    const auto *k = reinterpret_cast<const unsigned char *>(key.data());
    return b.put(key_hash(k, key.size()), k, key.size(), reinterpret_cast<const unsigned char *>(server.data()),
                 server.size(), ttl, 42);
}

std::vector<std::pair<std::string, std::string>> records(const RegistryBuffer &b) {
    std::vector<std::pair<std::string, std::string>> out;
    b.for_each([&](const RegistryBuffer::Record &r) { out.emplace_back(r.key, r.server); });
    return out;
}

TEST(RegistryBuffer, LatestChoiceWinsOneRecordPerKey) {
    static const std::string s1 = "10.0.0.1:80", s2 = "10.0.0.2:80";
    RegistryBuffer b(16, 1024);
    EXPECT_EQ(put(b, "alice", s1), Put::kAdded);
    EXPECT_EQ(put(b, "bob", s1), Put::kAdded);
    EXPECT_EQ(put(b, "alice", s2), Put::kUpdated);
    EXPECT_EQ(b.size(), 2u);
    EXPECT_EQ(records(b), (std::vector<std::pair<std::string, std::string>>{{"alice", s2}, {"bob", s1}}));
}

TEST(RegistryBuffer, FullDropsNewKeysButUpdatesKnownOnes) {
    static const std::string s = "s:1";
    RegistryBuffer b(3, 1024);
    for (const char *k : {"a", "b", "c"}) {
        EXPECT_EQ(put(b, k, s), Put::kAdded);
    }
    EXPECT_EQ(put(b, "d", s), Put::kFull);
    EXPECT_EQ(put(b, "a", s), Put::kUpdated);
    EXPECT_EQ(b.dropped(), 1u);

    RegistryBuffer small(100, 8);
    EXPECT_EQ(put(small, "12345", s), Put::kAdded);
    EXPECT_EQ(put(small, "6789", s), Put::kFull); // 9 bytes of keys > 8
    EXPECT_EQ(put(small, "678", s), Put::kAdded);
}

TEST(RegistryBuffer, ClearMakesRoomAgain) {
    static const std::string s = "s:1";
    RegistryBuffer b(1000, 64 * 1024);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 1000; i++) {
            ASSERT_EQ(put(b, "user" + std::to_string(i), s), Put::kAdded);
        }
        EXPECT_EQ(put(b, "one more", s), Put::kFull);
        EXPECT_EQ(b.size(), 1000u);
        b.clear();
        EXPECT_TRUE(b.empty());
    }
}

TEST(RegistryBuffer, SameHashDifferentKeysAreDistinct) {
    static const std::string s = "s:1";
    RegistryBuffer b(16, 1024);
    const auto *x = reinterpret_cast<const unsigned char *>("x");
    const auto *y = reinterpret_cast<const unsigned char *>("y");
    const auto *srv = reinterpret_cast<const unsigned char *>(s.data());
    EXPECT_EQ(b.put(7, x, 1, srv, s.size(), 1, 0), Put::kAdded);
    EXPECT_EQ(b.put(7, y, 1, srv, s.size(), 1, 0), Put::kAdded);
    EXPECT_EQ(b.size(), 2u);
}

} // namespace
} // namespace levee::sticky
