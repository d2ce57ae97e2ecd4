// LogBudget: the per-kind counter under LogThrottle, and the writer thread's
// own budget of lost-record lines.
#include <gtest/gtest.h>

#include "log_budget.hpp"

namespace {

TEST(LogBudget, AllowsSoManyPerWindowAndCountsTheRest) {
    levee::log::LogBudget budget(2, 1000);
    EXPECT_TRUE(budget.take(5000));
    EXPECT_TRUE(budget.take(5100));
    EXPECT_FALSE(budget.take(5200));
    EXPECT_FALSE(budget.take(5900));
    EXPECT_EQ(budget.take_suppressed(), 2u);
    EXPECT_TRUE(budget.take(6000)); // a new window
    EXPECT_EQ(budget.take_suppressed(), 0u);
}

// Windows start at a kind's first line, wherever the clock is.
TEST(LogBudget, TheFirstWindowStartsAtTheFirstLine) {
    levee::log::LogBudget budget(1, 1000);
    EXPECT_TRUE(budget.take(100));
    EXPECT_FALSE(budget.take(1099));
    EXPECT_TRUE(budget.take(1100));
}

} // namespace
