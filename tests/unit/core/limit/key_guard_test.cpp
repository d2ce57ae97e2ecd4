#include <string>

#include <gtest/gtest.h>

#include "core/limit/key_guard.hpp"

using namespace levee::limit;

namespace {

struct Shaped {
    KeyShape shape;
    std::string key; // what the zone keeps
};

Shaped shape(const std::string &k, size_t max_key, LongKey mode = LongKey::kHash) {
    unsigned char d[kDigestKeyLen];
    auto u = reinterpret_cast<const unsigned char *>(k.data());
    KeyShape s = shape_key(u, k.size(), max_key, mode, d);
    return {s, s == KeyShape::kDigest ? std::string(reinterpret_cast<char *>(d), sizeof(d)) : k};
}

} // namespace

TEST(KeyGuard, ShortKeysAreKeptAsTheyAre) {
    EXPECT_EQ(shape("alice", 8).shape, KeyShape::kAsIs);
    EXPECT_EQ(shape("12345678", 8).shape, KeyShape::kAsIs);
    // binary and control bytes are bytes like any other
    EXPECT_EQ(shape(std::string("a\0\n\xff", 4), 8).shape, KeyShape::kAsIs);
}

TEST(KeyGuard, ALongKeyIsItsDigestTheSameEverywhere) {
    const std::string base(300, 'x');
    Shaped a = shape(base + "a", 256), a2 = shape(base + "a", 256), b = shape(base + "b", 256);
    ASSERT_EQ(a.shape, KeyShape::kDigest);
    EXPECT_EQ(a.key.size(), kDigestKeyLen);
    EXPECT_EQ(a.key.rfind(kDigestPrefix, 0), 0u);
    // unseeded: every nginx (and every worker) names the key alike in Redis
    EXPECT_EQ(a.key, a2.key);
    // keys alike up to far past max_key are still different keys
    EXPECT_NE(a.key, b.key);
    // sha256("~levee:x"), from Python's hashlib: the digest is SHA-256 itself
    EXPECT_EQ(shape("~levee:x", 256).key,
              "~levee:sha256:a6ffabe4c954c259422449a00ec048415ee8a9c2f62f2a4cffcb8fe28959a935");
}

TEST(KeyGuard, RefuseModeRefusesOnlyLongKeys) {
    EXPECT_EQ(shape(std::string(9, 'k'), 8, LongKey::kRefuse).shape, KeyShape::kRefused);
    EXPECT_EQ(shape(std::string(8, 'k'), 8, LongKey::kRefuse).shape, KeyShape::kAsIs);
}

// No client key equals a digest or the overflow key: keys in Levee's own
// namespace are hashed whatever their length, in either mode.
TEST(KeyGuard, NoClientKeyTakesLeveesOwnNames) {
    Shaped overflow = shape(std::string(kOverflowKey), 256, LongKey::kRefuse);
    EXPECT_EQ(overflow.shape, KeyShape::kDigest);
    EXPECT_NE(overflow.key, kOverflowKey);

    Shaped digest = shape(std::string(300, 'x'), 256);
    Shaped replay = shape(digest.key, 256);
    EXPECT_EQ(replay.shape, KeyShape::kDigest);
    EXPECT_NE(replay.key, digest.key);
}

TEST(KeyGuard, TheNewKeyBudgetAdmitsOneWindowAtOnceThenTheRate) {
    GcraParams budget = new_key_budget(Rate{10, 60}); // 10 new keys a minute
    int64_t tat = 0, now = 1'000'000'000;
    int admitted = 0;
    for (int i = 0; i < 1000; i++) {
        admitted += take_new_key(budget, tat, now);
    }
    EXPECT_EQ(admitted, 10);
    EXPECT_FALSE(take_new_key(budget, tat, now + 5'999'999));
    EXPECT_TRUE(take_new_key(budget, tat, now + 6'000'000)); // one every 6 s
    EXPECT_FALSE(take_new_key(budget, tat, now + 6'000'000));
}
