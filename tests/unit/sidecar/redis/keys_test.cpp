#include "keys.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "crc16.hpp"

namespace keys = levee::redis::keys;
using levee::redis::crc16;
using levee::redis::key_slot;

namespace {

// The exact names on the wire: applications and the e2e harness read them.
TEST(RedisKeys, ExactForms) {
    EXPECT_EQ(keys::limit_bucket("per_ip", "1.2.3.4", 100000, 11), "levee:limit:{per_ip:1.2.3.4}:100000:11");
    EXPECT_EQ(keys::presence_bucket(7, 180000), "levee:presence:{b7}:180000");
    EXPECT_EQ(keys::kPresenceTtlsKey, "levee:presence:ttls");
    EXPECT_EQ(keys::room("lobby"), "levee:presence:room:{lobby}");
    EXPECT_EQ(keys::registry("alice"), "levee:registry:{alice}");
    EXPECT_EQ(keys::probe("probe-1"), "levee:probe:{probe-1}");
}

TEST(RedisKeys, EveryKeyIsUnderItsFeatureWord) {
    for (const std::string &k : {keys::limit_bucket("z", "k", 1, 1), keys::presence_bucket(0, 1),
                                 std::string(keys::kPresenceTtlsKey), keys::room("r"), keys::registry("s"),
                                 keys::probe("p")}) {
        const auto feature_end = k.find(':', 6);
        ASSERT_EQ(k.rfind("levee:", 0), 0u) << k;
        ASSERT_NE(feature_end, std::string::npos) << k;
        const std::string feature = k.substr(6, feature_end - 6);
        EXPECT_TRUE(feature == "limit" || feature == "presence" || feature == "registry" || feature == "probe") << k;
    }
}

// One key's buckets at two rates (a rolling reload) sit on one slot, and
// the rate stays out of the tag.
TEST(RedisKeys, LimitBucketsOfOneKeyShareASlotWhateverTheRate) {
    const auto slot = key_slot(keys::limit_bucket("per_ip", "1.2.3.4", 100000, 11));
    EXPECT_EQ(key_slot(keys::limit_bucket("per_ip", "1.2.3.4", 50000, 21)), slot);
    EXPECT_EQ(slot, crc16("per_ip:1.2.3.4") % levee::redis::kSlotCount);
    EXPECT_NE(keys::limit_bucket("per_ip", "1.2.3.4", 100000, 11), keys::limit_bucket("per_ip", "1.2.3.4", 50000, 11));
}

// One ZADD per bucket carries all of a batch's users of that bucket, and a
// query reads every ttl's key of one bucket: they must share one slot.
TEST(RedisKeys, PresenceKeysOfOneBucketShareASlotAcrossTtls) {
    for (std::uint16_t b = 0; b < 64; b++) {
        EXPECT_EQ(key_slot(keys::presence_bucket(b, 60000)), key_slot(keys::presence_bucket(b, 180000))) << b;
        EXPECT_EQ(key_slot(keys::presence_bucket(b, 60000)), crc16("b" + std::to_string(b)) % levee::redis::kSlotCount);
    }
}

// Buckets exist to spread presence over the cluster: 64 of them must not
// collapse onto a few slots.
TEST(RedisKeys, PresenceBucketsSpreadOverSlots) {
    std::set<std::uint16_t> slots;
    for (std::uint16_t b = 0; b < 64; b++) {
        slots.insert(key_slot(keys::presence_bucket(b, 180000)));
    }
    EXPECT_EQ(slots.size(), 64u);
}

// Applications compute these slots from their own id alone.
TEST(RedisKeys, RoomRegistryAndProbeSlotsFollowTheIdAlone) {
    for (const char *id : {"alice", "lobby", "probe-0", "42"}) {
        EXPECT_EQ(key_slot(keys::room(id)), key_slot(id)) << id;
        EXPECT_EQ(key_slot(keys::registry(id)), key_slot(id)) << id;
        EXPECT_EQ(key_slot(keys::probe(id)), key_slot(id)) << id;
    }
}

} // namespace
