// The presence table of the heartbeat module, laid out in one region of a
// shared memory zone: the beats that nginx answered 204 and that leveed has
// not acknowledged yet, one entry per (user, room), coalesced.
//
// An entry is on one of two lists: dirty (waiting for a flush) or in flight
// (sent in a batch, waiting for its ack). An ack frees it, unless a newer
// beat arrived meanwhile, which sends it to the dirty list again; a refused
// batch, a lost link, a worker that died or an ack that never came send it
// back to the dirty list. So an entry leaves the table only when leveed has
// acknowledged its latest last_seen: a beat answered 204 is never dropped.
//
// Memory is managed here, not by nginx's slab allocator, whose power-of-two
// rounding would double the size of most entries: chunks come in 16-byte
// size classes from a bump region, with one free list per class. Everything
// is linked by 32-bit offsets from the region's base, so the table works at
// any address. Not thread-safe: the caller holds the zone's mutex.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/hash/keyed_hash.hpp"

namespace levee::presence {

constexpr size_t kMaxUserBytes = 255;
constexpr size_t kMaxRoomBytes = 255;
constexpr size_t kMaxTtls = 16;
constexpr size_t kChunkUnit = 16;
constexpr size_t kClasses = (32 + kMaxUserBytes + kMaxRoomBytes) / kChunkUnit + 2;

enum : uint8_t {
    kStateDirty = 1,
    kStateInflight = 2,
    kStateAgain = 4, // a newer beat arrived while in flight: send again after the ack
};

struct Entry {
    int64_t last_seen_ms; // wall clock of the latest beat
    uint32_t hnext;       // next entry in the hash chain
    uint32_t prev, next;  // on the dirty or the in-flight list
    uint32_t batch;       // the batch carrying it while in flight
    uint32_t sent_at;     // monotonic ms of that send
    uint8_t ulen, rlen;   // user, then room bytes follow the entry
    uint8_t ttl;          // index into Header::ttls
    uint8_t state;
};
static_assert(sizeof(Entry) == 32, "an entry head is 32 bytes");

struct Counters {
    uint64_t beats;     // beats stored (answered 204)
    uint64_t coalesced; // of which updated an entry already waiting
    uint64_t full;      // beats refused: no memory
    uint64_t backlog;   // beats refused: too many users waiting for an ack
    uint64_t bad_key;   // beats refused: empty, oversized or malformed key (counted by the caller)
    uint64_t sent;      // records sent in batches
    uint64_t acked;     // records acknowledged and freed
    uint64_t requeued;  // records sent again: refused batch, lost link, dead worker, timeout
    uint64_t batches;   // batches sent
};

struct Header {
    uint32_t magic;
    uint32_t bucket_mask;
    uint32_t buckets; // offset of uint32_t[bucket_mask + 1]
    uint32_t arena, bump, end;
    uint32_t dirty_head, dirty_tail;
    uint32_t infl_head, infl_tail;
    uint32_t next_seq;
    uint32_t nttls;
    uint32_t ttls[kMaxTtls]; // ms
    uint32_t free_head[kClasses];
    uint64_t count; // entries now
    uint64_t dirty; // of which on the dirty list
    uint64_t bytes; // chunk bytes in use
    Counters c;
    uint32_t retired; // adopted by a new table: refuses beats from then on
    uint32_t cycles;  // reloads that kept the table: whose workers own it now
    hash::Seed seed;  // of the chains, chosen by init(): secret from clients
};

struct Key {
    const unsigned char *user;
    size_t ulen;
    const unsigned char *room;
    size_t rlen;
};

// What a flush copied out of the table (user and room bytes in the caller's buffer).
struct Taken {
    uint32_t off; // into the buffer: user, then room
    uint8_t ulen, rlen;
    int64_t last_seen_ms;
};

enum class BeatResult { kStored, kCoalesced, kFull, kBacklog, kRetired };

// nullptr when the key may be recorded, else a short reason for a 400.
// Users and rooms are printable ASCII without spaces, quotes or backslashes,
// so that they go into JSON and Redis keys as they are.
const char *check_key(const unsigned char *p, size_t len, size_t max, bool may_be_empty);

class Table {
  public:
    explicit Table(unsigned char *base) : base_(base), h_(reinterpret_cast<Header *>(base)) {}

    // Formats a region of `bytes` bytes (at most 4 GiB) starting at base.
    bool init(size_t bytes, const hash::Seed &seed);
    bool valid() const;

    // The index of a ttl, added if new; -1 when kMaxTtls are taken.
    int ttl_index(uint32_t ttl_ms);
    uint32_t ttl_ms(uint8_t index) const { return h_->ttls[index]; }

    // Records a beat. A new entry is refused when `backlog_limit` entries
    // wait; every beat once the table is retired.
    BeatResult beat(const Key &k, int64_t now_ms, uint8_t ttl, uint64_t backlog_limit);

    // Moves up to `max` dirty entries of one ttl to the in-flight list under
    // `batch`, copying them out; stops early when `buf` is full. Returns how
    // many, with their ttl in *ttl_ms.
    size_t take(uint32_t batch, uint32_t now, Taken *out, size_t max, unsigned char *buf, size_t buf_size,
                uint32_t *ttl_ms);
    // The answer to a batch: ok frees what it carried (or sends again what
    // got a newer beat meanwhile); not ok sends it all again. Entries no
    // longer carried by `batch` (swept, re-sent by another worker) are left.
    size_t settle(uint32_t batch, const Taken *recs, size_t n, const unsigned char *buf, bool ok);
    // Sends again what has waited `timeout_ms` for its ack.
    size_t sweep(uint32_t now, uint32_t timeout_ms);
    // Sends again what batches of worker `slot` carry (a new worker takes over its slot).
    size_t requeue_slot(uint32_t slot);

    // Copies every entry of `old` (waiting or in flight) into this table, to
    // be sent again, and retires `old` so that it stores no beat after the
    // copy. Returns how many entries did not fit (they are lost).
    size_t adopt(Table &old);

    uint32_t next_batch(uint32_t slot) { return (++h_->next_seq << 8) | (slot & 0xff); }

    // A reload kept the table: its new workers share it with the old ones,
    // which are about to exit and leave what waits to them.
    void next_cycle() { h_->cycles++; }

    const Entry *find(const Key &k) const;
    const Header &header() const { return *h_; }
    Counters &counters() { return h_->c; }
    static size_t chunk_size(size_t ulen, size_t rlen) {
        return (sizeof(Entry) + ulen + rlen + kChunkUnit - 1) / kChunkUnit * kChunkUnit;
    }
    size_t capacity_bytes() const { return h_->end - h_->arena; }

  private:
    Entry *at(uint32_t off) const { return off ? reinterpret_cast<Entry *>(base_ + off) : nullptr; }
    uint32_t off(const void *p) const {
        return p ? static_cast<uint32_t>(static_cast<const unsigned char *>(p) - base_) : 0;
    }
    uint32_t *buckets() const { return reinterpret_cast<uint32_t *>(base_ + h_->buckets); }
    unsigned char *bytes(Entry *e) const { return reinterpret_cast<unsigned char *>(e + 1); }
    Entry *find_mut(const Key &k, uint32_t **link) const;
    Entry *alloc(size_t size);
    void release(Entry *e, uint32_t *link);
    void unlink(Entry *e);
    void push_dirty(Entry *e);
    void push_inflight(Entry *e);
    void to_dirty(Entry *e);

    unsigned char *base_;
    Header *h_;
};

uint32_t hash_key(const hash::Seed &seed, const Key &k);

} // namespace levee::presence
