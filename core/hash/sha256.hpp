// SHA-256 (FIPS 180-4), for digests that must be the same on every nginx:
// the stand-in for an over-long limit key goes to Redis, where all nginx
// instances of a global zone share it, so it cannot use a per-zone seed.
// Not for the hot path of short keys, which the seeded SipHash serves.
#pragma once

#include <cstddef>
#include <cstdint>

namespace levee::hash {

constexpr size_t kSha256Size = 32;

void sha256(const unsigned char *p, size_t n, unsigned char out[kSha256Size]);

} // namespace levee::hash
