/*
 * Maglev hashing (Eisenbud et al., NSDI 2016) with weights: a lookup table of
 * a prime number of slots, filled by letting each server take its next
 * preferred free slot in turn; a server of weight w takes w/wmax turns per
 * round. Every server ends with its share of slots within one slot, so the
 * balance is as good as the key hash. The price: when the list changes, a
 * few keys of surviving servers move too (measured in the unit test).
 */
#ifndef LEVEE_CORE_MAGLEV_HPP
#define LEVEE_CORE_MAGLEV_HPP

#include "core/sticky/sticky_chooser.hpp"

namespace levee::sticky {

class Maglev : public StickyChooser {
  public:
    // table_size 0: the smallest prime of a fixed list >= 100 x servers,
    // at least 65537 (the paper's advice: M much larger than N).
    explicit Maglev(const std::vector<StickyServer> &servers, uint32_t table_size = 0);

    uint32_t choose(uint64_t key_hash, uint32_t attempt) const override;

    uint32_t table_size() const { return static_cast<uint32_t>(table_.size()); }
    const std::vector<uint16_t> &table() const { return table_; }

    static uint32_t default_table_size(uint32_t servers);

  private:
    std::vector<uint16_t> table_;
};

} // namespace levee::sticky

#endif
