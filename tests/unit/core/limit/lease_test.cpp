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

namespace {

struct Key {
    Entry e{};
    GlobalPart g{};
};

} // namespace

TEST(LeaseApply, AGrantAddsItsTokensAndSettlesTheRequest) {
    Key k;
    k.g.tokens = -1; // the credit spent
    k.g.pending_ms = 1234;
    k.g.demand = 7;

    EXPECT_FALSE(lease_apply(k.e, k.g, 10, false));
    EXPECT_EQ(k.g.tokens, 9);
    EXPECT_EQ(k.g.pending_ms, 0u);
    EXPECT_EQ(k.g.demand, 7u); // demand since the request belongs to the next one
    EXPECT_TRUE(k.e.flags & kEntryLeased);
    EXPECT_FALSE(k.e.flags & kEntryUnavailable);
}

TEST(LeaseApply, AFailedGrantTakesTheKeyOutOfGlobalCountingAndAsksAgain) {
    Key k;
    k.e.flags = kEntryDirty;
    k.g.tokens = 2;
    k.g.pending_ms = 99;

    EXPECT_TRUE(lease_apply(k.e, k.g, 0, true));
    EXPECT_EQ(k.g.tokens, 2); // what is held stays spendable
    EXPECT_EQ(k.g.pending_ms, 0u);
    EXPECT_TRUE(k.e.flags & kEntryLeased);
    EXPECT_TRUE(k.e.flags & kEntryUnavailable);
    EXPECT_TRUE(k.e.flags & kEntryDirty); // other flags are left alone
}

// `granted` comes off the socket from leveed. Added as an int32_t, a grant
// above INT32_MAX turned negative and one that filled the counter overflowed
// it (signed overflow: undefined behaviour, which UBSan reports here on the
// old code). Tokens held saturate instead.
TEST(LeaseApply, AGrantBeyondWhatTheCounterHoldsSaturates) {
    Key over;
    over.g.tokens = 5;
    EXPECT_FALSE(lease_apply(over.e, over.g, INT32_MAX, false));
    EXPECT_EQ(over.g.tokens, INT32_MAX);

    Key k;
    k.g.tokens = 5;
    EXPECT_FALSE(lease_apply(k.e, k.g, 0x80000000u, false));
    EXPECT_EQ(k.g.tokens, INT32_MAX);
    EXPECT_FALSE(lease_apply(k.e, k.g, 1, false));
    EXPECT_EQ(k.g.tokens, INT32_MAX);

    Key full;
    full.g.tokens = INT32_MAX - 1;
    EXPECT_FALSE(lease_apply(full.e, full.g, UINT32_MAX, false));
    EXPECT_EQ(full.g.tokens, INT32_MAX);

    Key owing; // spent its credit ahead of the grant
    owing.g.tokens = -kLeaseCredit;
    EXPECT_FALSE(lease_apply(owing.e, owing.g, UINT32_MAX, false));
    EXPECT_EQ(owing.g.tokens, INT32_MAX);
    EXPECT_TRUE(lease_apply(owing.e, owing.g, 0, true));
    EXPECT_EQ(owing.g.tokens, INT32_MAX);
}

TEST(LeaseApply, ASuccessfulGrantBringsAFailedKeyBack) {
    Key k;
    k.e.flags = kEntryUnavailable | kEntryLeased | kEntryDirty;

    EXPECT_FALSE(lease_apply(k.e, k.g, 3, false));
    EXPECT_EQ(k.g.tokens, 3);
    EXPECT_EQ(k.e.flags, kEntryLeased | kEntryDirty);
}

TEST(GlobalAdmit, HeldTokensPassAndAreSpent) {
    Key k;
    k.g.tokens = 2;

    GlobalDecision d = global_admit(k.e, k.g, true, false, false);
    EXPECT_EQ(d.admission, Admission::kPass);
    EXPECT_FALSE(d.ask_now);
    EXPECT_EQ(k.g.tokens, 1);
}

TEST(GlobalAdmit, HeldTokensPassEvenWhenTheCountIsAway) {
    Key k;
    k.g.tokens = 1;
    EXPECT_EQ(global_admit(k.e, k.g, false, false, false).admission, Admission::kPass);
    EXPECT_EQ(k.g.tokens, 0);

    Key failed;
    failed.e.flags = kEntryUnavailable | kEntryLeased;
    failed.g.tokens = 1;
    EXPECT_EQ(global_admit(failed.e, failed.g, true, false, false).admission, Admission::kPass);
    EXPECT_EQ(failed.g.tokens, 0);
}

TEST(GlobalAdmit, TheCreditIsSpentOnlyWhileTheCountIsReachable) {
    Key k;
    EXPECT_EQ(global_admit(k.e, k.g, true, false, false).admission, Admission::kPass);
    EXPECT_EQ(k.g.tokens, -kLeaseCredit);

    Key away;
    EXPECT_EQ(global_admit(away.e, away.g, false, false, false).admission, Admission::kFailMode);
    EXPECT_EQ(away.g.tokens, 0);

    Key failed;
    failed.e.flags = kEntryUnavailable;
    EXPECT_EQ(global_admit(failed.e, failed.g, true, true, false).admission, Admission::kFailMode);
    EXPECT_EQ(failed.g.tokens, 0);
}

TEST(GlobalAdmit, ACreditSpentRefusesAndAsksNowUnlessALeaseIsOutstanding) {
    Key k;
    k.e.flags = kEntryLeased;
    k.g.tokens = -kLeaseCredit;

    GlobalDecision d = global_admit(k.e, k.g, true, true, false);
    EXPECT_EQ(d.admission, Admission::kRefuse);
    EXPECT_TRUE(d.ask_now);
    EXPECT_EQ(k.g.tokens, -kLeaseCredit);

    k.g.pending_ms = 5;
    d = global_admit(k.e, k.g, true, true, false);
    EXPECT_EQ(d.admission, Admission::kRefuse);
    EXPECT_FALSE(d.ask_now);
}

TEST(GlobalAdmit, AKeyNeverAnsweredWaitsForItsFirstLeaseWhileItMay) {
    Key k;
    k.g.tokens = -kLeaseCredit;

    GlobalDecision d = global_admit(k.e, k.g, true, true, false);
    EXPECT_EQ(d.admission, Admission::kWait);
    EXPECT_TRUE(d.ask_now);

    k.g.pending_ms = 5;
    d = global_admit(k.e, k.g, true, true, false);
    EXPECT_EQ(d.admission, Admission::kWait);
    EXPECT_FALSE(d.ask_now);

    EXPECT_EQ(k.g.tokens, -kLeaseCredit);
}

// A first lease still out when the request has waited its time: the quota
// is unknown, not spent, so levee_limit_fail decides and the request is not
// refused.
TEST(GlobalAdmit, AFirstLeasePendingPastTheWaitFallsToTheFailModeNotARefusal) {
    Key k;
    k.g.tokens = -kLeaseCredit;
    k.g.pending_ms = 5;

    GlobalDecision d = global_admit(k.e, k.g, true, false, false);
    EXPECT_EQ(d.admission, Admission::kFailMode);
    EXPECT_TRUE(d.late);
    EXPECT_FALSE(d.ask_now);
    EXPECT_EQ(k.g.tokens, -kLeaseCredit); // the fail mode spends nothing

    // not even sent yet (the link refused the frame): the same, and ask now
    k.g.pending_ms = 0;
    d = global_admit(k.e, k.g, true, false, false);
    EXPECT_EQ(d.admission, Admission::kFailMode);
    EXPECT_TRUE(d.late);
    EXPECT_TRUE(d.ask_now);
}

TEST(GlobalAdmit, ASpentKeyWhoseNextLeaseIsLateFallsToTheFailMode) {
    Key k;
    k.e.flags = kEntryLeased;
    k.g.tokens = -kLeaseCredit;
    k.g.pending_ms = 5;

    GlobalDecision d = global_admit(k.e, k.g, true, false, true);
    EXPECT_EQ(d.admission, Admission::kFailMode);
    EXPECT_TRUE(d.late);
    EXPECT_EQ(k.g.tokens, -kLeaseCredit);

    // on time: the key's own quota is known spent
    EXPECT_EQ(global_admit(k.e, k.g, true, false, false).admission, Admission::kRefuse);
}

TEST(GlobalAdmit, TheCountAwayIsNotCountedAsLate) {
    Key k;
    k.e.flags = kEntryLeased | kEntryUnavailable;
    k.g.tokens = -kLeaseCredit;
    k.g.pending_ms = 5;

    GlobalDecision d = global_admit(k.e, k.g, true, false, true);
    EXPECT_EQ(d.admission, Admission::kFailMode);
    EXPECT_FALSE(d.late);
}

TEST(LeaseLate, AnOutstandingLeaseIsLateOnceItIsAsOldAsTheWait) {
    GlobalPart g{};
    EXPECT_FALSE(lease_late(g, 1000, 250)); // nothing outstanding

    g.pending_ms = 1001;
    EXPECT_FALSE(lease_late(g, 1250, 250));
    EXPECT_TRUE(lease_late(g, 1251, 250));

    g.pending_ms = 0xffffff81u; // the clock wrapped since it was sent
    EXPECT_FALSE(lease_late(g, 0x00000010u, 250));
    EXPECT_TRUE(lease_late(g, 0x00000080u, 250));
}

TEST(GlobalAdmit, TheCountAwayDecidesBeforeAFirstLeaseWait) {
    Key k;
    k.g.tokens = -kLeaseCredit;
    EXPECT_EQ(global_admit(k.e, k.g, false, true, false).admission, Admission::kFailMode);
}

TEST(LeaseTurn, AnOutstandingRequestWaitsUntilItsTimeout) {
    Key k;
    k.e.flags = kEntryLeased;
    k.g.pending_ms = 1001;
    k.g.demand = 4;

    LeaseTurn turn = lease_turn(k.e, k.g, 1999, 1000, 21, 5);
    EXPECT_TRUE(turn.waiting);
    EXPECT_EQ(turn.want, 0u);
    EXPECT_EQ(k.g.pending_ms, 1001u); // untouched
    EXPECT_EQ(k.g.demand, 4u);
    EXPECT_FALSE(k.e.flags & kEntryUnavailable);
}

TEST(LeaseTurn, AnUnansweredRequestMakesTheKeyUnavailableAndIsAskedAgain) {
    Key k;
    k.e.flags = kEntryLeased;
    k.g.pending_ms = 1001;
    k.g.demand = 4;

    LeaseTurn turn = lease_turn(k.e, k.g, 2001, 1000, 21, 5);
    EXPECT_FALSE(turn.waiting);
    EXPECT_TRUE(turn.unanswered);
    EXPECT_EQ(turn.want, 8u);
    EXPECT_EQ(k.g.pending_ms, 0u);
    EXPECT_EQ(k.g.demand, 4u); // counted into the request the caller sends
    EXPECT_TRUE(k.e.flags & kEntryUnavailable);
}

TEST(LeaseTurn, TheClockIsComparedModulo32Bits) {
    Key k;
    k.e.flags = kEntryLeased;
    k.g.pending_ms = 0xffffff01u;
    k.g.demand = 1;

    EXPECT_TRUE(lease_turn(k.e, k.g, 0x101, 1000, 21, 5).waiting); // 512 ms later, across the wrap
    EXPECT_TRUE(lease_turn(k.e, k.g, 0x2e8, 1000, 21, 5).waiting); // 999 ms later
    EXPECT_TRUE(lease_turn(k.e, k.g, 0x2e9, 1000, 21, 5).unanswered); // 1000 ms later
}

TEST(LeaseTurn, NothingToAskSettlesTheDemand) {
    Key k;
    k.e.flags = kEntryLeased;
    k.g.tokens = 20;
    k.g.demand = 3;

    LeaseTurn turn = lease_turn(k.e, k.g, 5, 1000, 21, 5);
    EXPECT_FALSE(turn.waiting);
    EXPECT_FALSE(turn.unanswered);
    EXPECT_EQ(turn.want, 0u);
    EXPECT_EQ(k.g.demand, 0u);
}

TEST(LeaseTurn, AKeyNeverAnsweredAsksForTheWholeBucket) {
    Key k;
    k.g.tokens = -1;
    k.g.demand = 1;

    EXPECT_EQ(lease_turn(k.e, k.g, 5, 1000, 21, 5).want, 22u);
}

TEST(LeaseParams, WhatAZoneCanDeclareIsValid) {
    EXPECT_TRUE(lease_params_valid(1, 1000001));                  // 1000000r/s, burst 1000000
    EXPECT_TRUE(lease_params_valid(86400ull * 1000000, 365));     // 1r/d, a year's bucket
    EXPECT_TRUE(lease_params_valid(12342857143ull, 2555));        // 7r/d rounded up, 365 days
    EXPECT_TRUE(lease_params_valid(60000000, 5));
}

TEST(LeaseParams, WhatWouldOverflowOrLoseExactnessIsNot) {
    EXPECT_FALSE(lease_params_valid(0, 5));
    EXPECT_FALSE(lease_params_valid(60000000, 0));
    EXPECT_FALSE(lease_params_valid(86400ull * 1000000 + 1, 1));  // slower than 1r/d
    EXPECT_FALSE(lease_params_valid(1, 1000002));
    EXPECT_FALSE(lease_params_valid(86400ull * 1000000, 367));    // more than a year
    EXPECT_FALSE(lease_params_valid(UINT64_MAX / 2, 4000000000u));
}
