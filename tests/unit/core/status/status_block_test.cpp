#include <gtest/gtest.h>

#include <memory>

#include "core/status/status_block.hpp"

namespace {

using namespace levee::status;

TEST(StatusBlock, BatchSizesFallInInclusiveBuckets) {
    auto b = std::make_unique<Block>();
    count_batch(*b, 1);
    count_batch(*b, 10);
    count_batch(*b, 11);
    count_batch(*b, 1000000); // above every bound: only in +Inf (count)
    EXPECT_EQ(b->batch_buckets[0], 1u);
    EXPECT_EQ(b->batch_buckets[1], 1u);
    EXPECT_EQ(b->batch_buckets[2], 1u);
    EXPECT_EQ(b->batch_count, 4u);
    EXPECT_EQ(b->batch_records, 1000022u);
}

TEST(StatusBlock, WorkersBeyondTheSlotsShareTheLast) {
    auto b = std::make_unique<Block>();
    EXPECT_EQ(&link_slot(*b, 3), &b->link[3]);
    EXPECT_EQ(&link_slot(*b, kMaxWorkers + 5), &b->link[kMaxWorkers - 1]);
}

} // namespace
