// Counters that nginx's workers share through the levee_status zone, for
// what has no shared memory of its own (a worker's link to leveed, sticky
// picks, heartbeat batch sizes). Each is added to with a relaxed atomic:
// workers never wait for each other to count, and a reader sees each
// counter whole (64-bit aligned) though not all of them at one instant.
#pragma once

#include <cstddef>
#include <cstdint>

namespace levee::status {

constexpr uint32_t kBlockMagic = 0x4c565354; // "LVST"; a new layout, a new magic
constexpr std::size_t kMaxWorkers = 256;     // more share the last slot
constexpr std::size_t kMaxStickyServers = 4096;
constexpr std::size_t kBatchBuckets = 6;
// Upper bounds of heartbeat flush batch sizes, records.
constexpr double kBatchBounds[kBatchBuckets] = {1, 10, 100, 1000, 10000, 100000};

struct LinkCounters {
    uint64_t up;       // 1 while leveed has accepted this worker's hello
    uint64_t connects; // hellos accepted
    uint64_t losses;   // ready links lost
    uint64_t frames_sent;
    uint64_t frames_received;
    uint64_t pid; // the worker that last used this slot
};

enum RegistryResult : std::size_t {
    kRegistryAdded,
    kRegistryUpdated,
    kRegistryFull,
    kRegistryOversized,
    kRegistryResults
};

struct Block {
    uint32_t magic;
    uint32_t spare;
    LinkCounters link[kMaxWorkers];
    uint64_t batch_buckets[kBatchBuckets]; // a bucket's own count
    uint64_t batch_count;
    uint64_t batch_records;
    uint64_t registry[kRegistryResults];
    uint64_t sticky_picks[kMaxStickyServers];
};

inline void add(uint64_t &counter, uint64_t by = 1) {
    __atomic_fetch_add(&counter, by, __ATOMIC_RELAXED);
}
inline void store(uint64_t &gauge, uint64_t v) {
    __atomic_store_n(&gauge, v, __ATOMIC_RELAXED);
}
inline uint64_t load(const uint64_t &c) {
    return __atomic_load_n(&c, __ATOMIC_RELAXED);
}

// The slot of worker `worker` (ngx_worker).
inline LinkCounters &link_slot(Block &b, std::size_t worker) {
    return b.link[worker < kMaxWorkers ? worker : kMaxWorkers - 1];
}

// Counts one heartbeat flush batch of `records` records.
void count_batch(Block &b, uint64_t records);

} // namespace levee::status
