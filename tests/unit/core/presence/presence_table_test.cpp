#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/presence/presence_table.hpp"

using namespace levee::presence;

namespace {

struct Region {
    std::vector<unsigned char> mem;
    Table t;
    explicit Region(size_t bytes) : mem(bytes), t(mem.data()) { EXPECT_TRUE(t.init(bytes, {1, 2})); }
};

Key key(const std::string &user, const std::string &room = "") {
    return Key{reinterpret_cast<const unsigned char *>(user.data()), user.size(),
               reinterpret_cast<const unsigned char *>(room.data()), room.size()};
}

struct Batch {
    uint32_t id = 0;
    std::vector<Taken> recs = std::vector<Taken>(1024);
    std::vector<unsigned char> buf = std::vector<unsigned char>(1 << 16);
    size_t n = 0;
    uint32_t ttl = 0;
    std::string user(size_t i) const {
        return std::string(reinterpret_cast<const char *>(buf.data()) + recs[i].off, recs[i].ulen);
    }
};

Batch take(Table &t, uint32_t now, size_t max = 1024, uint32_t slot = 0) {
    Batch b;
    b.id = t.next_batch(slot);
    b.n = t.take(b.id, now, b.recs.data(), max, b.buf.data(), b.buf.size(), &b.ttl);
    return b;
}

bool settle(Table &t, const Batch &b, bool ok) { return t.settle(b.id, b.recs.data(), b.n, b.buf.data(), ok) > 0; }

constexpr uint64_t kNoLimit = ~0ull;

} // namespace

TEST(PresenceTable, ChecksKeys) {
    auto u = [](const char *s) { return reinterpret_cast<const unsigned char *>(s); };
    EXPECT_STREQ(check_key(u(""), 0, 255, false), "empty key");
    EXPECT_EQ(check_key(u(""), 0, 255, true), nullptr);
    EXPECT_STREQ(check_key(u("aaaa"), 4, 3, false), "key too long");
    EXPECT_STREQ(check_key(u("a b"), 3, 255, false), "invalid character in key");
    EXPECT_STREQ(check_key(u("a\"b"), 3, 255, false), "invalid character in key");
    EXPECT_STREQ(check_key(u("a,b"), 3, 255, false), "invalid character in key");
    EXPECT_EQ(check_key(u("user-42:x_Y.z"), 13, 255, false), nullptr);
}

TEST(PresenceTable, EntryIs32BytesPlusKeyRoundedTo16) {
    EXPECT_EQ(sizeof(Entry), 32u);
    EXPECT_EQ(Table::chunk_size(8, 0), 48u);
    EXPECT_EQ(Table::chunk_size(16, 0), 48u);
    EXPECT_EQ(Table::chunk_size(17, 0), 64u);
    for (size_t k = 1; k <= 255; k++) {
        EXPECT_LE(Table::chunk_size(k, 0), 64 + k) << k;
    }
}

TEST(PresenceTable, CoalescesPerUserAndRoomUntilAcked) {
    Region r(1 << 16);
    Table &t = r.t;
    const uint8_t ttl = static_cast<uint8_t>(t.ttl_index(180000));
    EXPECT_EQ(t.beat(key("alice"), 1000, ttl, kNoLimit), BeatResult::kStored);
    EXPECT_EQ(t.beat(key("alice"), 1005, ttl, kNoLimit), BeatResult::kCoalesced);
    EXPECT_EQ(t.beat(key("alice", "lobby"), 1006, ttl, kNoLimit), BeatResult::kStored);
    EXPECT_EQ(t.header().count, 2u);

    Batch b = take(t, 1);
    ASSERT_EQ(b.n, 2u);
    EXPECT_EQ(b.ttl, 180000u);
    EXPECT_EQ(b.user(0), "alice");
    EXPECT_EQ(b.recs[0].last_seen_ms, 1005);
    EXPECT_EQ(b.recs[1].rlen, 5);
    EXPECT_EQ(take(t, 2).n, 0u) << "in flight is not taken twice";

    EXPECT_TRUE(settle(t, b, true));
    EXPECT_EQ(t.header().count, 0u);
    EXPECT_EQ(t.header().bytes, 0u);
    EXPECT_EQ(t.header().c.acked, 2u);
}

TEST(PresenceTable, ABeatWhileInFlightIsSentAgainAfterTheAck) {
    Region r(1 << 16);
    Table &t = r.t;
    t.beat(key("bob"), 1000, 0, kNoLimit);
    Batch b = take(t, 1);
    EXPECT_EQ(t.beat(key("bob"), 2000, 0, kNoLimit), BeatResult::kCoalesced);
    settle(t, b, true);
    ASSERT_EQ(t.header().count, 1u);
    Batch b2 = take(t, 2);
    ASSERT_EQ(b2.n, 1u);
    EXPECT_EQ(b2.recs[0].last_seen_ms, 2000);
    settle(t, b2, true);
    EXPECT_EQ(t.header().count, 0u);
}

TEST(PresenceTable, RefusedBatchLostLinkAndTimeoutSendAgain) {
    Region r(1 << 16);
    Table &t = r.t;
    t.beat(key("a"), 1, 0, kNoLimit);
    t.beat(key("b"), 1, 0, kNoLimit);
    Batch b = take(t, 100, 1, 3);
    ASSERT_EQ(b.n, 1u);
    settle(t, b, false);
    EXPECT_EQ(t.header().dirty, 2u);

    Batch c = take(t, 100, 8, 3);
    ASSERT_EQ(c.n, 2u);
    EXPECT_EQ(t.requeue_slot(4), 0u);
    EXPECT_EQ(t.requeue_slot(3), 2u) << "a new worker in slot 3 resends its predecessor's batches";

    Batch d = take(t, 100, 8, 1);
    EXPECT_EQ(t.sweep(1099, 1000), 0u);
    EXPECT_EQ(t.sweep(1100, 1000), 2u);
    settle(t, d, true); // the late ack of a swept batch changes nothing
    EXPECT_EQ(t.header().count, 2u);
    Batch e = take(t, 1200, 8, 2);
    settle(t, e, true);
    EXPECT_EQ(t.header().count, 0u);
}

TEST(PresenceTable, OneWorkersAckDoesNotFreeAnotherWorkersBatch) {
    Region r(1 << 16);
    Table &t = r.t;
    t.beat(key("a"), 1, 0, kNoLimit);
    Batch w0 = take(t, 10, 8, 0);
    t.sweep(5000, 1000);                 // w0 died: its entry is dirty again
    Batch w1 = take(t, 5000, 8, 1);      // taken by worker 1
    ASSERT_EQ(w1.n, 1u);
    EXPECT_FALSE(settle(t, w0, true));   // a stale ack of worker 0
    EXPECT_EQ(t.header().count, 1u);
    EXPECT_TRUE(settle(t, w1, true));
    EXPECT_EQ(t.header().count, 0u);
}

TEST(PresenceTable, GroupsBatchesByTtl) {
    Region r(1 << 16);
    Table &t = r.t;
    const uint8_t a = static_cast<uint8_t>(t.ttl_index(1000));
    const uint8_t b = static_cast<uint8_t>(t.ttl_index(2000));
    EXPECT_EQ(t.ttl_index(1000), a);
    t.beat(key("x"), 1, a, kNoLimit);
    t.beat(key("y"), 1, b, kNoLimit);
    t.beat(key("z"), 1, a, kNoLimit);
    Batch one = take(t, 1);
    EXPECT_EQ(one.n, 2u);
    EXPECT_EQ(one.ttl, 1000u);
    Batch two = take(t, 1);
    EXPECT_EQ(two.n, 1u);
    EXPECT_EQ(two.ttl, 2000u);
}

TEST(PresenceTable, RefusesNewUsersWhenFullOrAtTheBacklogBound) {
    Region r(8192);
    Table &t = r.t;
    size_t stored = 0;
    BeatResult last = BeatResult::kStored;
    for (int i = 0; i < 10000; i++) {
        last = t.beat(key("user-" + std::to_string(i)), 1, 0, kNoLimit);
        if (last != BeatResult::kStored) {
            break;
        }
        stored++;
    }
    EXPECT_EQ(last, BeatResult::kFull);
    EXPECT_EQ(t.header().count, stored);
    EXPECT_EQ(t.beat(key("user-0"), 2, 0, kNoLimit), BeatResult::kCoalesced) << "a known user is still served";
    EXPECT_EQ(t.header().c.full, 1u);

    Region q(1 << 16);
    q.t.beat(key("a"), 1, 0, 1);
    EXPECT_EQ(q.t.beat(key("b"), 1, 0, 1), BeatResult::kBacklog);

    // Freed chunks are reused.
    Batch b = take(t, 1, 1024);
    settle(t, b, true);
    EXPECT_EQ(t.header().count, 0u);
    EXPECT_EQ(t.beat(key("user-x"), 1, 0, kNoLimit), BeatResult::kStored);
}

TEST(PresenceTable, ManyUsersAllSurviveRandomFailures) {
    Region r(4 << 20);
    Table &t = r.t;
    std::vector<int64_t> last(5000, 0);
    uint32_t seed = 7;
    auto rnd = [&seed] { return seed = seed * 1103515245u + 12345u, (seed >> 8) & 0xffffff; };
    std::vector<int64_t> acked(5000, 0);
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 200; i++) {
            const int u = rnd() % 5000;
            const int64_t seen = round * 10 + 1 + (rnd() % 5);
            last[u] = std::max(last[u], seen);
            t.beat(key("u" + std::to_string(u)), seen, 0, kNoLimit);
        }
        Batch b = take(t, round * 10, 300, rnd() % 4);
        const bool ok = rnd() % 3 != 0;
        if (ok) {
            for (size_t i = 0; i < b.n; i++) {
                const int u = std::stoi(b.user(i).substr(1));
                acked[u] = std::max(acked[u], b.recs[i].last_seen_ms);
            }
        }
        if (rnd() % 5 != 0) {
            settle(t, b, ok);
        }
        t.sweep(round * 10, 30);
    }
    for (int i = 0; i < 100 && t.header().count > 0; i++) {
        t.sweep(1000000, 1);
        Batch b = take(t, 1000000, 1024);
        for (size_t j = 0; j < b.n; j++) {
            const int u = std::stoi(b.user(j).substr(1));
            acked[u] = std::max(acked[u], b.recs[j].last_seen_ms);
        }
        settle(t, b, true);
    }
    EXPECT_EQ(t.header().count, 0u);
    EXPECT_EQ(acked, last) << "every user's latest beat was acknowledged";
}

TEST(PresenceTable, AdoptCopiesWaitingAndInFlightAndRetiresTheOldTable) {
    Region old_r(1 << 16), new_r(1 << 17);
    Table &o = old_r.t, &n = new_r.t;
    const uint8_t ttl60 = static_cast<uint8_t>(o.ttl_index(60000));
    const uint8_t ttl180 = static_cast<uint8_t>(o.ttl_index(180000));
    o.beat(key("inflight", "lobby"), 1000, ttl180, kNoLimit);
    Batch b = take(o, 1);
    ASSERT_EQ(b.n, 1u);
    o.beat(key("waiting"), 2000, ttl60, kNoLimit);
    n.ttl_index(180000); // the new zone's ttls come in another order

    EXPECT_EQ(n.adopt(o), 0u);
    EXPECT_EQ(n.header().count, 2u);
    EXPECT_EQ(n.header().c.beats, 0u) << "adopted entries are not beats of this table";
    EXPECT_EQ(o.beat(key("late"), 3000, ttl60, kNoLimit), BeatResult::kRetired);
    EXPECT_EQ(o.header().count, 2u);

    Batch all = take(n, 5);
    Batch rest = take(n, 6);
    ASSERT_EQ(all.n + rest.n, 2u);
    EXPECT_EQ(all.ttl == 60000 ? all.user(0) : rest.user(0), "waiting");
    EXPECT_EQ(all.ttl == 180000 ? all.recs[0].last_seen_ms : rest.recs[0].last_seen_ms, 1000);
}

TEST(PresenceTable, AdoptCountsWhatDoesNotFit) {
    Region old_r(1 << 16), new_r(8192);
    Table &o = old_r.t, &n = new_r.t;
    for (int i = 0; i < 500; i++) {
        o.beat(key("user" + std::to_string(i)), i, 0, kNoLimit);
    }
    const size_t lost = n.adopt(o);
    EXPECT_GT(lost, 0u);
    EXPECT_EQ(n.header().count + lost, 500u);
}

namespace {

// The hash of (user, room) before the table was seeded.
uint32_t old_fnv1a(const std::string &user, const std::string &room) {
    uint32_t h = 2166136261u;
    const std::string bytes = user + '\xff' + room;
    for (unsigned char c : bytes) {
        h ^= c;
        h *= 16777619u;
    }
    return h;
}

size_t longest_chain(const Region &r) {
    const Header &h = r.t.header();
    const auto *buckets = reinterpret_cast<const uint32_t *>(r.mem.data() + h.buckets);
    size_t longest = 0;
    for (uint32_t b = 0; b <= h.bucket_mask; b++) {
        size_t n = 0;
        for (uint32_t off = buckets[b]; off != 0; off = reinterpret_cast<const Entry *>(r.mem.data() + off)->hnext) {
            n++;
        }
        longest = std::max(longest, n);
    }
    return longest;
}

} // namespace

// Users crafted offline to share one chain under the unseeded FNV-1a (every
// beat walks it under the zone's lock) spread under the seeded hash.
TEST(PresenceTable, AFloodCraftedAgainstFnvSpreadsUnderTheSeededHash) {
    Region r(256 << 10);
    const uint32_t mask = r.t.header().bucket_mask;
    ASSERT_EQ(mask + 1, 2048u);
    const int ttl = r.t.ttl_index(30000);
    size_t stored = 0;
    for (uint64_t i = 0; stored < 4096; i++) {
        const std::string user = "u" + std::to_string(i);
        if ((old_fnv1a(user, "lobby") & mask) == 0) {
            ASSERT_EQ(r.t.beat(key(user, "lobby"), 1, static_cast<uint8_t>(ttl), UINT64_MAX), BeatResult::kStored);
            stored++;
        }
    }
    // 2 a bucket on average: the old hash made one chain of 4096.
    const size_t longest = longest_chain(r);
    EXPECT_LE(longest, 12u);
    RecordProperty("longest_chain", static_cast<int>(longest));
}
