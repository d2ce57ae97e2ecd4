// When a worker's registry buffer goes to leveed and what is lost: the early
// flush of a half-full buffer, the step a flush tick takes, the batches (one
// TTL each, bounded in size, stale records and failed batches counted), and
// what the error log is told.
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "core/sticky/key_hash.hpp"
#include "core/sticky/registry_flush.hpp"
#include "core/sticky/registry_report.hpp"

namespace levee::sticky {
namespace {

using Put = RegistryBuffer::Put;

const std::string kServer = "10.0.0.1:80";

Put put(RegistryBuffer &b, const std::string &key, uint32_t ttl = 1000, int64_t now = 0) {
    const auto *k = reinterpret_cast<const unsigned char *>(key.data());
    return b.put(key_hash(k, key.size()), k, key.size(), reinterpret_cast<const unsigned char *>(kServer.data()),
                 kServer.size(), ttl, now);
}

struct Batch {
    uint32_t ttl;
    std::vector<std::string> keys;
    bool operator==(const Batch &o) const { return ttl == o.ttl && keys == o.keys; }
};

// Every batch offered to leveed; the ones whose index is in `refuse` fail.
struct Sender {
    std::vector<Batch> batches;
    std::vector<size_t> refuse;

    FlushTally flush(const RegistryBuffer &b, int64_t now, size_t batch_max) {
        std::vector<RegistryBuffer::Record> scratch(batch_max);
        return flush_batches(b, now, scratch.data(), batch_max,
                             [&](uint32_t ttl, const RegistryBuffer::Record *r, size_t n) {
                                 Batch batch{ttl, {}};
                                 for (size_t i = 0; i < n; i++) {
                                     batch.keys.emplace_back(r[i].key);
                                 }
                                 batches.push_back(batch);
                                 for (size_t k : refuse) {
                                     if (k == batches.size() - 1) {
                                         return false;
                                     }
                                 }
                                 return true;
                             });
    }
};

TEST(FlushSchedule, HalfFullBufferFlushesEarlyOncePerInterval) {
    FlushSchedule s;
    EXPECT_FALSE(s.flush_now(Put::kAdded, 3, 8));
    EXPECT_TRUE(s.flush_now(Put::kAdded, 4, 8));
    // the timer is already cut short: not again before it fires
    EXPECT_FALSE(s.flush_now(Put::kAdded, 5, 8));
    s.fired();
    EXPECT_TRUE(s.flush_now(Put::kAdded, 5, 8));
}

TEST(FlushSchedule, OnlyANewKeyCutsTheIntervalShort) {
    FlushSchedule s;
    EXPECT_FALSE(s.flush_now(Put::kUpdated, 6, 8));
    EXPECT_FALSE(s.flush_now(Put::kFull, 8, 8));
    EXPECT_TRUE(s.flush_now(Put::kAdded, 6, 8));
}

TEST(FlushStep, SendsWhenLeveedIsThereHoldsOrDiscardsWhenAway) {
    EXPECT_EQ(flush_step(0, 8, true), FlushStep::kNothing);
    EXPECT_EQ(flush_step(0, 8, false), FlushStep::kNothing);
    EXPECT_EQ(flush_step(3, 8, true), FlushStep::kSend);
    EXPECT_EQ(flush_step(8, 8, true), FlushStep::kSend);
    EXPECT_EQ(flush_step(7, 8, false), FlushStep::kHold);
    EXPECT_EQ(flush_step(8, 8, false), FlushStep::kDiscard);
}

TEST(FlushBatches, OneTtlPerBatchInFirstSeenOrderAndBoundedSize) {
    RegistryBuffer b(64, 4096);
    put(b, "a", 1000);
    put(b, "b", 2000);
    put(b, "c", 1000);
    put(b, "d", 1000);
    put(b, "e", 2000);
    Sender s;
    FlushTally t = s.flush(b, 10, 2);
    EXPECT_EQ(t.sent, 5u);
    EXPECT_EQ(t.dropped, 0u);
    EXPECT_EQ(s.batches, (std::vector<Batch>{{1000, {"a", "c"}}, {1000, {"d"}}, {2000, {"b", "e"}}}));
    EXPECT_EQ(b.size(), 5u); // clearing is the caller's
}

TEST(FlushBatches, EmptyBufferSendsNothing) {
    RegistryBuffer b(8, 64);
    Sender s;
    FlushTally t = s.flush(b, 0, 4);
    EXPECT_EQ(t.sent + t.dropped, 0u);
    EXPECT_TRUE(s.batches.empty());
}

TEST(FlushBatches, AFailedBatchIsCountedAndNotResent) {
    RegistryBuffer b(64, 4096);
    for (const char *k : {"a", "b", "c", "d", "e"}) {
        put(b, k);
    }
    Sender s;
    s.refuse = {1};
    FlushTally t = s.flush(b, 0, 2);
    EXPECT_EQ(t.sent, 3u);
    EXPECT_EQ(t.dropped, 2u);
    EXPECT_EQ(s.batches, (std::vector<Batch>{{1000, {"a", "b"}}, {1000, {"c", "d"}}, {1000, {"e"}}}));
}

TEST(FlushBatches, RecordsHeldLongerThanTheirTtlAreDropped) {
    RegistryBuffer b(64, 4096);
    put(b, "old", 1000, 0);
    put(b, "young", 1000, 500);
    Sender s;
    FlushTally t = s.flush(b, 1000, 8); // "old" is exactly 1000 ms old: stale
    EXPECT_EQ(t.sent, 1u);
    EXPECT_EQ(t.dropped, 1u);
    EXPECT_EQ(s.batches, (std::vector<Batch>{{1000, {"young"}}}));
}

TEST(FlushBatches, RecordsOfTtlsBeyondTheLimitAreCountedNotSent) {
    RegistryBuffer b(64, 4096);
    for (uint32_t i = 0; i < kFlushMaxTtls + 2; i++) {
        put(b, "k" + std::to_string(i), 1000 + i);
    }
    put(b, "again", 1000 + kFlushMaxTtls); // a TTL over the limit, seen twice
    Sender s;
    FlushTally t = s.flush(b, 0, 8);
    EXPECT_EQ(t.sent, kFlushMaxTtls);
    EXPECT_EQ(t.dropped, 3u);
    ASSERT_EQ(s.batches.size(), kFlushMaxTtls);
    EXPECT_EQ(s.batches.back().ttl, 1000 + kFlushMaxTtls - 1);
}

TEST(DropReport, ReportsGrowthAtMostOncePerInterval) {
    DropReport r(10000);
    EXPECT_EQ(r.due(0, 20000), 0u); // nothing dropped
    EXPECT_EQ(r.due(5, 20000), 5u);
    EXPECT_EQ(r.due(7, 29999), 0u); // too soon
    EXPECT_EQ(r.due(9, 30000), 4u); // since the last report
    EXPECT_EQ(r.due(9, 90000), 0u); // no growth
}

TEST(AckWatch, LogsOnlyTheChanges) {
    AckWatch w;
    EXPECT_EQ(w.on_ack(true), AckWatch::Change::kNone);
    EXPECT_EQ(w.on_ack(false), AckWatch::Change::kFailing);
    EXPECT_EQ(w.on_ack(false), AckWatch::Change::kNone);
    EXPECT_EQ(w.on_ack(true), AckWatch::Change::kRecovered);
    EXPECT_EQ(w.on_ack(true), AckWatch::Change::kNone);
}

} // namespace
} // namespace levee::sticky
