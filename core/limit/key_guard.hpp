// What a limit zone does with keys a client chooses: over-long keys are
// replaced by a digest or refused, and new keys are let into the table at a
// bounded rate, so that a flood of forged keys neither grows one entry to
// 64 KiB nor evicts every other key's state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/limit/gcra.hpp"
#include "core/limit/rate_parse.hpp"

namespace levee::limit {

enum class LongKey : uint8_t { kHash, kRefuse };

// Keys that begin with kReservedPrefix are Levee's own: a client's key with
// that beginning is always replaced by its digest, so no client key can
// equal a digest of another key or the overflow key.
constexpr std::string_view kReservedPrefix = "~levee:";
constexpr std::string_view kDigestPrefix = "~levee:sha256:";
constexpr size_t kDigestKeyLen = 14 + 64; // the prefix and the hex SHA-256
// The one entry every new key over the zone's budget shares.
constexpr std::string_view kOverflowKey = "~levee:overflow";

constexpr size_t kDefaultMaxKey = 256;
constexpr size_t kMaxMaxKey = 65535; // Entry::len
constexpr Rate kDefaultNewKeys = {1000, 1};

enum class KeyShape : uint8_t { kAsIs, kDigest, kRefused };

// Decides what a zone keeps for `key`: the key itself; its digest, written
// to `digest` (kDigestKeyLen bytes) when the key is longer than `max_key`
// and `mode` is kHash, or when it begins with kReservedPrefix; or nothing
// (kRefused: longer than `max_key` and `mode` is kRefuse). The digest is
// SHA-256, unseeded: every nginx must name a global key alike in Redis.
KeyShape shape_key(const unsigned char *key, size_t len, size_t max_key, LongKey mode, unsigned char *digest);

// The budget of new keys: a GCRA bucket of `rate` that admits one window's
// worth at once (1000r/s: 1000 new keys at once, then one a millisecond).
GcraParams new_key_budget(const Rate &rate);

// True when a key not in the table may be inserted at `now_us`; advances
// `tat`, the zone's budget state (in shared memory, under the zone's lock).
inline bool take_new_key(const GcraParams &budget, int64_t &tat, int64_t now_us) {
    return gcra_take(budget, tat, now_us).allowed;
}

} // namespace levee::limit
