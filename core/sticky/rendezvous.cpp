#include "core/sticky/rendezvous.hpp"

#include <cmath>

#include "core/sticky/key_hash.hpp"

namespace levee::sticky {

Rendezvous::Rendezvous(const std::vector<StickyServer> &servers) {
    size_ = static_cast<uint32_t>(servers.size());
    const std::vector<std::string> names = unique_names(servers);
    for (uint32_t i = 0; i < size_; i++) {
        seed_.push_back(key_hash(names[i].data(), names[i].size()));
        weight_.push_back(servers[i].weight);
        if (servers[i].weight != servers[0].weight)
            weighted_ = true;
    }
}

double Rendezvous::score(uint64_t key_hash, uint32_t i) const {
    uint64_t x = mix64(key_hash ^ seed_[i]);
    // u in (0, 1): 53 random bits, never 0 or 1.
    double u = (double(x >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    return weight_[i] / -std::log(u);
}

uint32_t Rendezvous::choose(uint64_t key_hash, uint32_t attempt) const {
    // The k-th best by repeated "best below the previous best": no scratch
    // memory, O(N x k) with k bounded by the caller's attempts.
    uint32_t best = 0;
    bool have_prev = false;
    uint64_t prev_raw = 0;
    double prev_score = 0;
    uint32_t prev_index = 0;
    uint32_t rank = attempt < size_ ? attempt : size_ - 1;

    for (uint32_t r = 0; r <= rank; r++) {
        bool found = false;
        uint64_t best_raw = 0;
        double best_score = 0;
        for (uint32_t i = 0; i < size_; i++) {
            // Order: higher score first, lower index on a tie.
            if (weighted_) {
                double s = score(key_hash, i);
                if (have_prev && (s > prev_score || (s == prev_score && i <= prev_index)))
                    continue;
                if (!found || s > best_score) {
                    found = true;
                    best_score = s;
                    best = i;
                }
            } else {
                uint64_t s = mix64(key_hash ^ seed_[i]);
                if (have_prev && (s > prev_raw || (s == prev_raw && i <= prev_index)))
                    continue;
                if (!found || s > best_raw) {
                    found = true;
                    best_raw = s;
                    best = i;
                }
            }
        }
        have_prev = true;
        prev_raw = best_raw;
        prev_score = best_score;
        prev_index = best;
    }
    return best;
}

} // namespace levee::sticky
