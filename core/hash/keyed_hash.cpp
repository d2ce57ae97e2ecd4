#include "core/hash/keyed_hash.hpp"

#include <sys/random.h>

#include <cerrno>

namespace levee::hash {

namespace {

inline uint64_t rotl(uint64_t x, int b) {
    return (x << b) | (x >> (64 - b));
}

inline void sip_round(uint64_t &v0, uint64_t &v1, uint64_t &v2, uint64_t &v3) {
    v0 += v1;
    v1 = rotl(v1, 13);
    v1 ^= v0;
    v0 = rotl(v0, 32);
    v2 += v3;
    v3 = rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = rotl(v1, 17);
    v1 ^= v2;
    v2 = rotl(v2, 32);
}

} // namespace

template <int C, int D>
SipHasher<C, D>::SipHasher(const Seed &s)
    : v0_(s.k0 ^ 0x736f6d6570736575ull), v1_(s.k1 ^ 0x646f72616e646f6dull), v2_(s.k0 ^ 0x6c7967656e657261ull),
      v3_(s.k1 ^ 0x7465646279746573ull) {}

template <int C, int D> void SipHasher<C, D>::compress(uint64_t m) {
    v3_ ^= m;
    for (int i = 0; i < C; i++) {
        sip_round(v0_, v1_, v2_, v3_);
    }
    v0_ ^= m;
}

template <int C, int D> void SipHasher<C, D>::update(const unsigned char *p, size_t n) {
    total_ += n;
    for (size_t i = 0; i < n; i++) {
        tail_ |= static_cast<uint64_t>(p[i]) << (8 * ntail_);
        if (++ntail_ == 8) {
            compress(tail_);
            tail_ = 0;
            ntail_ = 0;
        }
    }
}

template <int C, int D> uint64_t SipHasher<C, D>::finish() {
    compress(tail_ | (total_ << 56));
    v2_ ^= 0xff;
    for (int i = 0; i < D; i++) {
        sip_round(v0_, v1_, v2_, v3_);
    }
    return v0_ ^ v1_ ^ v2_ ^ v3_;
}

template class SipHasher<1, 3>;
template class SipHasher<2, 4>;

uint64_t siphash13(const Seed &s, const unsigned char *p, size_t n) {
    SipHasher13 h(s);
    h.update(p, n);
    return h.finish();
}

bool random_seed(Seed *out) {
    unsigned char *p = reinterpret_cast<unsigned char *>(out);
    size_t got = 0;
    while (got < sizeof(*out)) {
        const ssize_t n = getrandom(p + got, sizeof(*out) - got, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        got += static_cast<size_t>(n);
    }
    return true;
}

} // namespace levee::hash
