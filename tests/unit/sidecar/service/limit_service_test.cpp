// LimitService without Redis (standalone leveed): leases come from one
// in-process GCRA bucket per (zone, key), each token granted once.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "metrics.hpp"
#include "service/limit_service.hpp"

namespace levee {
namespace {

struct Granted {
    std::vector<std::pair<std::string, unsigned>> grants;
    std::string error;
};

Granted lease(LimitService &svc, const std::vector<std::pair<std::string, unsigned>> &wants,
              uint64_t period_us, uint32_t capacity, const DeclaredZones *declared = nullptr) {
    std::vector<Levee__LimitLeaseEntry> entries(wants.size());
    std::vector<Levee__LimitLeaseEntry *> ptrs;
    for (std::size_t i = 0; i < wants.size(); i++) {
        levee__limit_lease_entry__init(&entries[i]);
        entries[i].zone = const_cast<char *>("z");
        entries[i].key.data = reinterpret_cast<uint8_t *>(const_cast<char *>(wants[i].first.data()));
        entries[i].key.len = wants[i].first.size();
        entries[i].period_us = period_us;
        entries[i].capacity = capacity;
        entries[i].want = wants[i].second;
        ptrs.push_back(&entries[i]);
    }
    Levee__LimitLeaseRequest req = LEVEE__LIMIT_LEASE_REQUEST__INIT;
    req.n_entries = ptrs.size();
    req.entries = ptrs.data();
    Granted out;
    svc.handle(
        7, req, [&out](const Levee__Frame &f) {
        EXPECT_EQ(f.request_id, 7u);
        ASSERT_EQ(f.body_case, LEVEE__FRAME__BODY_LIMIT_LEASE_REPLY);
        for (std::size_t i = 0; i < f.limit_lease_reply->n_grants; i++) {
            const Levee__LimitLeaseGrant &g = *f.limit_lease_reply->grants[i];
            EXPECT_STREQ(g.zone, "z");
            out.grants.emplace_back(std::string(reinterpret_cast<char *>(g.key.data), g.key.len), g.granted);
        }
        out.error = f.limit_lease_reply->error;
    },
        declared);
    return out;
}

// A peer that declared zone z as 1 r/min, burst 9 cannot lease z's keys
// with a bucket of its own choosing (1 token a day), nor another zone.
TEST(LimitService, OnlyTheBucketsTheHelloDeclaredAreLeased) {
    Metrics metrics;
    LimitService svc(nullptr, metrics);
    const DeclaredZones declared{{"z", DeclaredZone{60000000, 10}}};
    Granted ok = lease(svc, {{"alice", 4}}, 60000000, 10, &declared);
    EXPECT_EQ(ok.grants[0].second, 4u);
    EXPECT_EQ(ok.error, "");

    Granted day = lease(svc, {{"alice", 1}}, 86400000000ull, 1, &declared);
    EXPECT_EQ(day.grants[0].second, 0u);
    EXPECT_NE(day.error.find("differs from the period_us 60000000 and capacity 10 declared at hello"),
              std::string::npos)
        << day.error;
    EXPECT_EQ(lease(svc, {{"alice", 1}}, 60000000, 1, &declared).grants[0].second, 0u);

    const DeclaredZones other{{"y", DeclaredZone{60000000, 10}}};
    Granted undeclared = lease(svc, {{"alice", 1}}, 60000000, 10, &other);
    EXPECT_EQ(undeclared.grants[0].second, 0u);
    EXPECT_NE(undeclared.error.find("was not declared at hello"), std::string::npos) << undeclared.error;
    EXPECT_EQ(metrics.value("leveed_limit_leases_total", {{"result", "undeclared"}}), 3);
    // the declared bucket was not touched by the refused ones
    EXPECT_EQ(lease(svc, {{"alice", 10}}, 60000000, 10, &declared).grants[0].second, 6u);
}

TEST(LimitService, StandaloneGrantsEachTokenOnce) {
    Metrics metrics;
    LimitService svc(nullptr, metrics);
    // 1 r/min, burst 4: the bucket holds 5 and refills far slower than the test
    Granted a = lease(svc, {{"alice", 3}, {"bob", 1}}, 60000000, 5);
    ASSERT_EQ(a.grants.size(), 2u);
    EXPECT_EQ(a.grants[0], (std::pair<std::string, unsigned>{"alice", 3}));
    EXPECT_EQ(a.grants[1], (std::pair<std::string, unsigned>{"bob", 1}));
    EXPECT_EQ(a.error, "");
    EXPECT_EQ(lease(svc, {{"alice", 10}}, 60000000, 5).grants[0].second, 2u);
    EXPECT_EQ(lease(svc, {{"alice", 10}}, 60000000, 5).grants[0].second, 0u);
    EXPECT_EQ(metrics.value("leveed_limit_tokens_granted_total"), 6.0);
}

// A lease chose its own period and capacity: UINT64_MAX-sized values
// overflowed the GCRA arithmetic (undefined behaviour) and could lock a key
// out for years. Parameters no zone can declare fail, and cost nothing.
TEST(LimitService, ALeaseWithParametersNoZoneCanDeclareFails) {
    Metrics metrics;
    LimitService svc(nullptr, metrics);
    Granted bad = lease(svc, {{"mallory", 5}}, UINT64_MAX / 2, 4000000000u);
    ASSERT_EQ(bad.grants.size(), 1u);
    EXPECT_EQ(bad.grants[0].second, 0u);
    EXPECT_NE(bad.error.find("invalid lease"), std::string::npos) << bad.error;
    EXPECT_EQ(metrics.value("leveed_limit_leases_total", {{"result", "invalid"}}), 1);
    EXPECT_EQ(lease(svc, {{"mallory", 3}}, 60000000, 5).grants[0].second, 3u) << "a valid lease is untouched";
}

} // namespace
} // namespace levee
