#include "peer_credentials.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace levee {
namespace {

std::vector<std::string> words(const std::string &list) {
    std::vector<std::string> out;
    std::string w;
    for (const char c : list + ",") {
        if (c == ',' || c == ' ' || c == '\t') {
            if (!w.empty()) {
                out.push_back(w);
            }
            w.clear();
        } else {
            w += c;
        }
    }
    return out;
}

bool numeric(const std::string &w, unsigned long &n) {
    if (w.empty() || w.size() > 10 || w.find_first_not_of("0123456789") != std::string::npos) {
        return false;
    }
    n = std::strtoul(w.c_str(), nullptr, 10);
    return n < 0xffffffffUL; // (uid_t) -1 means "no one"
}

template <typename Id> void add(std::vector<Id> &v, Id id) {
    if (std::find(v.begin(), v.end(), id) == v.end()) {
        v.push_back(id);
    }
}

template <typename Id> std::string join(const std::vector<Id> &ids) {
    std::string out;
    for (const Id id : ids) {
        out += (out.empty() ? "" : ",") + std::to_string(id);
    }
    return out.empty() ? "-" : out;
}

} // namespace

bool read_peer_credentials(int fd, PeerCredentials &out) {
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred)) {
        return false;
    }
    out.pid = cred.pid;
    out.uid = cred.uid;
    out.gid = cred.gid;
    out.groups.clear();
#ifdef SO_PEERGROUPS
    std::vector<gid_t> groups(64);
    for (int attempt = 0; attempt < 2; attempt++) {
        socklen_t glen = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen) == 0) {
            groups.resize(glen / sizeof(gid_t));
            out.groups = std::move(groups);
            break;
        }
        if (errno != ERANGE) {
            break; // an older kernel: the primary group only
        }
        groups.resize(glen / sizeof(gid_t) + 1);
    }
#endif
    return true;
}

bool PeerPolicy::allows(const PeerCredentials &peer) const {
    const auto has = [](const auto &v, auto id) { return std::find(v.begin(), v.end(), id) != v.end(); };
    if (has(uids, peer.uid) || has(gids, peer.gid)) {
        return true;
    }
    return std::any_of(peer.groups.begin(), peer.groups.end(), [&](gid_t g) { return has(gids, g); });
}

std::string PeerPolicy::describe() const {
    return "uids " + join(uids) + " gids " + join(gids);
}

bool resolve_users(const std::string &list, std::vector<uid_t> &out, std::string &error) {
    out.clear();
    for (const std::string &w : words(list)) {
        unsigned long n;
        if (numeric(w, n)) {
            add(out, static_cast<uid_t>(n));
            continue;
        }
        const passwd *pw = ::getpwnam(w.c_str());
        if (pw == nullptr) {
            error = "no such user \"" + w + "\"";
            return false;
        }
        add(out, pw->pw_uid);
    }
    return true;
}

bool resolve_groups(const std::string &list, std::vector<gid_t> &out, std::string &error) {
    out.clear();
    for (const std::string &w : words(list)) {
        unsigned long n;
        if (numeric(w, n)) {
            add(out, static_cast<gid_t>(n));
            continue;
        }
        const group *gr = ::getgrnam(w.c_str());
        if (gr == nullptr) {
            error = "no such group \"" + w + "\"";
            return false;
        }
        add(out, gr->gr_gid);
    }
    return true;
}

PeerPolicy nginx_socket_policy(const std::vector<uid_t> &users, const std::vector<gid_t> &groups, gid_t socket_gid) {
    PeerPolicy p = admin_socket_policy();
    for (const uid_t u : users) {
        add(p.uids, u);
    }
    for (const gid_t g : groups) {
        add(p.gids, g);
    }
    if (users.empty() && groups.empty()) {
        add(p.gids, socket_gid);
    }
    return p;
}

PeerPolicy admin_socket_policy() {
    PeerPolicy p;
    add(p.uids, static_cast<uid_t>(0));
    add(p.uids, ::geteuid());
    return p;
}

} // namespace levee
