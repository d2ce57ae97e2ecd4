#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/limit/limit_table.hpp"

using namespace levee::limit;

namespace {

// A bump arena with a byte budget, standing in for nginx's slab pool.
struct Arena {
    std::vector<unsigned char> mem = std::vector<unsigned char>(1 << 20);
    size_t used = 64; // offset 0 means "none"
    size_t live = 0, budget = 0;

    static void *alloc(void *ctx, size_t n) {
        auto *a = static_cast<Arena *>(ctx);
        n = (n + 7) & ~size_t(7);
        if (a->live + n > a->budget || a->used + n + 8 > a->mem.size()) {
            return nullptr;
        }
        auto *p = a->mem.data() + a->used;
        std::memcpy(p, &n, sizeof(n));
        a->used += n + 8;
        a->live += n;
        return p + 8;
    }
    static void free(void *ctx, void *p) {
        auto *a = static_cast<Arena *>(ctx);
        size_t n;
        std::memcpy(&n, static_cast<unsigned char *>(p) - 8, sizeof(n));
        a->live -= n;
    }
    Allocator allocator() { return {this, alloc, free}; }
};

const levee::hash::Seed kSeed = {0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};

bool never_idle(const Entry *, int64_t) { return false; }
bool always_idle(const Entry *, int64_t) { return true; }

const unsigned char *u(const std::string &s) { return reinterpret_cast<const unsigned char *>(s.data()); }

} // namespace

TEST(LimitTable, EntryIs28BytesPlusKey) {
    EXPECT_EQ(kEntryHead, 28u);
    Arena a;
    a.budget = 1 << 16;
    TableHeader h;
    Table t(a.mem.data(), &h);
    ASSERT_TRUE(t.init(a.allocator(), 64, 0, kSeed));
    EXPECT_EQ(t.entry_size(4), 32u);
    Table g(a.mem.data(), &h);
    h.extra = kGlobalPartSize;
    EXPECT_EQ(g.entry_size(4), 52u);
}

TEST(LimitTable, FindInsertRemove) {
    Arena a;
    a.budget = 1 << 16;
    TableHeader h;
    Table t(a.mem.data(), &h);
    ASSERT_TRUE(t.init(a.allocator(), 4, 0, kSeed)); // few buckets: chains
    for (int i = 0; i < 50; i++) {
        std::string k = "key" + std::to_string(i);
        Entry *e = t.insert(a.allocator(), hash_key(kSeed, u(k), k.size()), u(k), k.size(), 0, never_idle);
        ASSERT_NE(e, nullptr);
        e->tat = i;
    }
    EXPECT_EQ(h.count, 50u);
    for (int i = 0; i < 50; i++) {
        std::string k = "key" + std::to_string(i);
        Entry *e = t.find(hash_key(kSeed, u(k), k.size()), u(k), k.size());
        ASSERT_NE(e, nullptr);
        EXPECT_EQ(e->tat, i);
    }
    std::string k = "key7";
    t.remove(a.allocator(), t.find(hash_key(kSeed, u(k), 4), u(k), 4));
    EXPECT_EQ(t.find(hash_key(kSeed, u(k), 4), u(k), 4), nullptr);
    EXPECT_EQ(h.count, 49u);
}

TEST(LimitTable, EvictsTheLeastRecentlyUsedWhenFull) {
    Arena a;
    TableHeader h;
    Table t(a.mem.data(), &h);
    a.budget = 4 * 64 + 10 * 32;
    ASSERT_TRUE(t.init(a.allocator(), 64, 0, kSeed));
    auto ins = [&](const std::string &k) {
        return t.insert(a.allocator(), hash_key(kSeed, u(k), k.size()), u(k), k.size(), 0, never_idle);
    };
    auto has = [&](const std::string &k) { return t.find(hash_key(kSeed, u(k), k.size()), u(k), k.size()) != nullptr; };
    for (int i = 0; i < 10; i++) {
        ASSERT_NE(ins("k00" + std::to_string(i)), nullptr);
    }
    EXPECT_EQ(h.evictions, 0u);
    t.touch(t.find(hash_key(kSeed, u("k000"), 4), u("k000"), 4)); // k000 is recent now
    ASSERT_NE(ins("new1"), nullptr);
    EXPECT_EQ(h.evictions, 1u);
    EXPECT_TRUE(has("k000"));
    EXPECT_FALSE(has("k001"));
    EXPECT_TRUE(has("new1"));
}

TEST(LimitTable, ReclaimsIdleEntriesFirst) {
    Arena a;
    a.budget = 1 << 16;
    TableHeader h;
    Table t(a.mem.data(), &h);
    ASSERT_TRUE(t.init(a.allocator(), 64, 0, kSeed));
    for (std::string k : {"a", "b", "c"}) {
        t.insert(a.allocator(), hash_key(kSeed, u(k), 1), u(k), 1, 0, never_idle);
    }
    std::string d = "d";
    t.insert(a.allocator(), hash_key(kSeed, u(d), 1), u(d), 1, 0, always_idle);
    EXPECT_EQ(h.expired, 2u);
    EXPECT_EQ(h.count, 2u);
}

TEST(LimitTable, DirtyQueueIsFifoAndSurvivesRemoval) {
    Arena a;
    a.budget = 1 << 16;
    TableHeader h;
    Table t(a.mem.data(), &h);
    ASSERT_TRUE(t.init(a.allocator(), 64, kGlobalPartSize, kSeed));
    std::vector<Entry *> es;
    for (std::string k : {"a", "b", "c"}) {
        es.push_back(t.insert(a.allocator(), hash_key(kSeed, u(k), 1), u(k), 1, 0, never_idle));
        t.global(es.back())->tokens = 7;
        EXPECT_EQ(*t.key(es.back()), static_cast<unsigned char>(k[0]));
    }
    t.mark_dirty(es[0]);
    t.mark_dirty(es[1]);
    t.mark_dirty(es[0]); // already queued
    t.mark_dirty(es[2]);
    t.remove(a.allocator(), es[1]);
    EXPECT_EQ(t.pop_dirty(), es[0]);
    EXPECT_EQ(t.pop_dirty(), es[2]);
    EXPECT_EQ(t.pop_dirty(), nullptr);
    EXPECT_EQ(t.global(es[2])->tokens, 7);
}

TEST(LimitTable, NextVisitsEveryEntryOnce) {
    Arena a;
    a.budget = 1 << 16;
    TableHeader h;
    Table t(a.mem.data(), &h);
    ASSERT_TRUE(t.init(a.allocator(), 4, 0, kSeed));
    EXPECT_EQ(t.next(nullptr), nullptr);
    for (int i = 0; i < 20; i++) {
        std::string k = "key" + std::to_string(i);
        t.insert(a.allocator(), hash_key(kSeed, u(k), k.size()), u(k), k.size(), 0, never_idle)->tat = 1;
    }
    int seen = 0;
    for (Entry *e = t.next(nullptr); e != nullptr; e = t.next(e)) {
        seen += static_cast<int>(e->tat);
    }
    EXPECT_EQ(seen, 20);
}

namespace {

// The hash the tables used before they were seeded.
uint32_t fnv1a(const std::string &k) {
    uint32_t h = 2166136261u;
    for (unsigned char c : k) {
        h ^= c;
        h *= 16777619u;
    }
    return h;
}

size_t longest_chain(Arena &a, const Table &t) {
    const TableHeader &h = t.header();
    const auto *buckets = reinterpret_cast<const uint32_t *>(a.mem.data() + h.buckets);
    size_t longest = 0;
    for (uint32_t b = 0; b <= h.bucket_mask; b++) {
        size_t n = 0;
        for (uint32_t off = buckets[b]; off != 0; off = reinterpret_cast<const Entry *>(a.mem.data() + off)->hnext) {
            n++;
        }
        longest = std::max(longest, n);
    }
    return longest;
}

} // namespace

// Keys crafted offline against the unseeded FNV-1a all fall into bucket 0
// of a 1024-bucket table: one chain of 4096 under the old hash, walked on
// every request under the zone's lock. Under the seeded hash they spread.
TEST(LimitTable, AFloodCraftedAgainstFnvSpreadsUnderTheSeededHash) {
    constexpr uint32_t kBuckets = 1024;
    constexpr size_t kKeys = 4096;
    std::vector<std::string> flood;
    for (uint64_t i = 0; flood.size() < kKeys; i++) {
        std::string k = "k" + std::to_string(i);
        if ((fnv1a(k) & (kBuckets - 1)) == 0) {
            flood.push_back(std::move(k));
        }
    }
    {
        // The flood is real: under the old hash the table is one chain.
        Arena a;
        a.budget = a.mem.size();
        TableHeader h;
        Table t(a.mem.data(), &h);
        ASSERT_TRUE(t.init(a.allocator(), kBuckets, 0, kSeed));
        for (const std::string &k : flood) {
            ASSERT_NE(t.insert(a.allocator(), fnv1a(k), u(k), k.size(), 0, never_idle), nullptr);
        }
        ASSERT_EQ(longest_chain(a, t), kKeys);
    }
    for (const levee::hash::Seed &seed : {kSeed, levee::hash::Seed{42, 4242}}) {
        Arena a;
        a.budget = a.mem.size();
        TableHeader h;
        Table t(a.mem.data(), &h);
        ASSERT_TRUE(t.init(a.allocator(), kBuckets, 0, seed));
        for (const std::string &k : flood) {
            ASSERT_NE(t.insert(a.allocator(), hash_key(seed, u(k), k.size()), u(k), k.size(), 0, never_idle), nullptr);
        }
        ASSERT_EQ(h.count, kKeys);
        ASSERT_EQ(h.evictions, 0u);
        // 4 a bucket on average; a chain 4 times that is already far-fetched.
        const size_t longest = longest_chain(a, t);
        EXPECT_LE(longest, 16u);
        RecordProperty("longest_chain_seed_" + std::to_string(seed.k0), static_cast<int>(longest));
    }
}
