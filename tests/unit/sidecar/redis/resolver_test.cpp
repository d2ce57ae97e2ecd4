// Host names of Redis nodes are resolved on the loop (evdns), not by
// hiredis's blocking getaddrinfo: a nameserver that never answers holds up
// the connect to that node only, never the loop nor the other nodes.
#include "resolver.hpp"

#include <arpa/inet.h>
#include <event2/event.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "cluster_client.hpp"
#include "event_ptr.hpp"
#include "fake_node.hpp"

namespace levee::redis {
namespace {

struct BaseFree {
    void operator()(event_base *b) const { event_base_free(b); }
};
using BasePtr = std::unique_ptr<event_base, BaseFree>;

// Runs the loop until `done()`; the deadline only stops a hung test.
template <typename Pred> bool run_until(event_base *base, Pred done) {
    const auto deadline = now_ms() + 10000;
    while (!done() && now_ms() < deadline) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    return done();
}

// A nameserver on 127.0.0.1 that reads queries and never answers.
class SilentNameserver {
  public:
    explicit SilentNameserver(event_base *base) {
        fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof(addr);
        if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0 ||
            ::getsockname(fd_, reinterpret_cast<sockaddr *>(&addr), &len) != 0) {
            std::abort();
        }
        port_ = ntohs(addr.sin_port);
        ev_.reset(event_new(base, fd_, EV_READ | EV_PERSIST, &SilentNameserver::on_read, this));
        event_add(ev_.get(), nullptr);
    }
    ~SilentNameserver() {
        ev_.reset();
        ::close(fd_);
    }
    SilentNameserver(const SilentNameserver &) = delete;
    SilentNameserver &operator=(const SilentNameserver &) = delete;

    std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }
    int queries() const { return queries_; }

  private:
    static void on_read(evutil_socket_t fd, short, void *arg) {
        char buf[512];
        while (::recv(fd, buf, sizeof(buf), 0) > 0) {
            ++static_cast<SilentNameserver *>(arg)->queries_;
        }
    }
    int fd_ = -1;
    int port_ = 0;
    int queries_ = 0;
    EventPtr ev_;
};

struct Answer {
    bool done = false;
    bool ok = false;
    std::string address;
    std::string error;
};

std::string bulk(const std::string &s) { return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n"; }

// A one-node cluster: every slot on the fake node itself.
testing::FakeNode::Answer one_node(const int &port) {
    return [&port](const testing::FakeNode::Command &c) -> std::string {
        if (c[0] == "CLUSTER") {
            return "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n" + bulk("127.0.0.1") + ":" + std::to_string(port) + "\r\n";
        }
        return bulk("v");
    };
}

TEST(Resolver, NumericHostsNeedNoLookup) {
    EXPECT_TRUE(is_numeric_host("127.0.0.1"));
    EXPECT_TRUE(is_numeric_host("::1"));
    EXPECT_TRUE(is_numeric_host("2001:db8::7"));
    EXPECT_FALSE(is_numeric_host("localhost"));
    EXPECT_FALSE(is_numeric_host("redis-1.example"));
    EXPECT_FALSE(is_numeric_host("10.0.0"));
    EXPECT_FALSE(is_numeric_host(""));
}

// /etc/hosts is read (evdns maps localhost to 127.0.0.1 even without one);
// the answer comes on a later loop turn, never from inside resolve().
TEST(Resolver, LocalhostResolvesToTheLoopbackOnALaterTurn) {
    BasePtr base(event_base_new());
    auto resolver = make_dns_resolver(base.get());
    Answer a;
    bool inside = true;
    auto lookup = resolver->resolve("localhost", [&](bool ok, const std::string &address, const std::string &error) {
        EXPECT_FALSE(inside) << "answered from inside resolve()";
        a = {true, ok, address, error};
    });
    inside = false;
    ASSERT_TRUE(run_until(base.get(), [&] { return a.done; }));
    EXPECT_TRUE(a.ok) << a.error;
    EXPECT_EQ(a.address, "127.0.0.1");
}

TEST(Resolver, ANameUnderInvalidFailsWithTheName) {
    BasePtr base(event_base_new());
    auto resolver = make_dns_resolver(base.get());
    Answer a;
    auto lookup = resolver->resolve("seed.invalid", [&](bool ok, const std::string &address, const std::string &error) {
        a = {true, ok, address, error};
    });
    ASSERT_TRUE(run_until(base.get(), [&] { return a.done; }));
    EXPECT_FALSE(a.ok);
    EXPECT_NE(a.error.find("seed.invalid"), std::string::npos) << a.error;
}

TEST(Resolver, ACancelledLookupNeverAnswers) {
    BasePtr base(event_base_new());
    SilentNameserver ns(base.get());
    auto resolver = make_dns_resolver(base.get(), ns.addr());
    bool called = false;
    auto lookup = resolver->resolve("redis-seed.levee-test",
                                    [&](bool, const std::string &, const std::string &) { called = true; });
    ASSERT_TRUE(run_until(base.get(), [&] { return ns.queries() > 0; })) << "no query reached the nameserver";
    lookup.reset();
    // What evdns does with the cancel happens on the next turns.
    for (int i = 0; i < 10; i++) {
        event_base_loop(base.get(), EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    EXPECT_FALSE(called);
}

// hiredis resolved the seed's name with getaddrinfo(3) on the loop: with a
// nameserver that does not answer, every frame of every nginx worker waited.
// Now the loop goes on: another client on the same loop starts and has its
// command answered while the named seed's lookup is still unanswered.
TEST(ClusterClientDns, ASeedStillResolvingStallsNothingElse) {
    BasePtr base(event_base_new());
    SilentNameserver ns(base.get());
    auto resolver = make_dns_resolver(base.get(), ns.addr());
    int port = 0;
    testing::FakeNode node(base.get(), one_node(port));
    port = node.port();

    ClusterOptions slow;
    slow.resolver = resolver.get();
    slow.connect_timeout_ms = 600000; // the lookup stays pending for the whole test
    auto named = std::make_unique<ClusterClient>(base.get(), std::vector<HostPort>{{"redis-seed.levee-test", port}},
                                                 slow);
    bool named_done = false;
    named->start([&](bool, const std::string &) { named_done = true; });

    ClusterClient numeric(base.get(), {{"127.0.0.1", port}}, ClusterOptions{});
    bool ready = false;
    numeric.start([&](bool ok, const std::string &error) {
        EXPECT_TRUE(ok) << error;
        ready = true;
    });
    ASSERT_TRUE(run_until(base.get(), [&] { return ready && ns.queries() > 0; }));
    bool answered = false;
    ASSERT_TRUE(numeric.command("k", {"GET", "k"}, [&](const Reply &r) {
        EXPECT_EQ(r.str, "v");
        answered = true;
    }));
    ASSERT_TRUE(run_until(base.get(), [&] { return answered; }));
    EXPECT_FALSE(named_done) << "the named seed's lookup is unanswered: its start cannot be over";
    // Destroying the client cancels its lookup; evdns reports the cancel on
    // the loop's next turn, which frees what the lookup held.
    named.reset();
    event_base_loop(base.get(), EVLOOP_NONBLOCK);
}

TEST(ClusterClientDns, ASeedGivenAsLocalhostConnects) {
    BasePtr base(event_base_new());
    int port = 0;
    testing::FakeNode node(base.get(), one_node(port));
    port = node.port();
    ClusterClient client(base.get(), {{"localhost", port}}, ClusterOptions{});
    Answer started;
    client.start([&](bool ok, const std::string &error) { started = {true, ok, "", error}; });
    ASSERT_TRUE(run_until(base.get(), [&] { return started.done; }));
    EXPECT_TRUE(started.ok) << started.error;
    bool answered = false;
    ASSERT_TRUE(client.command("k", {"GET", "k"}, [&](const Reply &r) {
        EXPECT_EQ(r.str, "v");
        answered = true;
    }));
    EXPECT_TRUE(run_until(base.get(), [&] { return answered; }));
}

// A failed lookup is a failed connect: start() fails, naming the host.
TEST(ClusterClientDns, ASeedThatDoesNotResolveFailsStartWithItsName) {
    BasePtr base(event_base_new());
    ClusterClient client(base.get(), {{"nowhere.invalid", 6379}}, ClusterOptions{});
    Answer started;
    client.start([&](bool ok, const std::string &error) { started = {true, ok, "", error}; });
    ASSERT_TRUE(run_until(base.get(), [&] { return started.done; }));
    EXPECT_FALSE(started.ok);
    EXPECT_NE(started.error.find("resolve nowhere.invalid"), std::string::npos) << started.error;
}

} // namespace
} // namespace levee::redis
