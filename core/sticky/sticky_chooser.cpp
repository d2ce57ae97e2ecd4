#include "core/sticky/sticky_chooser.hpp"

#include <map>

#include "core/sticky/ketama.hpp"
#include "core/sticky/maglev.hpp"
#include "core/sticky/rendezvous.hpp"

namespace levee::sticky {

std::vector<std::string> unique_names(const std::vector<StickyServer> &servers) {
    std::vector<std::string> names;
    std::map<std::string, unsigned> seen;
    names.reserve(servers.size());
    for (const StickyServer &s : servers) {
        unsigned n = seen[s.name]++;
        names.push_back(n == 0 ? s.name : s.name + "#" + std::to_string(n));
    }
    return names;
}

std::unique_ptr<StickyChooser> make_sticky_chooser(Method method, const std::vector<StickyServer> &servers,
                                                   std::string *error) {
    if (servers.empty()) {
        *error = "no servers";
        return nullptr;
    }
    if (servers.size() > kMaxServers) {
        *error = "more than 65535 servers";
        return nullptr;
    }
    for (const StickyServer &s : servers) {
        if (s.weight == 0) {
            *error = "server \"" + s.name + "\" has weight 0";
            return nullptr;
        }
    }
    switch (method) {
    case Method::kMaglev: return std::unique_ptr<StickyChooser>(new Maglev(servers));
    case Method::kKetama: return std::unique_ptr<StickyChooser>(new Ketama(servers));
    case Method::kRendezvous: return std::unique_ptr<StickyChooser>(new Rendezvous(servers));
    }
    *error = "unknown method";
    return nullptr;
}

} // namespace levee::sticky
