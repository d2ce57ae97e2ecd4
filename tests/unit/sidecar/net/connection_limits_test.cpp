// What a peer may hold of leveed: a connection that never says hello, a frame
// left half-sent and a peer that never reads its replies are each closed and
// counted, and none of them touches the other connections. And accept()
// failing for want of file descriptors pauses accepting instead of spinning.
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/resource.h>

#include "server_fixture.hpp"

namespace levee::testing {
namespace {

using ConnectionLimitsTest = ServerFixture;

ConnectionLimits short_limits() {
    ConnectionLimits l;
    l.hello_timeout_ms = 50;
    l.frame_timeout_ms = 50;
    return l;
}

void expect_query_answered(Client &c, event_base *base, std::uint64_t id) {
    UserQuery q(id);
    c.send(q.f);
    FramePtr r = c.await_frame(base);
    ASSERT_NE(r, nullptr) << "no reply to request " << id;
    EXPECT_EQ(r->request_id, id);
}

TEST_F(ConnectionLimitsTest, AConnectionSilentBeforeHelloIsClosedAndOneThatSaidHelloStays) {
    listen(1024, short_limits());
    auto linked = connect_hello(); // accepted first: its hello timeout would fire first
    auto silent = connect();
    ASSERT_TRUE(silent->await_close(base()));
    EXPECT_EQ(closed("hello_timeout"), 1);
    EXPECT_EQ(server_->connection_count(), 1u) << "an nginx link sends nothing between requests: it must stay";
    expect_query_answered(*linked, base(), 7);
}

TEST_F(ConnectionLimitsTest, AHalfSentHelloIsClosedAtTheHelloTimeout) {
    listen(1024, short_limits());
    auto c = connect();
    std::vector<std::uint8_t> hello;
    ASSERT_TRUE(encode_frame(Client::hello_frame(LEVEE__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT), hello));
    c->send_bytes(hello.data(), hello.size() - 1);
    ASSERT_TRUE(c->await_close(base()));
    EXPECT_EQ(closed("hello_timeout") + closed("frame_timeout"), 1);
}

TEST_F(ConnectionLimitsTest, AFrameLeftHalfSentIsClosedAtTheFrameTimeout) {
    listen(1024, short_limits());
    auto idle = connect_hello();
    auto slow = connect_hello();
    UserQuery q(3);
    std::vector<std::uint8_t> bytes;
    ASSERT_TRUE(encode_frame(q.f, bytes));
    slow->send_bytes(bytes.data(), bytes.size() - 1);
    ASSERT_TRUE(slow->await_close(base()));
    EXPECT_EQ(closed("frame_timeout"), 1);
    EXPECT_EQ(server_->connection_count(), 1u);
    expect_query_answered(*idle, base(), 4);
}

TEST_F(ConnectionLimitsTest, WholeFramesStartNoFrameClock) {
    listen(1024, short_limits());
    auto c = connect_hello();
    expect_query_answered(*c, base(), 5);
    // A witness whose half frame starts its clock after c's last whole frame.
    auto witness = connect_hello();
    UserQuery q(6);
    std::vector<std::uint8_t> bytes;
    ASSERT_TRUE(encode_frame(q.f, bytes));
    witness->send_bytes(bytes.data(), 2);
    ASSERT_TRUE(witness->await_close(base()));
    EXPECT_EQ(closed("frame_timeout"), 1) << "only the witness";
    expect_query_answered(*c, base(), 7);
}

// Sends queries without reading a reply, never blocking (the loop runs on
// this thread), until `stop()` or `max_queries` were sent.
void flood_without_reading(Client &c, event_base *base, std::size_t max_queries, const std::function<bool()> &stop) {
    constexpr std::size_t kPerChunk = 64;
    std::vector<std::uint8_t> chunk;
    for (std::uint64_t id = 0; id < kPerChunk; id++) {
        UserQuery q(id + 10);
        EXPECT_TRUE(encode_frame(q.f, chunk));
    }
    std::size_t sent = 0, offset = 0;
    while (sent < max_queries && !stop()) {
        const ssize_t w = ::send(c.fd(), chunk.data() + offset, chunk.size() - offset, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            offset += static_cast<std::size_t>(w);
            if (offset == chunk.size()) {
                offset = 0;
                sent += kPerChunk;
            }
        } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            break; // leveed closed it
        }
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
}

TEST_F(ConnectionLimitsTest, APeerThatNeverReadsIsClosedOnceItsRepliesPassTheBound) {
    ConnectionLimits l;
    l.max_output_bytes = 64 * 1024;
    listen(1024, l);
    auto other = connect_hello();
    auto c = connect_hello();
    // Each reply is some 20 bytes: 200000 queries are ~4 MB of replies, far
    // past the socket buffers and the bound.
    flood_without_reading(*c, base(), 200000, [&] { return closed("slow_reader") > 0; });
    EXPECT_EQ(closed("slow_reader"), 1);
    EXPECT_EQ(server_->connection_count(), 1u);
    expect_query_answered(*other, base(), 8);
}

TEST_F(ConnectionLimitsTest, APeerThatNeverReadsIsClosedAtTheDefaultBoundNotAt64MiB) {
    listen(); // default limits
    auto c = connect_hello();
    // ~20 bytes per reply: 1.2M queries are ~24 MB of replies, three times the
    // default 8 MiB bound and well under the old 64 MiB one.
    flood_without_reading(*c, base(), 1200000, [&] { return closed("slow_reader") > 0; });
    EXPECT_EQ(closed("slow_reader"), 1);
}

TEST_F(ConnectionLimitsTest, APeerThatStopsReadingIsClosedWhenItsRepliesWaitPastTheFrameTimeout) {
    ConnectionLimits l;
    l.frame_timeout_ms = 50;
    listen(1024, l);
    auto c = connect_hello();
    const auto pending = [&] {
        const FrameConnection *conn = server_->find(1);
        return conn == nullptr ? 0 : conn->output_pending();
    };
    // Until leveed holds more replies than the socket buffers can take in
    // (some 200 KB), well under the bound of 8m.
    flood_without_reading(*c, base(), 400000, [&] { return pending() > (1u << 20); });
    ASSERT_GT(pending(), 1u << 20);
    ASSERT_TRUE(run_until(base(), [&] { return closed("slow_reader") > 0; }));
    EXPECT_EQ(server_->connection_count(), 0u);
}

// libevent's warnings (the old code's only trace of a failed accept).
int g_accept_warnings = 0;
void count_accept_warnings(int, const char *msg) {
    if (std::string(msg).find("accept") != std::string::npos) {
        g_accept_warnings++;
    }
}

struct NofileLimit {
    explicit NofileLimit(rlim_t soft) {
        ::getrlimit(RLIMIT_NOFILE, &saved);
        rlimit lowered = saved;
        lowered.rlim_cur = soft;
        ok = ::setrlimit(RLIMIT_NOFILE, &lowered) == 0;
    }
    ~NofileLimit() { ::setrlimit(RLIMIT_NOFILE, &saved); }
    rlimit saved{};
    bool ok = false;
};

double accept_errors(const Metrics &m) {
    return m.value("leveed_accept_errors_total", {{"errno", "EMFILE"}});
}

TEST_F(ConnectionLimitsTest, OutOfFileDescriptorsAcceptPausesInsteadOfSpinningAndRecovers) {
    auto linked = connect_hello();
    event_set_log_callback(count_accept_warnings);
    std::vector<int> filler;
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(null_fd, 0);
    {
        NofileLimit limit(256);
        ASSERT_TRUE(limit.ok);
        for (;;) {
            const int fd = ::dup(null_fd);
            if (fd < 0) {
                ASSERT_EQ(errno, EMFILE);
                break;
            }
            filler.push_back(fd);
        }
        // One descriptor for the client; none left for leveed's accept().
        ::close(filler.back());
        filler.pop_back();
        auto c = connect();

        // A bounded stretch of the loop: 300 ms of it by libevent's own timer.
        const timeval stretch{0, 300 * 1000};
        event_base_loopexit(base(), &stretch);
        event_base_dispatch(base());
        const double attempts = accept_errors(metrics_) + g_accept_warnings;
        EXPECT_GE(attempts, 1) << "accept() never failed: the test did not run out of descriptors";
        EXPECT_LE(attempts, 10) << "accept() retried at once: a busy loop";
        EXPECT_EQ(server_->connection_count(), 1u);

        for (const int fd : filler) {
            ::close(fd);
        }
        filler.clear();
        c->send_hello();
        FramePtr reply = c->await_frame(base());
        ASSERT_NE(reply, nullptr) << "accepting did not resume once descriptors were free";
        EXPECT_EQ(reply->body_case, LEVEE__FRAME__BODY_HELLO_REPLY);
    }
    event_set_log_callback(nullptr);
    ::close(null_fd);
    expect_query_answered(*linked, base(), 9);
}

} // namespace
} // namespace levee::testing
