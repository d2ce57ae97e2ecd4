#include "core/presence/presence_table.hpp"

#include <cstdint>
#include <cstring>

namespace levee::presence {

namespace {

// "LPT2": LPT1 had no seed in its header and hashed with FNV-1a.
constexpr uint32_t kMagic = 0x4c505432;

uint32_t align_up(uint32_t v, uint32_t a) {
    return (v + a - 1) / a * a;
}

} // namespace

const char *check_key(const unsigned char *p, size_t len, size_t max, bool may_be_empty) {
    if (len == 0) {
        return may_be_empty ? nullptr : "empty key";
    }
    if (len > max) {
        return "key too long";
    }
    for (size_t i = 0; i < len; i++) {
        const unsigned char c = p[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == ',') {
            return "invalid character in key";
        }
    }
    return nullptr;
}

uint32_t hash_key(const hash::Seed &seed, const Key &k) {
    static const unsigned char sep = 0xff; // never in a checked key: "a"+"bc" != "ab"+"c"
    hash::SipHasher13 h(seed);
    h.update(k.user, k.ulen);
    h.update(&sep, 1);
    h.update(k.room, k.rlen);
    return static_cast<uint32_t>(h.finish());
}

bool Table::init(size_t bytes, const hash::Seed &seed) {
    if (bytes > 0xffffffffu || bytes < sizeof(Header) + 4096) {
        return false;
    }
    std::memset(h_, 0, sizeof(Header));
    // One bucket per 128 bytes: a chain of about two entries at full load.
    uint32_t n = 1;
    while (n * 2 <= bytes / 128) {
        n *= 2;
    }
    h_->bucket_mask = n - 1;
    h_->buckets = align_up(sizeof(Header), 8);
    std::memset(buckets(), 0, n * sizeof(uint32_t));
    h_->arena = align_up(h_->buckets + n * sizeof(uint32_t), kChunkUnit);
    h_->bump = h_->arena;
    h_->end = static_cast<uint32_t>(bytes) / kChunkUnit * kChunkUnit;
    h_->seed = seed;
    h_->magic = kMagic;
    return h_->arena < h_->end;
}

bool Table::valid() const {
    return h_->magic == kMagic;
}

int Table::ttl_index(uint32_t ttl_ms) {
    for (uint32_t i = 0; i < h_->nttls; i++) {
        if (h_->ttls[i] == ttl_ms) {
            return static_cast<int>(i);
        }
    }
    if (h_->nttls == kMaxTtls) {
        return -1;
    }
    h_->ttls[h_->nttls] = ttl_ms;
    return static_cast<int>(h_->nttls++);
}

Entry *Table::find_mut(const Key &k, uint32_t **link) const {
    uint32_t *l = &buckets()[hash_key(h_->seed, k) & h_->bucket_mask];
    for (Entry *e = at(*l); e != nullptr; l = &e->hnext, e = at(e->hnext)) {
        if (e->ulen == k.ulen && e->rlen == k.rlen) {
            const unsigned char *b = reinterpret_cast<const unsigned char *>(e + 1);
            // (a room may be null when empty: no memcmp of it then, see beat())
            if ((k.ulen == 0 || std::memcmp(b, k.user, k.ulen) == 0) &&
                (k.rlen == 0 || std::memcmp(b + k.ulen, k.room, k.rlen) == 0)) {
                if (link != nullptr) {
                    *link = l;
                }
                return e;
            }
        }
    }
    return nullptr;
}

const Entry *Table::find(const Key &k) const {
    return find_mut(k, nullptr);
}

Entry *Table::alloc(size_t size) {
    const size_t cls = size / kChunkUnit;
    if (h_->free_head[cls] != 0) {
        Entry *e = at(h_->free_head[cls]);
        h_->free_head[cls] = e->hnext;
        return e;
    }
    if (h_->end - h_->bump < size) {
        return nullptr;
    }
    Entry *e = at(h_->bump);
    h_->bump += static_cast<uint32_t>(size);
    return e;
}

void Table::release(Entry *e, uint32_t *link) {
    const size_t size = chunk_size(e->ulen, e->rlen);
    *link = e->hnext;
    e->hnext = h_->free_head[size / kChunkUnit];
    h_->free_head[size / kChunkUnit] = off(e);
    h_->count--;
    h_->bytes -= size;
}

void Table::unlink(Entry *e) {
    uint32_t &head = (e->state & kStateDirty) ? h_->dirty_head : h_->infl_head;
    uint32_t &tail = (e->state & kStateDirty) ? h_->dirty_tail : h_->infl_tail;
    if (e->prev) {
        at(e->prev)->next = e->next;
    } else {
        head = e->next;
    }
    if (e->next) {
        at(e->next)->prev = e->prev;
    } else {
        tail = e->prev;
    }
    if (e->state & kStateDirty) {
        h_->dirty--;
    }
    e->prev = e->next = 0;
    e->state = 0;
}

void Table::push_dirty(Entry *e) {
    e->state = kStateDirty;
    e->batch = 0;
    e->next = 0;
    e->prev = h_->dirty_tail;
    if (h_->dirty_tail) {
        at(h_->dirty_tail)->next = off(e);
    } else {
        h_->dirty_head = off(e);
    }
    h_->dirty_tail = off(e);
    h_->dirty++;
}

void Table::push_inflight(Entry *e) {
    e->state = kStateInflight;
    e->next = 0;
    e->prev = h_->infl_tail;
    if (h_->infl_tail) {
        at(h_->infl_tail)->next = off(e);
    } else {
        h_->infl_head = off(e);
    }
    h_->infl_tail = off(e);
}

void Table::to_dirty(Entry *e) {
    unlink(e);
    push_dirty(e);
    h_->c.requeued++;
}

BeatResult Table::beat(const Key &k, int64_t now_ms, uint8_t ttl, uint64_t backlog_limit) {
    if (h_->retired) {
        return BeatResult::kRetired;
    }
    Entry *e = find_mut(k, nullptr);
    if (e != nullptr) {
        if (now_ms > e->last_seen_ms) {
            e->last_seen_ms = now_ms;
            if (e->state & kStateInflight) {
                e->state |= kStateAgain;
            }
        }
        e->ttl = ttl; // the latest location's ttl wins
        h_->c.beats++;
        h_->c.coalesced++;
        return BeatResult::kCoalesced;
    }
    if (h_->count >= backlog_limit) {
        h_->c.backlog++;
        return BeatResult::kBacklog;
    }
    const size_t size = chunk_size(k.ulen, k.rlen);
    e = alloc(size);
    if (e == nullptr) {
        h_->c.full++;
        return BeatResult::kFull;
    }
    std::memset(e, 0, sizeof(Entry));
    e->last_seen_ms = now_ms;
    e->ulen = static_cast<uint8_t>(k.ulen);
    e->rlen = static_cast<uint8_t>(k.rlen);
    e->ttl = ttl;
    // A key without a room has a null room: memcpy from null is undefined
    // even for no bytes.
    if (k.ulen > 0) {
        std::memcpy(bytes(e), k.user, k.ulen);
    }
    if (k.rlen > 0) {
        std::memcpy(bytes(e) + k.ulen, k.room, k.rlen);
    }
    uint32_t *b = &buckets()[hash_key(h_->seed, k) & h_->bucket_mask];
    e->hnext = *b;
    *b = off(e);
    push_dirty(e);
    h_->count++;
    h_->bytes += size;
    h_->c.beats++;
    return BeatResult::kStored;
}

size_t Table::adopt(Table &old) {
    const Counters kept = h_->c;
    size_t lost = 0;
    const uint32_t heads[] = {old.h_->dirty_head, old.h_->infl_head};
    for (uint32_t head : heads) {
        for (Entry *e = old.at(head); e != nullptr; e = old.at(e->next)) {
            const int ttl = ttl_index(old.ttl_ms(e->ttl));
            const Key k = {old.bytes(e), e->ulen, old.bytes(e) + e->ulen, e->rlen};
            const BeatResult r =
                ttl < 0 ? BeatResult::kFull : beat(k, e->last_seen_ms, static_cast<uint8_t>(ttl), UINT64_MAX);
            lost += r == BeatResult::kFull;
        }
    }
    h_->c = kept; // not beats of this table's clients
    old.h_->retired = 1;
    return lost;
}

size_t Table::take(uint32_t batch, uint32_t now, Taken *out, size_t max, unsigned char *buf, size_t buf_size,
                   uint32_t *ttl_ms) {
    size_t n = 0, used = 0;
    int ttl = -1;
    // Entries of another ttl are skipped over, not taken: they go in another batch.
    Entry *e = at(h_->dirty_head);
    for (size_t visited = 0; e != nullptr && n < max && visited < 4 * max; visited++) {
        Entry *next = at(e->next);
        if (ttl >= 0 && e->ttl != ttl) {
            e = next;
            continue;
        }
        const size_t len = e->ulen + e->rlen;
        if (used + len > buf_size) {
            break;
        }
        ttl = e->ttl;
        std::memcpy(buf + used, bytes(e), len);
        out[n] = Taken{static_cast<uint32_t>(used), e->ulen, e->rlen, e->last_seen_ms};
        used += len;
        n++;
        unlink(e);
        e->batch = batch;
        e->sent_at = now;
        push_inflight(e);
        e = next;
    }
    if (ttl_ms != nullptr) {
        *ttl_ms = ttl >= 0 ? h_->ttls[ttl] : 0;
    }
    if (n > 0) {
        h_->c.sent += n;
        h_->c.batches++;
    }
    return n;
}

size_t Table::settle(uint32_t batch, const Taken *recs, size_t n, const unsigned char *buf, bool ok) {
    size_t settled = 0;
    for (size_t i = 0; i < n; i++) {
        const Key k{buf + recs[i].off, recs[i].ulen, buf + recs[i].off + recs[i].ulen, recs[i].rlen};
        uint32_t *link = nullptr;
        Entry *e = find_mut(k, &link);
        if (e == nullptr || !(e->state & kStateInflight) || e->batch != batch) {
            continue;
        }
        settled++;
        if (!ok || (e->state & kStateAgain) || e->last_seen_ms > recs[i].last_seen_ms) {
            to_dirty(e);
            continue;
        }
        unlink(e);
        release(e, link);
        h_->c.acked++;
    }
    return settled;
}

size_t Table::sweep(uint32_t now, uint32_t timeout_ms) {
    size_t n = 0;
    for (Entry *e = at(h_->infl_head); e != nullptr && now - e->sent_at >= timeout_ms && now - e->sent_at < 0x80000000u;
         e = at(h_->infl_head)) {
        to_dirty(e);
        n++;
    }
    return n;
}

size_t Table::requeue_slot(uint32_t slot) {
    size_t n = 0;
    for (Entry *e = at(h_->infl_head); e != nullptr;) {
        Entry *next = at(e->next);
        if ((e->batch & 0xff) == (slot & 0xff)) {
            to_dirty(e);
            n++;
        }
        e = next;
    }
    return n;
}

} // namespace levee::presence
