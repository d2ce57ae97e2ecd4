#include "core/limit/key_guard.hpp"

#include <cstring>

#include "core/hash/sha256.hpp"

namespace levee::limit {

static_assert(kDigestKeyLen == kDigestPrefix.size() + 2 * hash::kSha256Size, "the digest key's length");
static_assert(kDigestPrefix.substr(0, kReservedPrefix.size()) == kReservedPrefix &&
                  kOverflowKey.substr(0, kReservedPrefix.size()) == kReservedPrefix,
              "Levee's own keys are in its namespace");

KeyShape shape_key(const unsigned char *key, size_t len, size_t max_key, LongKey mode, unsigned char *digest) {
    const bool reserved =
        len >= kReservedPrefix.size() && std::memcmp(key, kReservedPrefix.data(), kReservedPrefix.size()) == 0;
    if (len <= max_key && !reserved) {
        return KeyShape::kAsIs;
    }
    if (len > max_key && mode == LongKey::kRefuse) {
        return KeyShape::kRefused;
    }
    unsigned char d[hash::kSha256Size];
    hash::sha256(key, len, d);
    static constexpr char kHex[] = "0123456789abcdef";
    std::memcpy(digest, kDigestPrefix.data(), kDigestPrefix.size());
    unsigned char *p = digest + kDigestPrefix.size();
    for (unsigned char b : d) {
        *p++ = static_cast<unsigned char>(kHex[b >> 4]);
        *p++ = static_cast<unsigned char>(kHex[b & 15]);
    }
    return KeyShape::kDigest;
}

GcraParams new_key_budget(const Rate &rate) {
    return GcraParams::from_rate(rate.requests, rate.window_s, static_cast<uint32_t>(rate.requests - 1));
}

} // namespace levee::limit
