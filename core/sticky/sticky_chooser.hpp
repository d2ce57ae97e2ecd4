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

// "maglev", "ketama" or "rendezvous" (the directive's method= values); false
// for anything else.
bool parse_method(const char *s, uint64_t len, Method *method);

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

// The balancer's server for a key, `usable(index, within_bound)` saying
// whether a server can take the request (within its load bound when asked).
// With `fallback` the first usable server of the key's sequence (pick), within
// the bound when `bounded`; when every server is at its bound (in-flight counts
// race between workers) the key's own order wins over the bound. Without
// `fallback` the key's home server or none. -1: none, try the backup servers.
template <class Usable>
int64_t pick_for_key(const StickyChooser &chooser, uint64_t key_hash, uint32_t max_attempts, bool fallback,
                     bool bounded, Usable &&usable) {
    if (!fallback) {
        uint32_t home = chooser.choose(key_hash, 0);
        return usable(home, false) ? static_cast<int64_t>(home) : -1;
    }
    int64_t chosen = pick(chooser, key_hash, max_attempts, [&](uint32_t i) { return usable(i, bounded); });
    if (chosen < 0 && bounded) {
        chosen = pick(chooser, key_hash, max_attempts, [&](uint32_t i) { return usable(i, false); });
    }
    return chosen;
}

} // namespace levee::sticky

#endif
