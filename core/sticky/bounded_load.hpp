/*
 * Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam,
 * 2018): a server may hold at most ceil(c x (in_flight + 1) x w / W)
 * requests, counting the one being placed; a key whose home server is full
 * takes its next choice. With c > 1 some server is always under its bound.
 */
#ifndef LEVEE_CORE_BOUNDED_LOAD_HPP
#define LEVEE_CORE_BOUNDED_LOAD_HPP

#include <cstdint>

namespace levee::sticky {

// The factor is fixed point, in thousandths (1.25 -> 1250), so nginx's
// configuration parser and every worker compute the same integers.
constexpr uint32_t kLoadFactorScale = 1000;

// Highest in-flight count allowed on a server of weight `weight` once the
// request being placed is counted (total_in_flight excludes it).
inline uint64_t bounded_capacity(uint64_t total_in_flight, uint64_t weight, uint64_t total_weight,
                                 uint32_t factor_milli) {
    uint64_t num = (total_in_flight + 1) * weight * factor_milli;
    uint64_t den = total_weight * kLoadFactorScale;
    return (num + den - 1) / den;
}

// "1.25" -> 1250; false for anything but a decimal in [1, 100] with at most
// three decimals.
bool parse_load_factor(const char *s, uint64_t len, uint32_t *factor_milli);

} // namespace levee::sticky

#endif
