/*
 * Rendezvous (highest random weight) hashing: a key ranks every server by a
 * hash of (key, server) and goes to the best one. Disruption is minimal and
 * exact (only the keys of a removed server move, and exactly to the server
 * they fall back to while it is down), the balance is statistical like any
 * per-key hash; each lookup costs one mix per server, so it suits the tens
 * of servers an upstream block usually holds. Weights use the logarithmic
 * method (score = w / -ln(u)); with equal weights the raw 64-bit hashes are
 * compared and no floating point is involved.
 */
#ifndef LEVEE_CORE_RENDEZVOUS_HPP
#define LEVEE_CORE_RENDEZVOUS_HPP

#include "core/sticky/sticky_chooser.hpp"

namespace levee::sticky {

class Rendezvous : public StickyChooser {
  public:
    explicit Rendezvous(const std::vector<StickyServer> &servers);

    // attempt k: the server ranked k+1 for this key (k >= size: the last).
    uint32_t choose(uint64_t key_hash, uint32_t attempt) const override;

  private:
    double score(uint64_t key_hash, uint32_t i) const;

    std::vector<uint64_t> seed_;
    std::vector<double> weight_;
    bool weighted_ = false;
};

} // namespace levee::sticky

#endif
