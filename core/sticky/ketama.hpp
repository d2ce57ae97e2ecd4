/*
 * Ketama-style consistent hashing: each server owns 160 points per weight
 * unit on a 64-bit ring, a key belongs to the first point at or after its
 * hash. Disruption is minimal by construction (only the keys of a removed
 * server move) but the balance is only as even as the random arcs
 * (about +-8% per server with 160 points).
 */
#ifndef LEVEE_CORE_KETAMA_HPP
#define LEVEE_CORE_KETAMA_HPP

#include "core/sticky/sticky_chooser.hpp"

namespace levee::sticky {

class Ketama : public StickyChooser {
  public:
    static constexpr uint32_t kPointsPerWeight = 160;

    explicit Ketama(const std::vector<StickyServer> &servers);

    // attempt k: the server of the k-th point after the key's point.
    uint32_t choose(uint64_t key_hash, uint32_t attempt) const override;

  private:
    std::vector<uint64_t> points_;
    std::vector<uint16_t> owner_;
};

} // namespace levee::sticky

#endif
