// FrameServer and FrameConnection on a real Unix socket with a libevent loop:
// the hello handshake, framing across reads, and that a bad or surplus peer
// is closed alone and counted.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "levee_version.h"
#include "server_fixture.hpp"

namespace levee::testing {
namespace {

std::vector<std::uint8_t> encoded(const Levee__Frame &frame) {
    std::vector<std::uint8_t> out;
    EXPECT_TRUE(encode_frame(frame, out));
    return out;
}

void expect_query_reply(Client &c, event_base *base, std::uint64_t id) {
    FramePtr r = c.await_frame(base);
    ASSERT_NE(r, nullptr) << "no reply to request " << id;
    EXPECT_EQ(r->body_case, LEVEE__FRAME__BODY_PRESENCE_QUERY_REPLY);
    EXPECT_EQ(r->request_id, id);
}

using FrameServerTest = ServerFixture;

TEST_F(FrameServerTest, HelloHandshakeIsAcceptedAndCounted) {
    auto c = connect();
    c->send_hello();
    FramePtr reply = c->await_frame(base());
    ASSERT_NE(reply, nullptr);
    ASSERT_EQ(reply->body_case, LEVEE__FRAME__BODY_HELLO_REPLY);
    EXPECT_EQ(reply->request_id, 1u);
    EXPECT_TRUE(reply->hello_reply->accepted);
    EXPECT_TRUE(reply->hello_reply->standalone); // the fixture has no Redis
    EXPECT_EQ(reply->hello_reply->protocol_version, static_cast<std::uint32_t>(LEVEE__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT));
    EXPECT_STREQ(reply->hello_reply->server, "leveed/" LEVEE_VERSION);
    EXPECT_EQ(server_->connection_count(), 1u);
    EXPECT_EQ(metrics_.value("leveed_connections_accepted_total"), 1);
    EXPECT_EQ(metrics_.value("leveed_hello_total", {{"result", "accepted"}}), 1);
}

TEST_F(FrameServerTest, FramesSplitAtEveryByteBoundaryAreReassembled) {
    UserQuery query(9);
    std::vector<std::uint8_t> bytes = encoded(Client::hello_frame(LEVEE__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT));
    const std::vector<std::uint8_t> q = encoded(query.f);
    bytes.insert(bytes.end(), q.begin(), q.end());

    for (std::size_t split = 1; split < bytes.size(); split++) {
        auto c = connect();
        c->send_bytes(bytes.data(), split);
        run_until(base(), [&] { return server_->connection_count() == 1; });
        event_base_loop(base(), EVLOOP_ONCE | EVLOOP_NONBLOCK); // let it read the first part alone
        c->send_bytes(bytes.data() + split, bytes.size() - split);
        FramePtr hello = c->await_frame(base());
        ASSERT_NE(hello, nullptr) << "split at " << split;
        EXPECT_EQ(hello->body_case, LEVEE__FRAME__BODY_HELLO_REPLY) << "split at " << split;
        expect_query_reply(*c, base(), 9);
        c.reset();
        ASSERT_TRUE(run_until(base(), [&] { return server_->connection_count() == 0; }));
    }
    EXPECT_EQ(closed("eof"), static_cast<double>(bytes.size() - 1));

    // And one byte per read.
    auto c = connect();
    for (const std::uint8_t b : bytes) {
        c->send_bytes(&b, 1);
        event_base_loop(base(), EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    FramePtr hello = c->await_frame(base());
    ASSERT_NE(hello, nullptr);
    EXPECT_EQ(hello->body_case, LEVEE__FRAME__BODY_HELLO_REPLY);
    expect_query_reply(*c, base(), 9);
    EXPECT_EQ(metrics_.value("leveed_frames_in_total", {{"type", "presence_query"}}), static_cast<double>(bytes.size()));
}

TEST_F(FrameServerTest, PipelinedFramesInOneWriteAreAnsweredInOrder) {
    auto c = connect_hello();
    std::vector<std::uint8_t> bytes;
    for (std::uint64_t id = 100; id < 110; id++) {
        UserQuery q(id);
        const auto b = encoded(q.f);
        bytes.insert(bytes.end(), b.begin(), b.end());
    }
    c->send_bytes(bytes);
    for (std::uint64_t id = 100; id < 110; id++) {
        expect_query_reply(*c, base(), id);
    }
}

TEST_F(FrameServerTest, OversizeLengthPrefixClosesOnlyThatConnection) {
    listen(1024, 1024);
    auto good = connect_hello();
    auto bad = connect_hello();
    const std::uint8_t header[4] = {0, 0, 0x08, 0x00}; // 2048 > max_frame_bytes 1024
    bad->send_bytes(header, sizeof(header));
    ASSERT_TRUE(bad->await_close(base()));
    EXPECT_EQ(closed("oversize"), 1);
    EXPECT_EQ(server_->connection_count(), 1u);

    UserQuery q(3);
    good->send(q.f);
    expect_query_reply(*good, base(), 3);
}

TEST_F(FrameServerTest, MalformedAndTruncatedFramesCloseTheirConnectionAndAreCounted) {
    auto keep = connect_hello();

    auto malformed = connect_hello();
    const std::uint8_t garbage[] = {0, 0, 0, 3, 0xff, 0xff, 0xff};
    malformed->send_bytes(garbage, sizeof(garbage));
    ASSERT_TRUE(malformed->await_close(base()));
    EXPECT_EQ(closed("malformed"), 1);

    auto truncated = connect_hello();
    UserQuery q(4);
    const auto b = encoded(q.f);
    truncated->send_bytes(b.data(), b.size() - 1);
    truncated->close_write();
    ASSERT_TRUE(truncated->await_close(base()));
    EXPECT_EQ(closed("truncated"), 1);

    EXPECT_EQ(server_->connection_count(), 1u);
    keep->send(q.f);
    expect_query_reply(*keep, base(), 4);
}

// The test runs as one user: a policy without it refuses it, one with it
// (by uid or by a group) serves it.
TEST_F(FrameServerTest, APeerThePolicyDoesNotAllowIsClosedAtAcceptAndCounted) {
    peers_ = PeerPolicy{{::geteuid() + 1}, {::getegid() + 1}};
    listen();
    auto refused = connect();
    ASSERT_TRUE(refused->await_close(base()));
    EXPECT_EQ(refused->take_frame(), nullptr);
    EXPECT_EQ(server_->connection_count(), 0u);
    EXPECT_EQ(metrics_.value("leveed_peers_refused_total", {{"socket", "nginx"}}), 1);
    EXPECT_EQ(metrics_.value("leveed_connections_accepted_total"), 0);

    server_->set_peers(PeerPolicy{{}, {::getegid()}});
    auto served = connect_hello();
    EXPECT_EQ(server_->connection_count(), 1u);
    EXPECT_EQ(metrics_.value("leveed_peers_refused_total", {{"socket", "nginx"}}), 1);
}

TEST_F(FrameServerTest, MaxConnectionsRefusesTheSurplusAndCountsIt) {
    listen(2);
    auto a = connect_hello();
    auto b = connect_hello();
    auto surplus = connect(); // the kernel completes connect(); leveed then closes it
    ASSERT_TRUE(surplus->await_close(base()));
    EXPECT_EQ(metrics_.value("leveed_connections_refused_total"), 1);
    EXPECT_EQ(server_->connection_count(), 2u);

    UserQuery q(5);
    a->send(q.f);
    expect_query_reply(*a, base(), 5);

    // A slot freed is a slot for the next peer.
    b.reset();
    ASSERT_TRUE(run_until(base(), [&] { return server_->connection_count() == 1; }));
    auto c = connect_hello();
    EXPECT_EQ(server_->connection_count(), 2u);
}

TEST_F(FrameServerTest, ShutdownClosesEveryConnectionAndRemovesTheSocket) {
    auto a = connect_hello();
    server_->shutdown();
    EXPECT_EQ(server_->connection_count(), 0u);
    EXPECT_TRUE(a->await_close(base()));
    EXPECT_FALSE(std::filesystem::exists(path()));
}

} // namespace
} // namespace levee::testing
