#include "core/limit/limit_table.hpp"

#include <cstring>

namespace levee::limit {

static_assert(sizeof(Entry) == 32 && offsetof(Entry, spare) + 1 == kEntryHead, "Entry layout");
static_assert(sizeof(GlobalPart) == kGlobalPartSize, "GlobalPart layout");

uint32_t hash_key(const hash::Seed &seed, const unsigned char *key, size_t len) {
    return static_cast<uint32_t>(hash::siphash13(seed, key, len));
}

uint32_t Table::buckets_for(size_t zone_size) {
    uint32_t n = 64;
    while (n < zone_size / 64 && n < (1u << 24)) {
        n <<= 1;
    }
    return n;
}

bool Table::init(const Allocator &a, uint32_t nbuckets, uint32_t extra, const hash::Seed &seed) {
    void *b = a.alloc(a.ctx, sizeof(uint32_t) * nbuckets);
    if (b == nullptr) {
        return false;
    }
    std::memset(b, 0, sizeof(uint32_t) * nbuckets);
    std::memset(h_, 0, sizeof(*h_));
    h_->bucket_mask = nbuckets - 1;
    h_->buckets = off(b);
    h_->extra = extra;
    h_->seed = seed;
    return true;
}

Entry *Table::find(uint32_t hash, const unsigned char *k, uint16_t len) const {
    for (Entry *e = at(buckets()[hash & h_->bucket_mask]); e != nullptr; e = at(e->hnext)) {
        if (e->hash == hash && e->len == len && std::memcmp(key(e), k, len) == 0) {
            return e;
        }
    }
    return nullptr;
}

void Table::lru_unlink(Entry *e) {
    if (Entry *p = at(e->lru_prev)) {
        p->lru_next = e->lru_next;
    } else {
        h_->lru_head = e->lru_next;
    }
    if (Entry *n = at(e->lru_next)) {
        n->lru_prev = e->lru_prev;
    } else {
        h_->lru_tail = e->lru_prev;
    }
    e->lru_prev = e->lru_next = 0;
}

void Table::lru_push_head(Entry *e) {
    e->lru_prev = 0;
    e->lru_next = h_->lru_head;
    if (Entry *n = at(h_->lru_head)) {
        n->lru_prev = off(e);
    } else {
        h_->lru_tail = off(e);
    }
    h_->lru_head = off(e);
}

void Table::touch(Entry *e) {
    if (h_->lru_head == off(e)) {
        return;
    }
    lru_unlink(e);
    lru_push_head(e);
}

void Table::dirty_unlink(Entry *e) {
    GlobalPart *g = global(e);
    if (Entry *p = at(g->dirty_prev)) {
        global(p)->dirty_next = g->dirty_next;
    } else {
        h_->dirty_head = g->dirty_next;
    }
    if (Entry *n = at(g->dirty_next)) {
        global(n)->dirty_prev = g->dirty_prev;
    } else {
        h_->dirty_tail = g->dirty_prev;
    }
    g->dirty_prev = g->dirty_next = 0;
    e->flags &= static_cast<uint8_t>(~kEntryDirty);
}

void Table::mark_dirty(Entry *e) {
    if (h_->extra == 0 || (e->flags & kEntryDirty)) {
        return;
    }
    GlobalPart *g = global(e);
    g->dirty_next = 0;
    g->dirty_prev = h_->dirty_tail;
    if (Entry *t = at(h_->dirty_tail)) {
        global(t)->dirty_next = off(e);
    } else {
        h_->dirty_head = off(e);
    }
    h_->dirty_tail = off(e);
    e->flags |= kEntryDirty;
}

Entry *Table::pop_dirty() {
    Entry *e = at(h_->dirty_head);
    if (e != nullptr) {
        dirty_unlink(e);
    }
    return e;
}

void Table::remove(const Allocator &a, Entry *e) {
    uint32_t *slot = &buckets()[e->hash & h_->bucket_mask];
    while (*slot != off(e)) {
        slot = &at(*slot)->hnext;
    }
    *slot = e->hnext;
    lru_unlink(e);
    if (e->flags & kEntryDirty) {
        dirty_unlink(e);
    }
    h_->count--;
    a.free(a.ctx, e);
}

Entry *Table::insert(const Allocator &a, uint32_t hash, const unsigned char *k, uint16_t len, int64_t now_us,
                     IdlePredicate idle) {
    // Amortised reclaim, as limit_req does: an idle entry is worth nothing.
    for (int i = 0; i < 2; i++) {
        Entry *t = at(h_->lru_tail);
        if (t == nullptr || !idle(t, now_us)) {
            break;
        }
        remove(a, t);
        h_->expired++;
    }
    void *p;
    while ((p = a.alloc(a.ctx, entry_size(len))) == nullptr) {
        Entry *t = at(h_->lru_tail);
        if (t == nullptr) {
            return nullptr;
        }
        if (idle(t, now_us)) {
            h_->expired++;
        } else {
            h_->evictions++;
        }
        remove(a, t);
    }
    Entry *e = static_cast<Entry *>(p);
    std::memset(e, 0, kEntryHead + h_->extra);
    e->hash = hash;
    e->len = len;
    std::memcpy(key(e), k, len);
    uint32_t *slot = &buckets()[hash & h_->bucket_mask];
    e->hnext = *slot;
    *slot = off(e);
    lru_push_head(e);
    h_->count++;
    return e;
}

} // namespace levee::limit
