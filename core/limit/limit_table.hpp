// The table of tracked keys of one limit zone, laid out inside a shared
// memory zone: a chained hash table plus an LRU list, linked by 32-bit
// offsets from the zone's base so that an entry costs 28 bytes plus the key
// (48 for global zones) before the slab allocator's rounding. Not
// thread-safe: the caller holds the zone's mutex around every call.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/hash/keyed_hash.hpp"

namespace levee::limit {

struct Allocator {
    void *ctx;
    void *(*alloc)(void *ctx, size_t size); // nullptr when full
    void (*free)(void *ctx, void *p);
};

// kEntryUnavailable (global zones): the key's last lease failed or went
// unanswered, so levee_limit_fail decides for it until a lease succeeds.
// kEntryLeased (global zones): a lease answer for the key has arrived since
// the entry was made; until then a request the key cannot pay for waits a
// little for that first answer instead of being refused.
enum : uint8_t { kEntryDirty = 1, kEntryUnavailable = 2, kEntryLeased = 4 };

struct Entry {
    int64_t tat;       // local: GCRA state, us
    uint32_t hnext;    // next entry in the hash chain
    uint32_t lru_prev; // towards the most recently used
    uint32_t lru_next; // towards the least recently used
    uint32_t hash;
    uint16_t len;
    uint8_t flags;
    uint8_t spare;
};
constexpr size_t kEntryHead = 28; // bytes of Entry before the global part or the key

// What a global zone keeps beside the key: the quota leased to this nginx.
struct GlobalPart {
    int32_t tokens;      // leased and not yet spent
    uint32_t demand;     // requests seen since the last lease request
    uint32_t dirty_prev; // the queue of keys the sync timer must lease for
    uint32_t dirty_next;
    uint32_t pending_ms; // when the outstanding lease request was sent, 0: none
};
constexpr size_t kGlobalPartSize = 20;

// What a zone decided for a request, counted for levee_status.
enum Outcome : uint32_t { kPassed, kDelayed, kRejected, kDryRun, kUnavailable, kOutcomes };

struct TableHeader {
    uint32_t bucket_mask;
    uint32_t buckets; // offset of uint32_t[bucket_mask + 1]
    uint32_t lru_head, lru_tail;
    uint32_t dirty_head, dirty_tail;
    uint32_t extra; // kGlobalPartSize for global zones, else 0
    uint32_t spare;
    uint64_t count;     // entries now
    uint64_t evictions; // entries dropped to make room while still in use
    uint64_t expired;   // idle entries reclaimed
    hash::Seed seed;    // chosen when the zone is made, kept while it lives
    // Counted by every worker without the zone's lock (relaxed atomics).
    uint64_t outcomes[kOutcomes];
    uint64_t first_lease_waits;    // requests that waited for a key's first lease
    uint64_t new_keys_over_budget; // new keys sent to the overflow entry
    uint64_t long_keys[2];         // keys over max_key, by LongKey: hashed, refused
    // The budget of new keys (key_guard.hpp), under the zone's lock.
    int64_t new_key_tat;
};

inline void count(uint64_t &counter) {
    __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
}

// The chain a key falls into depends on the zone's secret seed, so that no
// one can pick keys that share a chain.
uint32_t hash_key(const hash::Seed &seed, const unsigned char *key, size_t len);

// Decides whether an entry holds no state worth keeping (safe to drop).
using IdlePredicate = bool (*)(const Entry *e, int64_t now_us);

class Table {
  public:
    Table(unsigned char *base, TableHeader *h) : base_(base), h_(h) {}

    // Buckets for a zone of `zone_size` bytes: about one per 64 bytes.
    static uint32_t buckets_for(size_t zone_size);
    bool init(const Allocator &a, uint32_t nbuckets, uint32_t extra, const hash::Seed &seed);

    Entry *find(uint32_t hash, const unsigned char *key, uint16_t len) const;
    // Allocates a new entry (tat = 0, global part zeroed) at the LRU head.
    // First reclaims up to two idle entries at the LRU tail; when memory is
    // full, evicts from the tail until the allocation succeeds.
    Entry *insert(const Allocator &a, uint32_t hash, const unsigned char *key, uint16_t len, int64_t now_us,
                  IdlePredicate idle);
    void touch(Entry *e);
    // Every entry, most recently used first: next(nullptr) is the first.
    Entry *next(const Entry *e) const { return at(e ? e->lru_next : h_->lru_head); }
    void remove(const Allocator &a, Entry *e);

    void mark_dirty(Entry *e);
    Entry *pop_dirty();

    GlobalPart *global(Entry *e) const {
        return reinterpret_cast<GlobalPart *>(reinterpret_cast<unsigned char *>(e) + kEntryHead);
    }
    unsigned char *key(Entry *e) const { return reinterpret_cast<unsigned char *>(e) + kEntryHead + h_->extra; }
    size_t entry_size(uint16_t len) const { return kEntryHead + h_->extra + len; }
    const TableHeader &header() const { return *h_; }

  private:
    Entry *at(uint32_t off) const { return off ? reinterpret_cast<Entry *>(base_ + off) : nullptr; }
    uint32_t off(const void *p) const {
        return p ? static_cast<uint32_t>(static_cast<const unsigned char *>(p) - base_) : 0;
    }
    uint32_t *buckets() const { return reinterpret_cast<uint32_t *>(base_ + h_->buckets); }
    void lru_unlink(Entry *e);
    void lru_push_head(Entry *e);
    void dirty_unlink(Entry *e);

    unsigned char *base_;
    TableHeader *h_;
};

} // namespace levee::limit
