// Who is at the other end of an accepted Unix socket, as the kernel says
// (SO_PEERCRED, SO_PEERGROUPS), and whether leveed lets it in. The socket's
// mode decides who may connect(); this decides whom leveed then serves, so a
// socket made too open by mistake, or a group shared with other programs,
// does not hand leveed to whoever can reach it.
#pragma once

#include <string>
#include <vector>

#include <sys/types.h>

namespace levee {

struct PeerCredentials {
    pid_t pid = 0;
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    std::vector<gid_t> groups; // supplementary, when the kernel tells them (Linux 4.13+)
};

// False when the kernel does not say who the peer is: such a peer is refused.
bool read_peer_credentials(int fd, PeerCredentials &out);

// Whom a socket serves: a peer whose uid is in `uids`, or whose primary or
// supplementary group is in `gids`.
struct PeerPolicy {
    std::vector<uid_t> uids;
    std::vector<gid_t> gids;

    bool allows(const PeerCredentials &peer) const;
    // "uids 0,33 gids 33", for the logs.
    std::string describe() const;
};

// "www-data, 1001": user names or numeric uids, separated by commas or
// blanks. False (with `error` naming the word) when a name is unknown.
bool resolve_users(const std::string &list, std::vector<uid_t> &out, std::string &error);
bool resolve_groups(const std::string &list, std::vector<gid_t> &out, std::string &error);

// The nginx socket's policy: root, leveed's own user (either could read or
// ptrace leveed anyway) and `users`/`groups` (allow_users, allow_groups);
// when both are empty, the socket's group (`socket_gid`) instead, which is
// whom the socket's default mode 0660 lets connect.
PeerPolicy nginx_socket_policy(const std::vector<uid_t> &users, const std::vector<gid_t> &groups, gid_t socket_gid);

// The admin socket's policy: root and leveed's own user.
PeerPolicy admin_socket_policy();

} // namespace levee
