/*
 * The choice sequence of a sticky key: choose(hash, 0) is the key's home
 * server, choose(hash, 1..) its next choices when the home server is down,
 * failing or over its load bound. The sequence depends only on the key hash
 * and the server list (names and weights, in order), so every nginx worker,
 * restart and instance agrees on it. Built at configuration time; choose() is
 * const, allocation free and lock free.
 */
#ifndef LEVEE_CORE_STICKY_CHOOSER_HPP
#define LEVEE_CORE_STICKY_CHOOSER_HPP

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace levee::sticky {

struct StickyServer {
    std::string name; // identity on the hash space: "host:port" as nginx prints it
    uint32_t weight;  // >= 1
};

enum class Method { kMaglev, kKetama, kRendezvous };

class StickyChooser {
  public:
    virtual ~StickyChooser() = default;

    // Index into the server list; any attempt may repeat an earlier answer,
    // callers skip what they already tried.
    virtual uint32_t choose(uint64_t key_hash, uint32_t attempt) const = 0;

    uint32_t size() const { return size_; }

  protected:
    uint32_t size_ = 0;
};

// Longest server list a chooser accepts (table entries are 16-bit).
constexpr uint32_t kMaxServers = 65535;

// nullptr and *error set when the list is empty, too long, or a weight is 0.
std::unique_ptr<StickyChooser> make_sticky_chooser(Method method, const std::vector<StickyServer> &servers,
                                                   std::string *error);

// Names made unique: a server listed twice must not share its permutation
// (Maglev) or its points (ketama) with its twin.
std::vector<std::string> unique_names(const std::vector<StickyServer> &servers);

// The first server of the key's choice sequence that `usable(index)` accepts:
// `max_attempts` choices, then every server in a fixed order from the home
// server on, so a key never lands on a random server. -1 if none is usable.
template <class Usable>
int64_t pick(const StickyChooser &chooser, uint64_t key_hash, uint32_t max_attempts, Usable &&usable) {
    uint32_t n = chooser.size();
    if (n == 0)
        return -1;
    uint32_t home = chooser.choose(key_hash, 0);
    for (uint32_t a = 0; a < max_attempts; a++) {
        uint32_t i = a == 0 ? home : chooser.choose(key_hash, a);
        if (usable(i))
            return i;
    }
    for (uint32_t k = 1; k <= n; k++) {
        uint32_t i = (home + k) % n;
        if (usable(i))
            return i;
    }
    return -1;
}

} // namespace levee::sticky

#endif
