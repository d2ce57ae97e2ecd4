#include "core/sticky/ketama.hpp"

#include <algorithm>
#include <utility>

#include "core/sticky/key_hash.hpp"

namespace levee::sticky {

Ketama::Ketama(const std::vector<StickyServer> &servers) {
    size_ = static_cast<uint32_t>(servers.size());
    const std::vector<std::string> names = unique_names(servers);

    std::vector<std::pair<uint64_t, uint16_t>> ring;
    for (uint32_t i = 0; i < size_; i++) {
        uint64_t n = uint64_t(servers[i].weight) * kPointsPerWeight;
        for (uint64_t j = 0; j < n; j++) {
            ring.emplace_back(key_hash(names[i].data(), names[i].size(), j), static_cast<uint16_t>(i));
        }
    }
    // Ties (astronomically rare) are broken by index so every instance agrees.
    std::sort(ring.begin(), ring.end());
    points_.reserve(ring.size());
    owner_.reserve(ring.size());
    for (const auto &p : ring) {
        points_.push_back(p.first);
        owner_.push_back(p.second);
    }
}

uint32_t Ketama::choose(uint64_t key_hash, uint32_t attempt) const {
    size_t at = std::lower_bound(points_.begin(), points_.end(), key_hash) - points_.begin();
    return owner_[(at + attempt) % points_.size()];
}

} // namespace levee::sticky
