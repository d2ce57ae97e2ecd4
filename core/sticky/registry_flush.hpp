// When a worker sends its registry buffer to leveed, and what is lost. The
// records are soft state: a batch that cannot be sent is counted, not
// resent, since the user's next request records the key again.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "core/sticky/registry_buffer.hpp"

namespace levee::sticky {

// Distinct TTLs one flush sends (the TTL is per upstream: upstreams rarely
// differ); records of further TTLs are counted as dropped.
constexpr size_t kFlushMaxTtls = 16;

// The flush timer's interval, cut short once per interval when the buffer
// fills up.
class FlushSchedule {
  public:
    // True when the flush should run now: this put added a key and left the
    // buffer half full, so waiting for the interval would drop keys. Once
    // per interval.
    bool flush_now(RegistryBuffer::Put put, size_t size, size_t max_keys);

    // The timer fired: the next half-full buffer may cut the interval again.
    void fired() { early_ = false; }

  private:
    bool early_ = false;
};

enum class FlushStep {
    kNothing, // empty buffer
    kSend,    // leveed is there: send everything, then clear
    kHold,    // leveed is away and there is room: keep the records for later
    kDiscard, // leveed is away and new keys no longer fit: the newest choices
              // are worth more than the oldest ones, drop the buffer
};

FlushStep flush_step(size_t size, size_t max_keys, bool link_ready);

// A record held longer than its TTL (leveed was away) would bring back a
// choice Redis has already forgotten.
inline bool flush_stale(const RegistryBuffer::Record &r, int64_t now_ms) {
    return now_ms - r.recorded_ms >= static_cast<int64_t>(r.ttl_ms);
}

struct FlushTally {
    uint64_t sent = 0;
    uint64_t dropped = 0; // stale, in a batch that failed, or of a TTL over kFlushMaxTtls
};

// Hands the buffer to `send(ttl_ms, records, n) -> bool` in batches of at
// most `batch_max` records of one TTL, TTLs in the order they first occur,
// records in the buffer's order; `scratch` holds batch_max records. A batch
// `send` refuses is dropped. The buffer is left as it was.
template <class Send>
FlushTally flush_batches(const RegistryBuffer &buf, int64_t now_ms, RegistryBuffer::Record *scratch, size_t batch_max,
                         Send &&send) {
    FlushTally tally;
    std::array<uint32_t, kFlushMaxTtls> ttls{};
    size_t nttls = 0;

    auto seen = [&](uint32_t ttl) {
        for (size_t k = 0; k < nttls; k++) {
            if (ttls[k] == ttl) {
                return true;
            }
        }
        return false;
    };

    for (;;) {
        bool found = false;
        uint32_t ttl = 0;
        buf.for_each([&](const RegistryBuffer::Record &r) {
            if (!found && !seen(r.ttl_ms)) {
                ttl = r.ttl_ms;
                found = true;
            }
        });
        if (!found) {
            return tally;
        }

        if (nttls == ttls.size()) {
            buf.for_each([&](const RegistryBuffer::Record &r) {
                if (!seen(r.ttl_ms)) {
                    tally.dropped++;
                }
            });
            return tally;
        }
        ttls[nttls++] = ttl;

        size_t n = 0;
        auto send_batch = [&]() {
            if (n == 0) {
                return;
            }
            if (send(ttl, static_cast<const RegistryBuffer::Record *>(scratch), n)) {
                tally.sent += n;
            } else {
                tally.dropped += n;
            }
            n = 0;
        };

        buf.for_each([&](const RegistryBuffer::Record &r) {
            if (r.ttl_ms != ttl) {
                return;
            }
            if (flush_stale(r, now_ms)) {
                tally.dropped++;
                return;
            }
            scratch[n++] = r;
            if (n == batch_max) {
                send_batch();
            }
        });
        send_batch();
    }
}

} // namespace levee::sticky
