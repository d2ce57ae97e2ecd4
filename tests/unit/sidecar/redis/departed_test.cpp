// Connections to nodes that left the cluster are closed once a new slot map
// no longer names them, against fake nodes (fake_node.hpp) whose CLUSTER
// SLOTS answer the test changes.
#include <event2/event.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cluster_client.hpp"
#include "crc16.hpp"
#include "fake_node.hpp"

using levee::redis::ClusterClient;
using levee::redis::ClusterOptions;
using levee::redis::Reply;
using levee::redis::testing::BasePtr;
using levee::redis::testing::FakeNode;
using levee::redis::testing::run_until;

namespace {

std::string bulk(const std::string &s) { return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n"; }

// A CLUSTER SLOTS reply: (first slot, last slot, port) per range, on 127.0.0.1.
std::string cluster_slots(const std::vector<std::pair<std::pair<int, int>, int>> &ranges) {
    std::string out = "*" + std::to_string(ranges.size()) + "\r\n";
    for (const auto &r : ranges) {
        out += "*3\r\n:" + std::to_string(r.first.first) + "\r\n:" + std::to_string(r.first.second) + "\r\n*2\r\n" +
               bulk("127.0.0.1") + ":" + std::to_string(r.second) + "\r\n";
    }
    return out;
}

std::string moved(const std::string &key, const FakeNode &to) {
    return "-MOVED " + std::to_string(levee::redis::key_slot(key)) + " " + to.addr() + "\r\n";
}

// A key whose slot is below 8192 (`low`) or not.
std::string key_in_half(bool low) {
    for (int i = 0;; ++i) {
        const std::string key = "key" + std::to_string(i);
        if ((levee::redis::key_slot(key) < 8192) == low) {
            return key;
        }
    }
}

ClusterOptions patient() {
    // The tests hold replies back; nothing here should time out on a slow machine.
    ClusterOptions opts;
    opts.connect_timeout_ms = 10000;
    opts.command_timeout_ms = 10000;
    return opts;
}

bool start(event_base *base, ClusterClient &client) {
    bool ready = false, ok = false;
    client.start([&](bool r, const std::string &) { ready = true, ok = r; });
    return run_until(base, [&] { return ready; }) && ok;
}

// Runs one command to its reply; an Error reply with "no reply" if none came.
Reply get(event_base *base, ClusterClient &client, const std::string &key) {
    bool done = false;
    Reply got = Reply::error("no reply");
    if (!client.command(key, {"GET", key}, [&](const Reply &r) {
            got = r;
            done = true;
        })) {
        return Reply::error("refused");
    }
    run_until(base, [&] { return done; });
    return got;
}

// A seed, and masters A and B; every slot on `owner`. A node that does not
// own a key redirects it to the owner, as Redis does after a reshard.
struct TwoMasters {
    BasePtr base{event_base_new()};
    int owner = 0;
    std::unique_ptr<FakeNode> a, b;
    FakeNode seed{base.get(), [this](const FakeNode::Command &c) -> std::string { return slots(c); }};

    TwoMasters() {
        a = std::make_unique<FakeNode>(base.get(), [this](const FakeNode::Command &c) { return answer(*a, c); });
        b = std::make_unique<FakeNode>(base.get(), [this](const FakeNode::Command &c) { return answer(*b, c); });
        owner = a->port();
    }
    std::string slots(const FakeNode::Command &c) const {
        return c[0] == "CLUSTER" ? cluster_slots({{{0, 16383}, owner}}) : "-ERR not a master\r\n";
    }
    std::string answer(const FakeNode &self, const FakeNode::Command &c) const {
        if (c[0] == "CLUSTER") {
            return slots(c);
        }
        if (self.port() != owner) {
            return moved(c[1], self.port() == a->port() ? *b : *a);
        }
        return bulk(self.port() == a->port() ? "a" : "b");
    }
};

// Every slot moves from A to B: A's connection is closed, B's and the
// seed's stay.
TEST(ClusterDeparted, NodeThatLostAllItsSlotsIsDisconnected) {
    TwoMasters t;
    ClusterClient client(t.base.get(), {{"127.0.0.1", t.seed.port()}}, patient());
    ASSERT_TRUE(start(t.base.get(), client));
    EXPECT_EQ(get(t.base.get(), client, "k").str, "a");
    EXPECT_EQ(t.a->open_connections(), 1);
    EXPECT_EQ(client.node_connections(), 2u); // the seed and A

    t.owner = t.b->port();
    // MOVED to B, then the refresh it triggers brings the map without A.
    EXPECT_EQ(get(t.base.get(), client, "k").str, "b");
    ASSERT_TRUE(run_until(t.base.get(), [&] { return t.a->open_connections() == 0; }))
        << "the connection to A, which serves no slot anymore, is still open";
    EXPECT_EQ(client.stats().connections_retired, 1u);
    EXPECT_EQ(t.b->open_connections(), 1);
    EXPECT_EQ(t.seed.open_connections(), 1);
    EXPECT_EQ(client.node_connections(), 2u); // the seed and B
    EXPECT_EQ(get(t.base.get(), client, "k").str, "b");
    EXPECT_EQ(t.b->received().size(), 1u) << "B was reconnected to";
}

// A retired node's per-node counters go with it; those of the nodes still
// connected stay.
TEST(ClusterDeparted, RetiredNodeLeavesThePerNodeStats) {
    TwoMasters t;
    ClusterClient client(t.base.get(), {{"127.0.0.1", t.seed.port()}}, patient());
    ASSERT_TRUE(start(t.base.get(), client));
    EXPECT_EQ(get(t.base.get(), client, "k").str, "a");
    const std::string a = t.a->addr();
    const std::string b = t.b->addr();
    ASSERT_EQ(client.stats().per_node_commands_errors.count(a), 1u);

    t.owner = t.b->port();
    EXPECT_EQ(get(t.base.get(), client, "k").str, "b");
    ASSERT_TRUE(run_until(t.base.get(), [&] { return client.stats().connections_retired == 1u; }));
    const auto &per_node = client.stats().per_node_commands_errors;
    EXPECT_EQ(per_node.count(a), 0u) << "the retired node A is still counted";
    ASSERT_EQ(per_node.count(b), 1u);
    EXPECT_EQ(per_node.at(b).first, 1u);
    EXPECT_EQ(get(t.base.get(), client, "k").str, "b");
    EXPECT_EQ(client.stats().per_node_commands_errors.at(b).first, 2u) << "B's count was reset";
}

// A node that comes back (here a MOVED points at it again) gets a new
// connection, and the command goes through.
TEST(ClusterDeparted, RetiredNodeThatComesBackGetsANewConnection) {
    TwoMasters t;
    ClusterClient client(t.base.get(), {{"127.0.0.1", t.seed.port()}}, patient());
    ASSERT_TRUE(start(t.base.get(), client));
    EXPECT_EQ(get(t.base.get(), client, "k").str, "a");
    t.owner = t.b->port();
    EXPECT_EQ(get(t.base.get(), client, "k").str, "b");
    ASSERT_TRUE(run_until(t.base.get(), [&] { return t.a->open_connections() == 0; }));
    ASSERT_EQ(client.stats().connections_retired, 1u);

    t.owner = t.a->port();
    EXPECT_EQ(get(t.base.get(), client, "k").str, "a");
    EXPECT_EQ(t.a->received().size(), 2u) << "A's first connection was used again";
    EXPECT_EQ(t.a->open_connections(), 1);
    EXPECT_GE(client.stats().moved, 2u);
}

// A departed node with a command in flight keeps its connection until the
// reply came, and the reply is delivered.
TEST(ClusterDeparted, NodeWithACommandInFlightIsRetiredAfterItsReply) {
    BasePtr base(event_base_new());
    bool reshard = false;
    std::unique_ptr<FakeNode> a, b, c;
    auto slots = [&]() {
        return reshard ? cluster_slots({{{0, 16383}, b->port()}})
                       : cluster_slots({{{0, 8191}, a->port()}, {{8192, 16383}, c->port()}});
    };
    const std::string ka = key_in_half(true), kc = key_in_half(false);
    FakeNode seed(base.get(), [&](const FakeNode::Command &cmd) -> std::string {
        return cmd[0] == "CLUSTER" ? slots() : "-ERR not a master\r\n";
    });
    a = std::make_unique<FakeNode>(base.get(), [&](const FakeNode::Command &cmd) -> std::string {
        return cmd[0] == "CLUSTER" ? slots() : bulk("a");
    });
    b = std::make_unique<FakeNode>(base.get(), [&](const FakeNode::Command &cmd) -> std::string {
        return cmd[0] == "CLUSTER" ? slots() : bulk("b");
    });
    c = std::make_unique<FakeNode>(base.get(), [&](const FakeNode::Command &cmd) -> std::string {
        if (cmd[0] == "CLUSTER") {
            return slots();
        }
        return reshard ? moved(cmd[1], *b) : bulk("c");
    });
    ClusterClient client(base.get(), {{"127.0.0.1", seed.port()}}, patient());
    ASSERT_TRUE(start(base.get(), client));
    EXPECT_EQ(get(base.get(), client, kc).str, "c");

    a->hold_answers();
    bool a_done = false;
    Reply a_reply;
    ASSERT_TRUE(client.command(ka, {"GET", ka}, [&](const Reply &r) {
        a_reply = r;
        a_done = true;
    }));
    ASSERT_TRUE(run_until(base.get(), [&] { return !a->received().empty() && !a->received()[0].empty(); }));

    // Both masters leave: C's connection is idle, A's has the GET unanswered.
    reshard = true;
    EXPECT_EQ(get(base.get(), client, kc).str, "b");
    ASSERT_TRUE(run_until(base.get(), [&] { return client.stats().connections_retired >= 1; }));
    // A few ticks of the client's timer, which looks at departed nodes again.
    run_until(base.get(), [] { return false; }, 300);
    EXPECT_EQ(client.stats().connections_retired, 1u);
    EXPECT_EQ(c->open_connections(), 0);
    EXPECT_EQ(a->open_connections(), 1) << "closed with a command in flight";
    EXPECT_FALSE(a_done);

    a->release_answers();
    ASSERT_TRUE(run_until(base.get(), [&] { return a_done && a->open_connections() == 0; }));
    EXPECT_EQ(a_reply.str, "a");
    EXPECT_EQ(client.stats().connections_retired, 2u);
    EXPECT_EQ(client.node_connections(), 2u); // the seed and B
    EXPECT_EQ(a->received().size(), 1u);
}

} // namespace
