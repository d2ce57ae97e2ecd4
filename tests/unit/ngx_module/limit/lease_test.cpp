#include <gtest/gtest.h>

#include "lease.hpp"

using namespace levee::limit;

TEST(Lease, AsksAheadForTwiceTheDemandLessWhatIsHeld) {
    EXPECT_EQ(lease_want(0, 0, 10, 10), 0u);
    EXPECT_EQ(lease_want(5, 0, 100, 100), 10u);
    EXPECT_EQ(lease_want(5, 4, 100, 100), 6u);
    EXPECT_EQ(lease_want(5, -1, 100, 100), 11u); // repays the credit
    EXPECT_EQ(lease_want(5, 20, 100, 100), 0u);
}

TEST(Lease, NeverMoreThanTheBucketCouldGive) {
    EXPECT_EQ(lease_want(100000, 0, 51, 10), 71u);
}
