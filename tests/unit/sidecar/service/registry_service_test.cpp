// RegistryService without Redis (standalone leveed): records live in memory
// with their TTL, the latest write of a key wins, every batch is acknowledged.
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "metrics.hpp"
#include "service/registry_service.hpp"

namespace levee {
namespace {

Levee__RegistryAck write(RegistryService &svc, const std::vector<std::pair<std::string, std::string>> &records,
                         uint32_t ttl_ms) {
    std::vector<Levee__RegistryEntry> entries(records.size());
    std::vector<Levee__RegistryEntry *> ptrs;
    for (std::size_t i = 0; i < records.size(); i++) {
        levee__registry_entry__init(&entries[i]);
        entries[i].key.data = reinterpret_cast<uint8_t *>(const_cast<char *>(records[i].first.data()));
        entries[i].key.len = records[i].first.size();
        entries[i].server = const_cast<char *>(records[i].second.c_str());
        ptrs.push_back(&entries[i]);
    }
    Levee__RegistryBatch batch = LEVEE__REGISTRY_BATCH__INIT;
    batch.ttl_ms = ttl_ms;
    batch.n_entries = ptrs.size();
    batch.entries = ptrs.data();
    Levee__RegistryAck out = LEVEE__REGISTRY_ACK__INIT;
    svc.handle(9, batch, [&out](const Levee__Frame &f) {
        EXPECT_EQ(f.request_id, 9u);
        ASSERT_EQ(f.body_case, LEVEE__FRAME__BODY_REGISTRY_ACK);
        out.ok = f.registry_ack->ok;
        out.entries = f.registry_ack->entries;
    });
    return out;
}

TEST(RegistryService, StandaloneKeepsLatestServerUntilTheTtl) {
    Metrics metrics;
    RegistryService svc(nullptr, metrics);
    Levee__RegistryAck ack = write(svc, {{"alice", "10.0.0.1:80"}, {"bob", "10.0.0.2:80"}}, 60000);
    EXPECT_TRUE(ack.ok);
    EXPECT_EQ(ack.entries, 2u);
    EXPECT_EQ(svc.lookup("alice"), "10.0.0.1:80");
    write(svc, {{"alice", "10.0.0.3:80"}}, 30);
    EXPECT_EQ(svc.lookup("alice"), "10.0.0.3:80");
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    EXPECT_EQ(svc.lookup("alice"), "");
    EXPECT_EQ(svc.lookup("bob"), "10.0.0.2:80");
    EXPECT_EQ(svc.lookup("carol"), "");
}

} // namespace
} // namespace levee
