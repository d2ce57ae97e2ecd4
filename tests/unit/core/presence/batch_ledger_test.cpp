#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/presence/batch_ledger.hpp"

using namespace levee::presence;

namespace {

constexpr uint64_t kNoLimit = ~0ull;

struct Region {
    std::vector<unsigned char> mem;
    Table t;
    explicit Region(size_t bytes) : mem(bytes), t(mem.data()) { EXPECT_TRUE(t.init(bytes, {1, 2})); }
};

Key key(const std::string &user) {
    return Key{reinterpret_cast<const unsigned char *>(user.data()), user.size(), nullptr, 0};
}

// A batch taken from the table as the flush timer takes it, with its storage.
struct Sent {
    std::vector<Taken> recs = std::vector<Taken>(64);
    std::vector<unsigned char> keys = std::vector<unsigned char>(4096);
    PendingBatch b{};
    Sent(Table &t, uint64_t request_id, uint32_t now, uint32_t slot = 0) {
        uint32_t ttl = 0;
        b.request_id = request_id;
        b.batch = t.next_batch(slot);
        b.n = t.take(b.batch, now, recs.data(), recs.size(), keys.data(), keys.size(), &ttl);
        b.recs = recs.data();
        b.keys = keys.data();
    }
};

} // namespace

TEST(BatchLedger, AnAcknowledgedBatchClearsItsEntries) {
    Region r(1 << 16);
    r.t.beat(key("alice"), 1000, 0, kNoLimit);
    r.t.beat(key("bob"), 1000, 0, kNoLimit);
    Sent s(r.t, 7, 1);
    ASSERT_EQ(s.b.n, 2u);

    BatchLedger ledger;
    ASSERT_TRUE(ledger.add(s.b));
    PendingBatch got{};
    ASSERT_TRUE(ledger.take(7, &got));
    EXPECT_EQ(settle_batch(r.t, got, BatchOutcome::kAcknowledged), 2u);
    EXPECT_EQ(r.t.header().count, 0u);
    EXPECT_EQ(r.t.header().c.acked, 2u);
    EXPECT_EQ(ledger.size(), 0u);
}

TEST(BatchLedger, AnAcknowledgedBatchSendsAgainWhatGotANewerBeat) {
    Region r(1 << 16);
    r.t.beat(key("alice"), 1000, 0, kNoLimit);
    r.t.beat(key("bob"), 1000, 0, kNoLimit);
    Sent s(r.t, 1, 1);
    r.t.beat(key("bob"), 2000, 0, kNoLimit);

    settle_batch(r.t, s.b, BatchOutcome::kAcknowledged);
    EXPECT_EQ(r.t.header().count, 1u);
    EXPECT_EQ(r.t.header().dirty, 1u);
    EXPECT_EQ(r.t.find(key("alice")), nullptr);
    ASSERT_NE(r.t.find(key("bob")), nullptr);
    EXPECT_EQ(r.t.find(key("bob"))->last_seen_ms, 2000);
}

TEST(BatchLedger, RefusedAndNotSentBatchesAreSentAgainWhole) {
    for (BatchOutcome o : {BatchOutcome::kRefused, BatchOutcome::kNotSent, BatchOutcome::kLinkLost}) {
        Region r(1 << 16);
        r.t.beat(key("alice"), 1000, 0, kNoLimit);
        r.t.beat(key("bob"), 1000, 0, kNoLimit);
        Sent s(r.t, 1, 1);
        EXPECT_EQ(r.t.header().dirty, 0u);

        EXPECT_EQ(settle_batch(r.t, s.b, o), 2u);
        EXPECT_EQ(r.t.header().count, 2u);
        EXPECT_EQ(r.t.header().dirty, 2u);
        EXPECT_EQ(r.t.header().c.requeued, 2u);
        EXPECT_EQ(r.t.header().c.acked, 0u);
        EXPECT_EQ(Sent(r.t, 2, 2).b.n, 2u) << "the next flush takes them";
    }
}

TEST(BatchLedger, ALostLinkSendsEveryWaitingBatchAgainAndALateAckFindsNone) {
    Region r(1 << 16);
    BatchLedger ledger;
    r.t.beat(key("alice"), 1000, 0, kNoLimit);
    Sent s1(r.t, 1, 1);
    r.t.beat(key("bob"), 1000, 0, kNoLimit);
    Sent s2(r.t, 2, 1);
    ASSERT_TRUE(ledger.add(s1.b));
    ASSERT_TRUE(ledger.add(s2.b));

    PendingBatch got{};
    size_t settled = 0;
    while (ledger.take_any(&got)) {
        settled += settle_batch(r.t, got, BatchOutcome::kLinkLost);
    }
    EXPECT_EQ(settled, 2u);
    EXPECT_EQ(ledger.size(), 0u);
    EXPECT_EQ(r.t.header().dirty, 2u);
    EXPECT_FALSE(ledger.take(1, &got)) << "an ack that comes after the link was lost settles nothing";
}

TEST(BatchLedger, ALateAckAfterATimeoutClearsNothingItNoLongerCarries) {
    Region r(1 << 16);
    r.t.beat(key("alice"), 1000, 0, kNoLimit);
    Sent first(r.t, 1, 0);
    EXPECT_EQ(r.t.sweep(20000, 20000), 1u) << "unanswered for the resend time: sent again";
    EXPECT_EQ(r.t.header().dirty, 1u);

    EXPECT_EQ(settle_batch(r.t, first.b, BatchOutcome::kAcknowledged), 0u) << "swept, not yet re-sent";
    Sent second(r.t, 2, 20001, 1);
    ASSERT_EQ(second.b.n, 1u);
    EXPECT_EQ(settle_batch(r.t, first.b, BatchOutcome::kAcknowledged), 0u) << "re-sent in another batch";
    EXPECT_EQ(settle_batch(r.t, first.b, BatchOutcome::kRefused), 0u);
    EXPECT_EQ(r.t.header().count, 1u);
    EXPECT_EQ(r.t.header().dirty, 0u);

    EXPECT_EQ(settle_batch(r.t, second.b, BatchOutcome::kAcknowledged), 1u);
    EXPECT_EQ(r.t.header().count, 0u);
}

TEST(BatchLedger, MatchesAnswersByRequestIdUpToItsCapacity) {
    BatchLedger ledger;
    for (uint64_t id = 100; id < 100 + BatchLedger::kCapacity; id++) {
        ASSERT_TRUE(ledger.add(PendingBatch{id, static_cast<uint32_t>(id), 0, nullptr, nullptr}));
    }
    EXPECT_TRUE(ledger.full());
    EXPECT_FALSE(ledger.add(PendingBatch{1, 1, 0, nullptr, nullptr}));

    PendingBatch got{};
    EXPECT_FALSE(ledger.take(99, &got));
    ASSERT_TRUE(ledger.take(105, &got));
    EXPECT_EQ(got.batch, 105u);
    EXPECT_FALSE(ledger.take(105, &got)) << "an answer settles its batch once";
    for (uint64_t id = 100; id < 100 + BatchLedger::kCapacity; id++) {
        EXPECT_EQ(ledger.take(id, &got), id != 105) << id;
    }
    EXPECT_EQ(ledger.size(), 0u);
}

TEST(BatchLedger, OnlyAnAcknowledgementFrees) {
    EXPECT_TRUE(outcome_frees(BatchOutcome::kAcknowledged));
    EXPECT_FALSE(outcome_frees(BatchOutcome::kRefused));
    EXPECT_FALSE(outcome_frees(BatchOutcome::kLinkLost));
    EXPECT_FALSE(outcome_frees(BatchOutcome::kNotSent));
}
