#include <gtest/gtest.h>

#include "core/limit/lease.hpp"

using namespace levee::limit;

TEST(Lease, AsksAheadForTwiceTheDemandLessWhatIsHeld) {
    EXPECT_EQ(lease_want(0, 0, 10, 10), 0u);
    EXPECT_EQ(lease_want(5, 0, 100, 100), 10u);
    EXPECT_EQ(lease_want(5, 4, 100, 100), 6u);
    EXPECT_EQ(lease_want(5, -1, 100, 100), 11u); // repays the credit
    EXPECT_EQ(lease_want(5, 20, 100, 100), 0u);
}

TEST(Lease, AFirstLeaseAsksForTheWholeBucket) {
    EXPECT_EQ(lease_want(1, -1, 21, 5, true), 22u);  // the bucket, plus the credit spent
    EXPECT_EQ(lease_want(1, -1, 21, 5, false), 3u);
    EXPECT_EQ(lease_want(40, 0, 21, 5, true), 31u);  // a larger demand still wins, to the ceiling
    EXPECT_EQ(lease_want(0, 0, 21, 5, true), 0u);    // nothing seen, nothing asked
}

TEST(Lease, NeverMoreThanTheBucketCouldGive) {
    EXPECT_EQ(lease_want(100000, 0, 51, 10), 71u);
}
