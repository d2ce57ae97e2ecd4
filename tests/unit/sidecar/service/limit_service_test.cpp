// LimitService without Redis (standalone leveed): leases come from one
// in-process GCRA bucket per (zone, key), each token granted once. With a
// fake Redis node: what a lease sends, also when it is sent again.
#include <memory>
#include <string>
#include <vector>

#include <event2/event.h>
#include <gtest/gtest.h>

#include "../net/server_fixture.hpp"
#include "../redis/fake_node.hpp"
#include "cluster_client.hpp"
#include "keys.hpp"
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

std::string bulk(const std::string &s) { return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n"; }

// The connection to Redis is lost after the lease went out: it may or may
// not have run, so the cluster client sends it again. Both carry the same
// lease id, with which lua/limit_lease.lua answers the first grant instead
// of taking the tokens twice (tests/e2e/test_lua_scripts.py); without an id
// the retry spent a second time and the first grant was lost.
TEST(LimitService, ALeaseSentAgainAfterAnUnknownOutcomeCarriesTheSameId) {
    using redis::testing::FakeNode;
    testing::BasePtr base(event_base_new());
    int port = 0;
    int evalshas = 0;
    FakeNode node(base.get(), [&](const FakeNode::Command &c) -> std::string {
        if (c[0] == "CLUSTER") {
            return "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n" + bulk("127.0.0.1") + ":" + std::to_string(port) +
                   "\r\n";
        }
        return ++evalshas == 1 ? std::string(FakeNode::kHangUp) : std::string(":3\r\n");
    });
    port = node.port();
    redis::ClusterOptions opts;
    opts.retry_backoff_min_ms = 1;
    opts.retry_backoff_max_ms = 5;
    redis::ClusterClient client(base.get(), {{"127.0.0.1", port}}, opts);
    bool ready = false;
    client.start([&](bool, const std::string &) { ready = true; });
    ASSERT_TRUE(testing::run_until(base.get(), [&] { return ready; }));

    Metrics metrics;
    LimitService svc(&client, metrics);
    Granted first = lease(svc, {{"alice", 5}}, 100000, 10);
    ASSERT_TRUE(testing::run_until(base.get(), [&] { return !first.grants.empty(); }));
    EXPECT_EQ(first.grants[0].second, 3u) << first.error;
    Granted second = lease(svc, {{"alice", 5}}, 100000, 10);
    ASSERT_TRUE(testing::run_until(base.get(), [&] { return !second.grants.empty(); }));

    std::vector<FakeNode::Command> sent;
    for (const auto &conn : node.received()) {
        for (const auto &c : conn) {
            if (c[0] == "EVALSHA") {
                sent.push_back(c);
            }
        }
    }
    ASSERT_EQ(sent.size(), 3u);
    const std::string bucket = redis::keys::limit_bucket("z", "alice", 100000, 10);
    // EVALSHA sha 2 bucket ledger period capacity want owner seq
    ASSERT_EQ(sent[0].size(), 10u);
    EXPECT_EQ(sent[0][2], "2");
    EXPECT_EQ(sent[0][3], bucket);
    EXPECT_EQ(sent[0][4], bucket + ":leases");
    EXPECT_EQ(sent[1], sent[0]) << "the retry is the same lease";
    ASSERT_EQ(sent[2].size(), 10u);
    EXPECT_EQ(sent[2][8], sent[0][8]) << "one leveed, one owner";
    EXPECT_NE(sent[2][9], sent[0][9]) << "a new lease, a new number";
}

} // namespace
} // namespace levee
