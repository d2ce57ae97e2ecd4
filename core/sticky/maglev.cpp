#include "core/sticky/maglev.hpp"

#include <algorithm>
#include <numeric>

#include "core/sticky/key_hash.hpp"

namespace levee::sticky {

namespace {

// Seeds of the two permutation hashes; part of the on-the-wire contract
// between instances: changing them remaps every key.
constexpr uint64_t kOffsetSeed = 0x4d61676c65764f66ULL; // "MaglevOf"
constexpr uint64_t kSkipSeed = 0x4d61676c65765370ULL;   // "MaglevSp"
constexpr uint64_t kAttemptStep = 0x9E3779B97F4A7C15ULL;

constexpr uint32_t kPrimes[] = {65537, 131071, 262139, 524287, 1048573, 2097143, 4194301};

} // namespace

uint32_t Maglev::default_table_size(uint32_t servers) {
    for (uint32_t p : kPrimes) {
        if (p >= 100ULL * servers)
            return p;
    }
    return kPrimes[sizeof(kPrimes) / sizeof(kPrimes[0]) - 1];
}

Maglev::Maglev(const std::vector<StickyServer> &servers, uint32_t table_size) {
    size_ = static_cast<uint32_t>(servers.size());
    if (size_ == 0)
        return;

    const uint64_t m = table_size ? table_size : default_table_size(size_);
    const std::vector<std::string> names = unique_names(servers);

    std::vector<uint64_t> offset(size_), skip(size_), next(size_, 0), credit(size_, 0);
    uint64_t wmax = 0;
    for (uint32_t i = 0; i < size_; i++) {
        offset[i] = key_hash(names[i].data(), names[i].size(), kOffsetSeed) % m;
        skip[i] = key_hash(names[i].data(), names[i].size(), kSkipSeed) % (m - 1) + 1;
        if (servers[i].weight > wmax)
            wmax = servers[i].weight;
    }

    constexpr uint16_t kEmpty = 0xFFFF; // kMaxServers keeps indexes below it
    table_.assign(m, kEmpty);

    // Turns go in name order, not configuration order: two instances listing
    // the same servers in another order still build the same table.
    std::vector<uint32_t> order(size_);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&names](uint32_t a, uint32_t b) { return names[a] < names[b]; });

    uint64_t filled = 0;
    while (filled < m) {
        for (uint32_t i : order) {
            if (filled == m)
                break;
            // Weighted turns without floating point: a server earns its weight
            // each round and spends wmax per slot taken.
            credit[i] += servers[i].weight;
            while (credit[i] >= wmax && filled < m) {
                credit[i] -= wmax;
                uint64_t slot;
                do {
                    slot = (offset[i] + next[i] * skip[i]) % m;
                    next[i]++;
                } while (table_[slot] != kEmpty);
                table_[slot] = static_cast<uint16_t>(i);
                filled++;
            }
        }
    }
}

uint32_t Maglev::choose(uint64_t key_hash, uint32_t attempt) const {
    uint64_t h = attempt == 0 ? key_hash : mix64(key_hash + attempt * kAttemptStep);
    return table_[h % table_.size()];
}

} // namespace levee::sticky
