#include <cstdint>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "core/hash/keyed_hash.hpp"

using namespace levee::hash;

namespace {

// The key of the paper's test vectors: bytes 00..0f.
const Seed kPaperKey = {0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};

template <int C, int D> uint64_t sip(const Seed &s, const unsigned char *p, size_t n) {
    SipHasher<C, D> h(s);
    h.update(p, n);
    return h.finish();
}

} // namespace

// The rounds are right: SipHash-2-4 gives the paper's values (appendix A and
// the first vectors of the reference implementation); 1-3 differs only in
// how many times the same round runs.
TEST(KeyedHash, SipHash24MatchesThePaper) {
    unsigned char msg[15];
    for (unsigned i = 0; i < sizeof(msg); i++) {
        msg[i] = static_cast<unsigned char>(i);
    }
    EXPECT_EQ((sip<2, 4>(kPaperKey, msg, 0)), 0x726fdb47dd0e0e31ull);
    EXPECT_EQ((sip<2, 4>(kPaperKey, msg, 1)), 0x74f839c593dc67fdull);
    EXPECT_EQ((sip<2, 4>(kPaperKey, msg, 15)), 0xa129ca6149be45e5ull);
}

TEST(KeyedHash, PartsHashLikeTheWhole) {
    const std::string s = "a key longer than two sixty-four bit words";
    const auto *p = reinterpret_cast<const unsigned char *>(s.data());
    for (size_t cut = 0; cut <= s.size(); cut++) {
        SipHasher13 h(kPaperKey);
        h.update(p, cut);
        h.update(p + cut, s.size() - cut);
        EXPECT_EQ(h.finish(), siphash13(kPaperKey, p, s.size())) << cut;
    }
}

TEST(KeyedHash, TheSeedChangesEveryHash) {
    const Seed other = {kPaperKey.k0 ^ 1, kPaperKey.k1};
    int same = 0;
    for (int i = 0; i < 1000; i++) {
        const std::string k = "user" + std::to_string(i);
        const auto *p = reinterpret_cast<const unsigned char *>(k.data());
        same += siphash13(kPaperKey, p, k.size()) == siphash13(other, p, k.size());
    }
    EXPECT_EQ(same, 0);
}

TEST(KeyedHash, RandomSeedsDiffer) {
    std::set<std::pair<uint64_t, uint64_t>> seen;
    for (int i = 0; i < 8; i++) {
        Seed s{};
        ASSERT_TRUE(random_seed(&s));
        seen.insert({s.k0, s.k1});
    }
    EXPECT_EQ(seen.size(), 8u);
}
