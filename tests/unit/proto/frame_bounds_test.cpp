// The module's largest batch frames, packed for real, fit in the smallest
// max_frame_bytes leveed accepts: the bound in core/link/frame_bounds.hpp
// is what protobuf-c makes of those batches, not a guess.
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/link/frame_bounds.hpp"
#include "frame_codec.hpp"

using namespace levee::link;

namespace {

size_t payload(const Levee__Frame &f) {
    return levee::encoded_frame_size(f) - levee::kFrameHeaderBytes;
}

// A heartbeat batch of kPresenceBatchRecords records whose names fill
// kPresenceBatchNameBytes, with every number at its widest.
size_t presence_frame(size_t ulen, size_t rlen, size_t records) {
    const std::string user(ulen, 'u'), room(rlen, 'r');
    std::vector<Levee__PresenceRecord> recs(records);
    std::vector<Levee__PresenceRecord *> ptrs(records);
    for (size_t i = 0; i < records; i++) {
        levee__presence_record__init(&recs[i]);
        recs[i].user = const_cast<char *>(user.c_str());
        recs[i].room = const_cast<char *>(room.c_str());
        recs[i].last_seen_ms = INT64_MIN;
        ptrs[i] = &recs[i];
    }
    Levee__PresenceBatch batch = LEVEE__PRESENCE_BATCH__INIT;
    batch.ttl_ms = UINT32_MAX;
    batch.n_records = records;
    batch.records = ptrs.data();
    Levee__Frame frame = LEVEE__FRAME__INIT;
    frame.request_id = UINT64_MAX;
    frame.body_case = LEVEE__FRAME__BODY_PRESENCE_BATCH;
    frame.presence_batch = &batch;
    return payload(frame);
}

} // namespace

TEST(FrameBounds, TheLargestPresenceBatchFits) {
    // Many short names (the most records), or the longest names.
    const size_t many = presence_frame(127, 4, kPresenceBatchRecords);
    ASSERT_LE(kPresenceBatchRecords * 131, kPresenceBatchNameBytes);
    EXPECT_LE(many, kPresenceFrameMax);
    const size_t longest = presence_frame(255, 255, kPresenceBatchNameBytes / 510);
    EXPECT_LE(longest, kPresenceFrameMax);
    EXPECT_LE(kPresenceFrameMax, kMinMaxFrameBytes);
    RecordProperty("presence_frame_bytes", static_cast<int>(many));
}

TEST(FrameBounds, TheLargestLeaseRequestFits) {
    const std::string zone(kLeaseZoneNameMax, 'z');
    const std::vector<uint8_t> key(kLeaseBatchKeyBytes / kLeaseBatchEntries, 'k');
    std::vector<Levee__LimitLeaseEntry> es(kLeaseBatchEntries);
    std::vector<Levee__LimitLeaseEntry *> ptrs(kLeaseBatchEntries);
    for (size_t i = 0; i < es.size(); i++) {
        levee__limit_lease_entry__init(&es[i]);
        es[i].zone = const_cast<char *>(zone.c_str());
        es[i].key.data = const_cast<uint8_t *>(key.data());
        es[i].key.len = key.size();
        es[i].period_us = UINT64_MAX;
        es[i].capacity = UINT32_MAX;
        es[i].want = UINT32_MAX;
        ptrs[i] = &es[i];
    }
    Levee__LimitLeaseRequest req = LEVEE__LIMIT_LEASE_REQUEST__INIT;
    req.n_entries = es.size();
    req.entries = ptrs.data();
    Levee__Frame frame = LEVEE__FRAME__INIT;
    frame.request_id = UINT64_MAX;
    frame.body_case = LEVEE__FRAME__BODY_LIMIT_LEASE;
    frame.limit_lease = &req;
    EXPECT_LE(payload(frame), kLeaseFrameMax);
    EXPECT_LE(kLeaseFrameMax, kMinMaxFrameBytes);
}

TEST(FrameBounds, TheLargestRegistryBatchFits) {
    const std::vector<uint8_t> key(kRegistryMaxKey, 'k');
    const std::string server(kRegistryMaxServer, 's');
    std::vector<Levee__RegistryEntry> es(kRegistryBatchEntries);
    std::vector<Levee__RegistryEntry *> ptrs(kRegistryBatchEntries);
    for (size_t i = 0; i < es.size(); i++) {
        levee__registry_entry__init(&es[i]);
        es[i].key.data = const_cast<uint8_t *>(key.data());
        es[i].key.len = key.size();
        es[i].server = const_cast<char *>(server.c_str());
        ptrs[i] = &es[i];
    }
    Levee__RegistryBatch batch = LEVEE__REGISTRY_BATCH__INIT;
    batch.ttl_ms = UINT32_MAX;
    batch.n_entries = es.size();
    batch.entries = ptrs.data();
    Levee__Frame frame = LEVEE__FRAME__INIT;
    frame.request_id = UINT64_MAX;
    frame.body_case = LEVEE__FRAME__BODY_REGISTRY_BATCH;
    frame.registry_batch = &batch;
    EXPECT_LE(payload(frame), kRegistryFrameMax);
    EXPECT_LE(kRegistryFrameMax, kMinMaxFrameBytes);
}
