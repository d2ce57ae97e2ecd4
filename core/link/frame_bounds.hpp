// The bounds of the batches the module sends leveed, and from them the
// largest frame it can send: leveed's max_frame_bytes may not be smaller,
// or it would close the link on that frame and the module would send the
// same batch again, forever. One definition for both sides.
#pragma once

#include <cstddef>

namespace levee::link {

// Heartbeat: records per PresenceBatch, and bytes of user and room names in it.
constexpr std::size_t kPresenceBatchRecords = 4000;
constexpr std::size_t kPresenceBatchNameBytes = 512 * 1024;
// Limit leases: entries per LimitLeaseRequest, and bytes of keys in it.
constexpr std::size_t kLeaseBatchEntries = 512;
constexpr std::size_t kLeaseBatchKeyBytes = 128 * 1024;
constexpr std::size_t kLeaseZoneNameMax = 256; // levee_limit_zone refuses longer names
// Sticky registry: entries per RegistryBatch, and the longest key and server.
constexpr std::size_t kRegistryBatchEntries = 512;
constexpr std::size_t kRegistryMaxKey = 512;
constexpr std::size_t kRegistryMaxServer = 128; // nginx's NGX_SOCKADDR_STRLEN is below

// Protobuf costs beside the bytes themselves, generously: a field's tag
// (1 byte up to field 15, 2 above), a length of up to 3 bytes, a varint of up
// to 10; the Frame's request_id, body tag and body length.
constexpr std::size_t kFrameOverhead = 1 + 10 + 2 + 4;
constexpr std::size_t kPresenceRecordOverhead = (1 + 3) + (1 + 2) + (1 + 2) + (1 + 10);
constexpr std::size_t kLeaseEntryOverhead = (1 + 3) + (1 + 2) + (1 + 3) + 3 * (1 + 10);
constexpr std::size_t kRegistryEntryOverhead = (1 + 3) + (1 + 2) + (1 + 2);

constexpr std::size_t kPresenceFrameMax =
    kFrameOverhead + (1 + 5) + kPresenceBatchRecords * kPresenceRecordOverhead + kPresenceBatchNameBytes;
constexpr std::size_t kLeaseFrameMax =
    kFrameOverhead + kLeaseBatchEntries * (kLeaseEntryOverhead + kLeaseZoneNameMax) + kLeaseBatchKeyBytes;
constexpr std::size_t kRegistryFrameMax =
    kFrameOverhead + (1 + 5) + kRegistryBatchEntries * (kRegistryEntryOverhead + kRegistryMaxKey + kRegistryMaxServer);

constexpr std::size_t max3(std::size_t a, std::size_t b, std::size_t c) {
    return a > b ? (a > c ? a : c) : (b > c ? b : c);
}

// The smallest max_frame_bytes leveed accepts, rounded up to a whole KiB.
constexpr std::size_t kMinMaxFrameBytes =
    (max3(kPresenceFrameMax, kLeaseFrameMax, kRegistryFrameMax) + 1023) / 1024 * 1024;
static_assert(kMinMaxFrameBytes <= 1024 * 1024, "the module reads frames of at most 1 MiB");

} // namespace levee::link
