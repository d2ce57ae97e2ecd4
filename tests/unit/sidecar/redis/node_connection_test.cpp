// NodeConnection's own transport against fake nodes (fake_node.hpp): what a
// peer that hangs up, or answers what no command asked, does to it.
#include <event2/event.h>
#include <gtest/gtest.h>

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
    int answered = 0;
    int lost = 0;
    std::vector<std::string> downs;
    void on_node_reply(NodeConnection &, NodeConnection::Kind, uint64_t, const Reply *reply, int) override {
        ++(reply != nullptr ? answered : lost);
    }
    void on_node_down(NodeConnection &, const std::string &why) override { downs.push_back(why); }
};

NodeConnection::Options slow_retry() {
    NodeConnection::Options opts;
    opts.reconnect_min_ms = 60000; // a retry inside the test would only come from a reconnect at once
    opts.reconnect_max_ms = 60000;
    return opts;
}

// A peer that accepts and closes before answering (a TLS port spoken to in
// plain text, a proxy with no backend) refuses like a closed port: backoff,
// not a reconnect for every command.
TEST(NodeConnection, APeerThatHangsUpBeforeAnsweringIsAFailedConnect) {
    BasePtr base(event_base_new());
    FakeNode fake(base.get(), [](const FakeNode::Command &) -> std::string { return FakeNode::kHangUp; });
    Recorder rec;
    NodeConnection node(base.get(), {"127.0.0.1", fake.port()}, slow_retry(), rec);
    std::string error;
    ASSERT_TRUE(node.send(NodeConnection::Kind::Command, 1, {"PING"}, error)) << error;
    ASSERT_TRUE(run_until(base.get(), [&] { return !rec.downs.empty(); }));
    EXPECT_EQ(rec.lost, 1);
    EXPECT_EQ(node.connect_failures(), 1);
    EXPECT_FALSE(node.send(NodeConnection::Kind::Command, 2, {"PING"}, error));
    EXPECT_EQ(error.rfind("reconnect pending after: ", 0), 0u) << error;
    EXPECT_EQ(fake.received().size(), 1u);
}

TEST(NodeConnection, APeerThatAnsweredAndThenHangsUpIsReconnectedAtOnce) {
    BasePtr base(event_base_new());
    FakeNode fake(base.get(), [](const FakeNode::Command &c) -> std::string {
        return c[0] == "PING" ? "+PONG\r\n" : FakeNode::kHangUp;
    });
    Recorder rec;
    NodeConnection node(base.get(), {"127.0.0.1", fake.port()}, slow_retry(), rec);
    std::string error;
    ASSERT_TRUE(node.send(NodeConnection::Kind::Command, 1, {"PING"}, error)) << error;
    ASSERT_TRUE(run_until(base.get(), [&] { return rec.answered == 1; }));
    // Sent after the answer: the fake drops unwritten answers when it hangs up.
    ASSERT_TRUE(node.send(NodeConnection::Kind::Command, 2, {"QUIT"}, error)) << error;
    ASSERT_TRUE(run_until(base.get(), [&] { return !rec.downs.empty(); }));
    EXPECT_EQ(rec.answered, 1);
    EXPECT_EQ(rec.lost, 1);
    EXPECT_EQ(node.connect_failures(), 0);
    ASSERT_TRUE(node.send(NodeConnection::Kind::Command, 3, {"PING"}, error)) << error;
    ASSERT_TRUE(run_until(base.get(), [&] { return rec.answered == 2; }));
    EXPECT_EQ(fake.received().size(), 2u);
}

// Replies are matched to commands by order: one more reply than commands
// means every later match would be wrong.
TEST(NodeConnection, AReplyToNoCommandDropsTheConnection) {
    BasePtr base(event_base_new());
    FakeNode fake(base.get(), [](const FakeNode::Command &) -> std::string { return "+OK\r\n+EXTRA\r\n"; });
    Recorder rec;
    NodeConnection node(base.get(), {"127.0.0.1", fake.port()}, {}, rec);
    std::string error;
    ASSERT_TRUE(node.send(NodeConnection::Kind::Command, 1, {"SET", "k", "v"}, error)) << error;
    ASSERT_TRUE(run_until(base.get(), [&] { return !rec.downs.empty(); }));
    EXPECT_EQ(rec.answered, 1);
    EXPECT_EQ(rec.downs[0], "a reply to no command");
}

TEST(NodeConnection, AnOversizedArrayHeaderIsAProtocolError) {
    BasePtr base(event_base_new());
    FakeNode fake(base.get(), [](const FakeNode::Command &) -> std::string { return "*2147483647\r\n"; });
    Recorder rec;
    NodeConnection node(base.get(), {"127.0.0.1", fake.port()}, {}, rec);
    std::string error;
    ASSERT_TRUE(node.send(NodeConnection::Kind::Command, 1, {"CLUSTER", "SLOTS"}, error)) << error;
    ASSERT_TRUE(run_until(base.get(), [&] { return !rec.downs.empty(); }));
    EXPECT_EQ(rec.lost, 1);
    EXPECT_NE(rec.downs[0].find("protocol error: an array reply above"), std::string::npos) << rec.downs[0];
}

} // namespace
