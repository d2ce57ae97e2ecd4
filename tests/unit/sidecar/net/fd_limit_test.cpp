// leveed raises its soft RLIMIT_NOFILE when max_connections needs more, and
// says when even the hard limit is too low.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include "net/fd_limit.hpp"

namespace levee {
namespace {

struct SavedLimit {
    SavedLimit() { ::getrlimit(RLIMIT_NOFILE, &saved); }
    ~SavedLimit() { ::setrlimit(RLIMIT_NOFILE, &saved); }
    rlimit saved{};
};

TEST(FdLimit, ASoftLimitBelowWhatIsNeededIsRaisedToTheHardOne) {
    SavedLimit saved;
    if (saved.saved.rlim_max < 512 || saved.saved.rlim_max == RLIM_INFINITY) {
        GTEST_SKIP() << "hard limit " << saved.saved.rlim_max;
    }
    rlimit low = saved.saved;
    low.rlim_cur = 256;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
    const FdLimit l = ensure_fd_limit(400);
    EXPECT_EQ(l.soft_before, 256u);
    EXPECT_EQ(l.soft, saved.saved.rlim_max);
    EXPECT_TRUE(l.enough);
    rlimit now{};
    ::getrlimit(RLIMIT_NOFILE, &now);
    EXPECT_EQ(now.rlim_cur, saved.saved.rlim_max);
}

TEST(FdLimit, MoreThanTheHardLimitIsNotEnough) {
    SavedLimit saved;
    if (saved.saved.rlim_max == RLIM_INFINITY) {
        GTEST_SKIP() << "no hard limit";
    }
    const FdLimit l = ensure_fd_limit(std::uint64_t{saved.saved.rlim_max} + 1);
    EXPECT_FALSE(l.enough);
    EXPECT_EQ(l.hard, saved.saved.rlim_max);
}

TEST(FdLimit, AnAmpleSoftLimitIsLeftAlone) {
    SavedLimit saved;
    const FdLimit l = ensure_fd_limit(16);
    EXPECT_TRUE(l.enough);
    EXPECT_EQ(l.soft, l.soft_before);
}

} // namespace
} // namespace levee
