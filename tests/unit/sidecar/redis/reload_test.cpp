// Settings a SIGHUP changes under a live connection (WAIT, AUTH), against a
// fake node (fake_node.hpp): what was sent before the change must finish the
// way it was sent.
#include <event2/event.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "fake_node.hpp"
#include "node_connection.hpp"

using levee::redis::NodeConnection;
using levee::redis::Reply;
using levee::redis::testing::BasePtr;
using levee::redis::testing::FakeNode;
using levee::redis::testing::run_until;

namespace {

struct Recorder : NodeConnection::Handler {
    std::vector<std::pair<uint64_t, int>> replies; // (id, replicas acked)
    std::vector<std::string> downs;
    std::string auth_error;
    void on_node_reply(NodeConnection &, NodeConnection::Kind, uint64_t id, const Reply *reply,
                       int acked) override {
        if (reply != nullptr) {
            replies.emplace_back(id, acked);
        }
    }
    void on_node_down(NodeConnection &node, const std::string &why) override {
        downs.push_back(why);
        auth_error = node.auth_error();
    }
};

FakeNode::Answer ok_and_wait() {
    return [](const FakeNode::Command &c) -> std::string { return c[0] == "WAIT" ? ":1\r\n" : "+OK\r\n"; };
}

// Sent without WAIT, answered after WAIT was turned on: no WAIT will come
// for it, so holding its reply for one would lose it.
TEST(NodeReload, WaitTurnedOnDoesNotHoldAReplySentWithoutIt) {
    BasePtr base(event_base_new());
    FakeNode fake(base.get(), ok_and_wait());
    Recorder rec;
    NodeConnection node(base.get(), {"127.0.0.1", fake.port()}, {}, rec);
    std::string error;
    ASSERT_TRUE(node.send(NodeConnection::Kind::Command, 1, {"SET", "k", "v"}, error)) << error;
    node.set_wait(1, 100);
    ASSERT_TRUE(run_until(base.get(), [&] { return rec.replies.size() == 1; })) << "the reply was held";
    EXPECT_EQ(rec.replies[0], std::make_pair(uint64_t{1}, -1));

    // and what is sent from now on waits
    ASSERT_TRUE(node.send(NodeConnection::Kind::Command, 2, {"SET", "k", "w"}, error)) << error;
    ASSERT_TRUE(run_until(base.get(), [&] { return rec.replies.size() == 2; }));
    EXPECT_EQ(rec.replies[1], std::make_pair(uint64_t{2}, 1));
    const auto got = fake.received().back();
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[2], (FakeNode::Command{"WAIT", "1", "100"}));
}

TEST(NodeReload, WaitTurnedOffStillReleasesWhatWaitsForIt) {
    BasePtr base(event_base_new());
    FakeNode fake(base.get(), ok_and_wait());
    Recorder rec;
    NodeConnection::Options opts;
    opts.wait_replicas = 1;
    NodeConnection node(base.get(), {"127.0.0.1", fake.port()}, opts, rec);
    std::string error;
    ASSERT_TRUE(node.send(NodeConnection::Kind::Command, 1, {"SET", "k", "v"}, error)) << error;
    node.set_wait(0, 100);
    ASSERT_TRUE(run_until(base.get(), [&] { return rec.replies.size() == 1; })) << "the reply was lost";
    EXPECT_EQ(rec.replies[0].first, 1u);
    EXPECT_TRUE(rec.downs.empty());
}

// The AUTH a connection sent is what its refusal is masked with, whatever a
// reload set since.
TEST(NodeReload, ARefusalIsMaskedWithThePasswordThatWasSent) {
    BasePtr base(event_base_new());
    FakeNode fake(base.get(), [](const FakeNode::Command &c) -> std::string {
        return c[0] == "AUTH" ? "-ERR bad password " + c.back() + "\r\n" : "+OK\r\n";
    });
    Recorder rec;
    NodeConnection::Options opts;
    opts.password = "old-secret";
    NodeConnection node(base.get(), {"127.0.0.1", fake.port()}, opts, rec);
    std::string error;
    ASSERT_TRUE(node.send(NodeConnection::Kind::Command, 1, {"PING"}, error)) << error;
    node.set_auth("", "");
    ASSERT_TRUE(run_until(base.get(), [&] { return !rec.downs.empty(); }));
    EXPECT_EQ(rec.auth_error, "ERR bad password <password>");
}

TEST(NodeReload, TheNextConnectionSendsTheNewAuth) {
    BasePtr base(event_base_new());
    FakeNode fake(base.get(), [](const FakeNode::Command &c) -> std::string {
        if (c[0] == "AUTH") {
            return c.back() == "new" ? "+OK\r\n" : "-WRONGPASS invalid username-password pair\r\n";
        }
        return "+PONG\r\n";
    });
    Recorder rec;
    NodeConnection::Options opts;
    opts.password = "old";
    opts.reconnect_min_ms = 1;
    opts.reconnect_max_ms = 1;
    NodeConnection node(base.get(), {"127.0.0.1", fake.port()}, opts, rec);
    std::string error;
    ASSERT_TRUE(node.send(NodeConnection::Kind::Command, 1, {"PING"}, error)) << error;
    ASSERT_TRUE(run_until(base.get(), [&] { return !rec.downs.empty(); }));
    node.set_auth("levee", "new");
    ASSERT_TRUE(run_until(base.get(), [&] {
        std::string e;
        return node.send(NodeConnection::Kind::Command, 2, {"PING"}, e);
    }));
    ASSERT_TRUE(run_until(base.get(), [&] { return !rec.replies.empty(); }));
    EXPECT_EQ(fake.received().back()[0], (FakeNode::Command{"AUTH", "levee", "new"}));
}

} // namespace
