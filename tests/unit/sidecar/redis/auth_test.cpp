// AUTH on the cluster client's connections, against fake nodes (fake_node.hpp)
// that can do what a real Redis will not: answer commands queued behind a
// refused AUTH, echo the password.
#include <event2/event.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "cluster_client.hpp"
#include "crc16.hpp"
#include "fake_node.hpp"
#include "node_connection.hpp"

using levee::redis::ClusterClient;
using levee::redis::ClusterOptions;
using levee::redis::HostPort;
using levee::redis::NodeConnection;
using levee::redis::Reply;
using levee::redis::testing::BasePtr;
using levee::redis::testing::FakeNode;
using levee::redis::testing::run_until;

namespace {

constexpr const char *kWrongPass = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";

std::string bulk(const std::string &s) { return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n"; }

// Every slot on one node, as CLUSTER SLOTS says it.
std::string all_slots_on(int port) {
    return "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n" + bulk("127.0.0.1") + ":" + std::to_string(port) + "\r\n";
}

struct Recorder : NodeConnection::Handler {
    struct Got {
        NodeConnection::Kind kind;
        uint64_t id;
        bool answered;
        std::string str;
    };
    std::vector<Got> replies;
    std::vector<std::string> downs;
    bool down_was_auth = false;
    std::string auth_error;

    void on_node_reply(NodeConnection &, NodeConnection::Kind kind, uint64_t id, const Reply *reply, int) override {
        replies.push_back(Got{kind, id, reply != nullptr, reply ? reply->str : ""});
    }
    void on_node_down(NodeConnection &node, const std::string &why) override {
        downs.push_back(why);
        down_was_auth = node.auth_refused();
        auth_error = node.auth_error();
    }
};

TEST(NodeAuth, AuthGoesFirstOnTheConnectionWithUserAndPassword) {
    BasePtr base(event_base_new());
    FakeNode fake(base.get(), [](const FakeNode::Command &c) -> std::string {
        return c[0] == "AUTH" ? "+OK\r\n" : "+PONG\r\n";
    });
    for (const std::string user : {"", "levee"}) {
        Recorder rec;
        NodeConnection::Options opts;
        opts.user = user;
        opts.password = "s3cret";
        NodeConnection node(base.get(), {"127.0.0.1", fake.port()}, opts, rec);
        std::string error;
        // Queued before the connection is even up: they must still go out behind AUTH.
        ASSERT_TRUE(node.send(NodeConnection::Kind::Command, 1, {"PING"}, error)) << error;
        ASSERT_TRUE(node.send(NodeConnection::Kind::Command, 2, {"PING"}, error)) << error;
        ASSERT_TRUE(run_until(base.get(), [&] { return rec.replies.size() == 2; }));
        EXPECT_TRUE(rec.replies[0].answered && rec.replies[1].answered);
        EXPECT_EQ(rec.replies[0].str, "PONG");
        const auto got = fake.received().back();
        ASSERT_EQ(got.size(), 3u);
        const FakeNode::Command auth =
            user.empty() ? FakeNode::Command{"AUTH", "s3cret"} : FakeNode::Command{"AUTH", "levee", "s3cret"};
        EXPECT_EQ(got[0], auth);
        EXPECT_EQ(got[1], FakeNode::Command{"PING"});
        EXPECT_EQ(node.auth_refusals(), 0);
        EXPECT_TRUE(rec.downs.empty());
    }
}

TEST(NodeAuth, NoPasswordSendsNoAuth) {
    BasePtr base(event_base_new());
    FakeNode fake(base.get(), [](const FakeNode::Command &) -> std::string { return "+PONG\r\n"; });
    Recorder rec;
    NodeConnection node(base.get(), {"127.0.0.1", fake.port()}, {}, rec);
    std::string error;
    ASSERT_TRUE(node.send(NodeConnection::Kind::Command, 1, {"PING"}, error)) << error;
    ASSERT_TRUE(run_until(base.get(), [&] { return rec.replies.size() == 1; }));
    ASSERT_EQ(fake.received().size(), 1u);
    EXPECT_EQ(fake.received()[0], std::vector<FakeNode::Command>{{"PING"}});
}

// The worst case: a node that refuses AUTH and then answers what was
// pipelined behind it (Redis answers NOAUTH). Neither may count as answered.
TEST(NodeAuth, RefusedAuthLosesEverythingQueuedBehindIt) {
    for (const int wait_replicas : {0, 1}) {
        BasePtr base(event_base_new());
        FakeNode fake(base.get(), [](const FakeNode::Command &c) -> std::string {
            if (c[0] == "AUTH") {
                return kWrongPass;
            }
            return c[0] == "WAIT" ? ":1\r\n" : "+OK\r\n";
        });
        Recorder rec;
        NodeConnection::Options opts;
        opts.password = "wrong";
        opts.wait_replicas = wait_replicas;
        NodeConnection node(base.get(), {"127.0.0.1", fake.port()}, opts, rec);
        std::string error;
        for (uint64_t id = 1; id <= 3; ++id) {
            ASSERT_TRUE(node.send(NodeConnection::Kind::Command, id, {"SET", "k", "v"}, error)) << error;
        }
        ASSERT_TRUE(node.send(NodeConnection::Kind::Refresh, 9, {"CLUSTER", "SLOTS"}, error)) << error;
        ASSERT_TRUE(run_until(base.get(), [&] { return !rec.downs.empty(); })) << "wait_replicas " << wait_replicas;
        ASSERT_EQ(rec.replies.size(), 4u) << "wait_replicas " << wait_replicas;
        for (const auto &r : rec.replies) {
            EXPECT_FALSE(r.answered) << "id " << r.id << " reported answered (" << r.str << ") behind a refused AUTH";
        }
        EXPECT_TRUE(rec.down_was_auth);
        EXPECT_EQ(rec.auth_error, "WRONGPASS invalid username-password pair or user is disabled.");
        EXPECT_NE(rec.downs[0].find("AUTH failed: WRONGPASS"), std::string::npos) << rec.downs[0];
        EXPECT_EQ(node.auth_refusals(), 1);
        // A refused AUTH backs off like a refused connect.
        EXPECT_EQ(node.connect_failures(), 1);
        EXPECT_FALSE(node.send(NodeConnection::Kind::Command, 4, {"GET", "k"}, error));
        EXPECT_NE(error.find("AUTH failed"), std::string::npos) << error;
    }
}

TEST(NodeAuth, TheLoggedErrorNeverCarriesThePassword) {
    BasePtr base(event_base_new());
    FakeNode fake(base.get(), [](const FakeNode::Command &c) -> std::string {
        return c[0] == "AUTH" ? "-ERR no such password: " + c.back() + " (" + c.back() + ")\r\n" : "+OK\r\n";
    });
    Recorder rec;
    NodeConnection::Options opts;
    opts.password = "hunter2";
    NodeConnection node(base.get(), {"127.0.0.1", fake.port()}, opts, rec);
    std::string error;
    ASSERT_TRUE(node.send(NodeConnection::Kind::Command, 1, {"PING"}, error)) << error;
    ASSERT_TRUE(run_until(base.get(), [&] { return !rec.downs.empty(); }));
    EXPECT_EQ(rec.auth_error, "ERR no such password: <password> (<password>)");
    EXPECT_EQ(rec.downs[0].find("hunter2"), std::string::npos) << rec.downs[0];
}

// Seeds, the masters CLUSTER SLOTS names and MOVED targets all get AUTH first.
TEST(ClusterAuth, EveryConnectionOpensWithAuth) {
    BasePtr base(event_base_new());
    int master_port = 0;
    std::string target_addr;
    const std::string moved = "-MOVED " + std::to_string(levee::redis::key_slot("k")) + " ";
    auto answer = [&](bool is_target) {
        return [&, is_target](const FakeNode::Command &c) -> std::string {
            if (c[0] == "AUTH") {
                return "+OK\r\n";
            }
            if (c[0] == "CLUSTER") {
                return all_slots_on(master_port);
            }
            return is_target ? bulk("v") : moved + target_addr + "\r\n";
        };
    };
    FakeNode seed(base.get(), answer(false));
    FakeNode master(base.get(), answer(false));
    FakeNode target(base.get(), answer(true));
    master_port = master.port();
    target_addr = target.addr();

    ClusterOptions opts;
    opts.user = "levee";
    opts.password = "s3cret";
    ClusterClient client(base.get(), {{"127.0.0.1", seed.port()}}, opts);
    bool ready = false, ok = false;
    client.start([&](bool r, const std::string &) { ready = true, ok = r; });
    ASSERT_TRUE(run_until(base.get(), [&] { return ready; }));
    ASSERT_TRUE(ok);
    bool done = false;
    Reply got;
    ASSERT_TRUE(client.command("k", {"GET", "k"}, [&](const Reply &r) {
        got = r;
        done = true;
    }));
    ASSERT_TRUE(run_until(base.get(), [&] { return done; }));
    EXPECT_EQ(got.str, "v");
    EXPECT_EQ(client.stats().moved, 1u);
    const FakeNode::Command auth{"AUTH", "levee", "s3cret"};
    for (const FakeNode *fake : {&seed, &master, &target}) {
        const auto conns = fake->received();
        ASSERT_FALSE(conns.empty()) << fake->addr() << " was never connected to";
        for (const auto &commands : conns) {
            ASSERT_FALSE(commands.empty());
            EXPECT_EQ(commands[0], auth) << fake->addr();
            EXPECT_EQ(std::count(commands.begin(), commands.end(), auth), 1) << fake->addr();
        }
    }
    EXPECT_EQ(client.stats().auth_failures, 0u);
}

// A wrong password: start() says so, and a command fails upward once its
// retries run out, naming the refusal; nothing behind the AUTH succeeds.
TEST(ClusterAuth, WrongPasswordFailsCommandsUpwardNamingTheRefusal) {
    BasePtr base(event_base_new());
    FakeNode fake(base.get(), [](const FakeNode::Command &c) -> std::string {
        return c[0] == "AUTH" ? kWrongPass : "+OK\r\n";
    });
    ClusterOptions opts;
    opts.password = "wrong";
    opts.max_retry_ms = 400;
    opts.retry_backoff_max_ms = 50;
    ClusterClient client(base.get(), {{"127.0.0.1", fake.port()}}, opts);
    bool ready = false, ok = true;
    std::string error;
    client.start([&](bool r, const std::string &e) {
        ready = true;
        ok = r;
        error = e;
    });
    ASSERT_TRUE(run_until(base.get(), [&] { return ready; }));
    EXPECT_FALSE(ok);
    EXPECT_NE(error.find("AUTH failed: WRONGPASS"), std::string::npos) << error;

    bool done = false;
    Reply got;
    ASSERT_TRUE(client.command("k", {"SET", "k", "v"}, [&](const Reply &r) {
        got = r;
        done = true;
    }));
    ASSERT_TRUE(run_until(base.get(), [&] { return done; }));
    EXPECT_TRUE(got.error_is("LEVEE_UNAVAILABLE")) << got.str;
    EXPECT_NE(got.str.find("AUTH failed: WRONGPASS"), std::string::npos) << got.str;
    EXPECT_EQ(got.str.find("wrong"), std::string::npos) << got.str;
    EXPECT_GE(client.stats().auth_failures, 1u);
    EXPECT_EQ(client.in_flight(), 0u);
}

} // namespace
