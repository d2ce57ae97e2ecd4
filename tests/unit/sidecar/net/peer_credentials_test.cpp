// Who leveed serves: the kernel's word on a peer (a real socketpair) and the
// policies built from allow_users, allow_groups and the socket's group.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/peer_credentials.hpp"

namespace levee {
namespace {

TEST(PeerCredentials, TheKernelSaysWhoThePeerIs) {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    PeerCredentials peer;
    ASSERT_TRUE(read_peer_credentials(fds[0], peer));
    EXPECT_EQ(peer.pid, ::getpid());
    EXPECT_EQ(peer.uid, ::geteuid());
    EXPECT_EQ(peer.gid, ::getegid());
    ::close(fds[0]);
    ::close(fds[1]);
}

TEST(PeerCredentials, NotASocketIsNoOne) {
    PeerCredentials peer;
    EXPECT_FALSE(read_peer_credentials(-1, peer));
}

PeerCredentials as(uid_t uid, gid_t gid, std::vector<gid_t> groups = {}) {
    PeerCredentials p;
    p.uid = uid;
    p.gid = gid;
    p.groups = std::move(groups);
    return p;
}

TEST(PeerPolicy, AllowsByUserPrimaryOrSupplementaryGroup) {
    const PeerPolicy p{{0, 33}, {1001}};
    EXPECT_TRUE(p.allows(as(33, 33)));
    EXPECT_TRUE(p.allows(as(500, 1001)));
    EXPECT_TRUE(p.allows(as(500, 500, {20, 1001})));
    EXPECT_FALSE(p.allows(as(500, 500, {20})));
    EXPECT_FALSE(PeerPolicy{}.allows(as(0, 0)));
    EXPECT_EQ(p.describe(), "uids 0,33 gids 1001");
}

TEST(PeerPolicy, TheNginxSocketServesTheSocketsGroupUnlessToldWhom) {
    const PeerPolicy dflt = nginx_socket_policy({}, {}, 33);
    EXPECT_TRUE(dflt.allows(as(0, 0)));
    EXPECT_TRUE(dflt.allows(as(::geteuid(), 12345)));
    EXPECT_TRUE(dflt.allows(as(70000, 33)));

    const PeerPolicy users = nginx_socket_policy({33}, {}, 33);
    EXPECT_TRUE(users.allows(as(33, 33)));
    EXPECT_FALSE(users.allows(as(70000, 33))) << "another user of the group (PHP-FPM)";
    EXPECT_TRUE(users.allows(as(0, 0)));
}

TEST(PeerPolicy, TheAdminSocketServesRootAndLeveedsUser) {
    const PeerPolicy admin = admin_socket_policy();
    EXPECT_TRUE(admin.allows(as(0, 70000)));
    EXPECT_TRUE(admin.allows(as(::geteuid(), 70000)));
    EXPECT_FALSE(admin.allows(as(70000, 0, {0})));
}

TEST(ResolvePeers, NamesAndNumbersSeparatedByCommasOrBlanks) {
    std::vector<uid_t> uids;
    std::string error;
    ASSERT_TRUE(resolve_users("root, 1001 1001", uids, error)) << error;
    EXPECT_EQ(uids, (std::vector<uid_t>{0, 1001}));
    std::vector<gid_t> gids;
    ASSERT_TRUE(resolve_groups("root,42", gids, error)) << error;
    EXPECT_EQ(gids, (std::vector<gid_t>{0, 42}));
    EXPECT_FALSE(resolve_users("no-such-user-levee", uids, error));
    EXPECT_EQ(error, "no such user \"no-such-user-levee\"");
    EXPECT_FALSE(resolve_groups("4294967295", gids, error)) << "(gid_t) -1 is no one";
}

} // namespace
} // namespace levee
