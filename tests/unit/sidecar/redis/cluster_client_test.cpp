// ClusterClient against a real cluster when LEVEE_REDIS_SEEDS ("h:p,h:p") is
// set; otherwise only the tests that need no server run.
#include "cluster_client.hpp"

#include <event2/event.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>

using levee::redis::ClusterClient;
using levee::redis::ClusterOptions;
using levee::redis::HostPort;
using levee::redis::Reply;

namespace {

struct BaseFree {
    void operator()(event_base *b) const { event_base_free(b); }
};
using BasePtr = std::unique_ptr<event_base, BaseFree>;

std::vector<HostPort> live_seeds() {
    const char *env = std::getenv("LEVEE_REDIS_SEEDS");
    std::vector<HostPort> seeds;
    std::string error;
    if (env == nullptr || !levee::redis::parse_host_ports(env, seeds, error)) {
        return {};
    }
    return seeds;
}

// Runs the loop until `done` or a 10 s safety timeout.
void run_until(event_base *base, const bool &done) {
    const auto deadline = levee::redis::now_ms() + 10000;
    while (!done && levee::redis::now_ms() < deadline) {
        event_base_loop(base, EVLOOP_ONCE);
    }
}

} // namespace

TEST(ClusterClient, StartFailsWhenNoSeedAnswers) {
    BasePtr base(event_base_new());
    ClusterOptions opts;
    opts.connect_timeout_ms = 200;
    ClusterClient client(base.get(), {{"127.0.0.1", 1}}, opts);
    bool done = false, ok = true;
    std::string error;
    client.start([&](bool r, const std::string &e) {
        done = true;
        ok = r;
        error = e;
    });
    run_until(base.get(), done);
    EXPECT_TRUE(done);
    EXPECT_FALSE(ok);
    EXPECT_NE(error.find("127.0.0.1:1"), std::string::npos) << error;
}

TEST(ClusterClient, CommandsFailUpwardAfterMaxRetry) {
    BasePtr base(event_base_new());
    ClusterOptions opts;
    opts.max_retry_ms = 300;
    ClusterClient client(base.get(), {{"127.0.0.1", 1}}, opts);
    bool done = false;
    Reply got;
    ASSERT_TRUE(client.command("k", {"GET", "k"}, [&](const Reply &r) {
        got = r;
        done = true;
    }));
    EXPECT_EQ(client.in_flight(), 1u);
    run_until(base.get(), done);
    ASSERT_TRUE(done);
    EXPECT_TRUE(got.error_is("LEVEE_UNAVAILABLE")) << got.str;
    EXPECT_EQ(client.in_flight(), 0u);
    EXPECT_EQ(client.stats().errors, 1u);
}

TEST(ClusterClient, RefusesBeyondMaxInFlight) {
    BasePtr base(event_base_new());
    ClusterOptions opts;
    opts.max_in_flight = 2;
    int shutdown_replies = 0;
    {
        ClusterClient client(base.get(), {{"127.0.0.1", 1}}, opts);
        auto count = [&](const Reply &r) { shutdown_replies += r.error_is("LEVEE_SHUTDOWN"); };
        EXPECT_TRUE(client.command("a", {"GET", "a"}, count));
        EXPECT_TRUE(client.command("b", {"GET", "b"}, count));
        EXPECT_FALSE(client.command("c", {"GET", "c"}, [](const Reply &) { FAIL() << "refused command called"; }));
        EXPECT_EQ(client.stats().refused_full, 1u);
    }
    EXPECT_EQ(shutdown_replies, 2); // the destructor answers what is in flight
}

TEST(ClusterClientLive, SetGetDrainAndShutdown) {
    const auto seeds = live_seeds();
    if (seeds.empty()) {
        GTEST_SKIP() << "LEVEE_REDIS_SEEDS not set";
    }
    BasePtr base(event_base_new());
    auto client = std::make_unique<ClusterClient>(base.get(), seeds);
    bool ready = false, ok = false;
    client->start([&](bool r, const std::string &) { ready = true, ok = r; });
    run_until(base.get(), ready);
    ASSERT_TRUE(ok);
    EXPECT_FALSE(client->masters().empty());

    int answered = 0;
    for (int i = 0; i < 1000; ++i) {
        const std::string key = "levee-test-" + std::to_string(i);
        ASSERT_TRUE(client->command(key, {"SET", key, std::to_string(i)}, [&](const Reply &r) {
            EXPECT_EQ(r.type, Reply::Type::Status) << r.str;
            ++answered;
        }));
    }
    bool drained = false;
    client->drain([&] { drained = true; });
    run_until(base.get(), drained);
    EXPECT_EQ(answered, 1000);

    bool got = false;
    client->command("levee-test-7", {"GET", "levee-test-7"}, [&](const Reply &r) {
        EXPECT_EQ(r.str, "7");
        got = true;
    });
    run_until(base.get(), got);

    // Destroyed with commands in flight: each gets LEVEE_SHUTDOWN, no leak.
    int shutdown = 0;
    for (int i = 0; i < 100; ++i) {
        client->command("k", {"GET", "k"}, [&](const Reply &r) { shutdown += r.error_is("LEVEE_SHUTDOWN"); });
    }
    client.reset();
    EXPECT_EQ(shutdown, 100);
}
