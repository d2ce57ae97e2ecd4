// A keyed hash for the shared-memory tables: SipHash-1-3 under a per-zone
// random seed. Their keys come from requests ($arg_*, headers), so an
// unkeyed hash lets a client pick keys offline that all fall into one
// chain, which every lookup then walks under the zone's lock.
#pragma once

#include <cstddef>
#include <cstdint>

namespace levee::hash {

struct Seed {
    uint64_t k0, k1;
};

// SipHash-c-d (Aumasson and Bernstein), 64-bit result. Feeding the input in
// parts gives the same result as feeding it whole. The tables use 1-3; 2-4
// is there for the reference vectors of the paper.
template <int C, int D> class SipHasher {
  public:
    explicit SipHasher(const Seed &s);
    void update(const unsigned char *p, size_t n);
    uint64_t finish();

  private:
    void compress(uint64_t m);

    uint64_t v0_, v1_, v2_, v3_;
    uint64_t tail_ = 0; // bytes not yet compressed, little-endian
    size_t ntail_ = 0;
    uint64_t total_ = 0;
};

extern template class SipHasher<1, 3>;
extern template class SipHasher<2, 4>;
using SipHasher13 = SipHasher<1, 3>;

uint64_t siphash13(const Seed &s, const unsigned char *p, size_t n);

// 16 bytes from the kernel's CSPRNG; false if it could not give them.
bool random_seed(Seed *out);

} // namespace levee::hash
