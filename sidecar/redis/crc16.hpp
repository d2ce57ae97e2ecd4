// Redis Cluster key hashing: CRC16-XMODEM of the key (or of its hash tag),
// modulo 16384.
#pragma once

#include <cstdint>
#include <string_view>

namespace levee::redis {

inline constexpr int kSlotCount = 16384;

// CRC16-XMODEM (poly 0x1021, init 0, no reflection), as in Redis's crc16.c.
uint16_t crc16(std::string_view data);

// The slot Redis assigns to `key`. Honours a hash tag exactly as Redis does:
// the first '{', then the first '}' after it; only a non-empty tag counts,
// otherwise the whole key is hashed.
uint16_t key_slot(std::string_view key);

} // namespace levee::redis
