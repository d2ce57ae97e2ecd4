// The Dispatcher behind a real FrameServer (standalone services): hello
// first and in our protocol version, requests routed to their service with
// their request id, frames leveed never expects closing the connection.
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "../net/server_fixture.hpp"

namespace levee::testing {
namespace {

using DispatcherTest = ServerFixture;

TEST(FrameTypeName, NamesEveryBodyAndUnknownOtherwise) {
    EXPECT_STREQ(frame_type_name(LEVEE__FRAME__BODY_HELLO), "hello");
    EXPECT_STREQ(frame_type_name(LEVEE__FRAME__BODY_PRESENCE_BATCH), "presence_batch");
    EXPECT_STREQ(frame_type_name(LEVEE__FRAME__BODY_REGISTRY_ACK), "registry_ack");
    EXPECT_STREQ(frame_type_name(LEVEE__FRAME__BODY__NOT_SET), "unknown");
}

TEST_F(DispatcherTest, ARequestBeforeHelloClosesTheConnectionUnanswered) {
    auto c = connect();
    UserQuery q(2);
    c->send(q.f);
    EXPECT_TRUE(c->await_close(base()));
    EXPECT_EQ(c->take_frame(), nullptr);
    EXPECT_EQ(closed("no_hello"), 1);
}

TEST_F(DispatcherTest, AnotherProtocolVersionIsRefusedWithTheReasonThenClosed) {
    auto c = connect();
    c->send_hello(2);
    FramePtr reply = c->await_frame(base());
    ASSERT_NE(reply, nullptr);
    ASSERT_EQ(reply->body_case, LEVEE__FRAME__BODY_HELLO_REPLY);
    EXPECT_FALSE(reply->hello_reply->accepted);
    EXPECT_STREQ(reply->hello_reply->reason, "protocol version 2 is not supported; leveed speaks version 1");
    EXPECT_TRUE(c->await_close(base()));
    EXPECT_EQ(closed("protocol_version"), 1);
    EXPECT_EQ(metrics_.value("leveed_hello_total", {{"result", "refused"}}), 1);
}

TEST_F(DispatcherTest, AReplyFrameSentToLeveedClosesTheConnectionAfterQueuedReplies) {
    auto c = connect_hello();
    UserQuery q(3);
    Levee__PresenceAck ack = LEVEE__PRESENCE_ACK__INIT;
    Levee__Frame unexpected = LEVEE__FRAME__INIT;
    unexpected.request_id = 4;
    unexpected.body_case = LEVEE__FRAME__BODY_PRESENCE_ACK;
    unexpected.presence_ack = &ack;
    std::vector<std::uint8_t> bytes;
    ASSERT_TRUE(encode_frame(q.f, bytes));
    ASSERT_TRUE(encode_frame(unexpected, bytes));
    c->send_bytes(bytes);
    FramePtr reply = c->await_frame(base());
    ASSERT_NE(reply, nullptr) << "the reply queued before the bad frame still goes out";
    EXPECT_EQ(reply->request_id, 3u);
    EXPECT_TRUE(c->await_close(base()));
    EXPECT_EQ(closed("unexpected_type"), 1);
}

TEST_F(DispatcherTest, RoutesEachRequestToItsServiceWithItsRequestId) {
    auto c = connect_hello();

    Levee__PresenceRecord rec = LEVEE__PRESENCE_RECORD__INIT;
    rec.user = const_cast<char *>("alice");
    rec.room = const_cast<char *>("");
    rec.last_seen_ms = 1;
    Levee__PresenceRecord *recs[] = {&rec};
    Levee__PresenceBatch batch = LEVEE__PRESENCE_BATCH__INIT;
    batch.n_records = 1;
    batch.records = recs;
    Levee__Frame f = LEVEE__FRAME__INIT;
    f.request_id = 10;
    f.body_case = LEVEE__FRAME__BODY_PRESENCE_BATCH;
    f.presence_batch = &batch;
    c->send(f);
    FramePtr ack = c->await_frame(base());
    ASSERT_NE(ack, nullptr);
    ASSERT_EQ(ack->body_case, LEVEE__FRAME__BODY_PRESENCE_ACK);
    EXPECT_EQ(ack->request_id, 10u);
    EXPECT_TRUE(ack->presence_ack->ok);

    Levee__RegistryEntry entry = LEVEE__REGISTRY_ENTRY__INIT;
    entry.key.data = reinterpret_cast<std::uint8_t *>(const_cast<char *>("alice"));
    entry.key.len = 5;
    entry.server = const_cast<char *>("10.0.0.1:80");
    Levee__RegistryEntry *entries[] = {&entry};
    Levee__RegistryBatch reg = LEVEE__REGISTRY_BATCH__INIT;
    reg.ttl_ms = 1000;
    reg.n_entries = 1;
    reg.entries = entries;
    Levee__Frame g = LEVEE__FRAME__INIT;
    g.request_id = 11;
    g.body_case = LEVEE__FRAME__BODY_REGISTRY_BATCH;
    g.registry_batch = &reg;
    c->send(g);
    FramePtr rack = c->await_frame(base());
    ASSERT_NE(rack, nullptr);
    ASSERT_EQ(rack->body_case, LEVEE__FRAME__BODY_REGISTRY_ACK);
    EXPECT_EQ(rack->request_id, 11u);
    EXPECT_TRUE(rack->registry_ack->ok);

    UserQuery q(13);
    c->send(q.f);
    FramePtr qreply = c->await_frame(base());
    ASSERT_NE(qreply, nullptr);
    ASSERT_EQ(qreply->body_case, LEVEE__FRAME__BODY_PRESENCE_QUERY_REPLY);
    EXPECT_EQ(qreply->request_id, 13u);
    ASSERT_EQ(qreply->presence_query_reply->n_users, 1u);
    EXPECT_TRUE(qreply->presence_query_reply->users[0]->online) << "the batch above made alice online";

    EXPECT_EQ(metrics_.value("leveed_frames_in_total", {{"type", "presence_batch"}}), 1);
    EXPECT_EQ(metrics_.value("leveed_frames_out_total", {{"type", "presence_ack"}}), 1);
    EXPECT_EQ(metrics_.value("leveed_frames_out_total", {{"type", "hello_reply"}}), 1);
}

// A probe writes any key: served on the admin socket only. On nginx's
// socket it is answered with an error, counted, and the connection stays.
TEST_F(DispatcherTest, AProbeIsServedOnTheAdminSocketOnly) {
    listen_admin();
    Levee__ProbeRequest probe = LEVEE__PROBE_REQUEST__INIT;
    probe.key = const_cast<char *>("k");
    probe.value = const_cast<char *>("v");
    Levee__Frame p = LEVEE__FRAME__INIT;
    p.request_id = 12;
    p.body_case = LEVEE__FRAME__BODY_PROBE;
    p.probe = &probe;

    auto nginx = connect_hello();
    nginx->send(p);
    FramePtr refused = nginx->await_frame(base());
    ASSERT_NE(refused, nullptr);
    ASSERT_EQ(refused->body_case, LEVEE__FRAME__BODY_PROBE_REPLY);
    EXPECT_EQ(refused->request_id, 12u);
    EXPECT_NE(std::string(refused->probe_reply->error).find("administrative"), std::string::npos);
    EXPECT_EQ(metrics_.value("leveed_requests_refused_total", {{"reason", "admin_only"}}), 1);
    UserQuery q(13);
    nginx->send(q.f);
    FramePtr still = nginx->await_frame(base());
    ASSERT_NE(still, nullptr);
    EXPECT_EQ(still->request_id, 13u);

    // ids of the two sockets' connections overlap: each reply finds its own
    auto admin = connect_hello(admin_path());
    admin->send(p);
    FramePtr served = admin->await_frame(base());
    ASSERT_NE(served, nullptr);
    ASSERT_EQ(served->body_case, LEVEE__FRAME__BODY_PROBE_REPLY);
    EXPECT_EQ(served->request_id, 12u);
    EXPECT_FALSE(served->probe_reply->ok) << "standalone has no stores to probe";
    EXPECT_NE(std::string(served->probe_reply->error).find("no Redis Cluster configured"), std::string::npos);
    EXPECT_EQ(metrics_.value("leveed_connections_accepted_total", {{"socket", "admin"}}), 1);
}

TEST_F(DispatcherTest, ARegistryBatchNeedsARegistryOfItsTtlDeclared) {
    auto c = connect_hello();
    Levee__RegistryEntry entry = LEVEE__REGISTRY_ENTRY__INIT;
    entry.key.data = reinterpret_cast<std::uint8_t *>(const_cast<char *>("alice"));
    entry.key.len = 5;
    entry.server = const_cast<char *>("10.6.6.6:80");
    Levee__RegistryEntry *entries[] = {&entry};
    Levee__RegistryBatch reg = LEVEE__REGISTRY_BATCH__INIT;
    reg.ttl_ms = 5000; // the fixture's hello declared 1000 and 60000
    reg.n_entries = 1;
    reg.entries = entries;
    Levee__Frame g = LEVEE__FRAME__INIT;
    g.request_id = 14;
    g.body_case = LEVEE__FRAME__BODY_REGISTRY_BATCH;
    g.registry_batch = &reg;
    c->send(g);
    FramePtr ack = c->await_frame(base());
    ASSERT_NE(ack, nullptr);
    ASSERT_EQ(ack->body_case, LEVEE__FRAME__BODY_REGISTRY_ACK);
    EXPECT_FALSE(ack->registry_ack->ok);
    EXPECT_STREQ(ack->registry_ack->error, "leveed: no registry with ttl 5000 ms was declared at hello");
    EXPECT_EQ(registry_.lookup("alice"), "");
    EXPECT_EQ(metrics_.value("leveed_requests_refused_total", {{"reason", "undeclared_registry"}}), 1);
}

TEST_F(DispatcherTest, ASecondHelloIsAnsweredAgain) {
    auto c = connect_hello();
    c->send_hello();
    FramePtr reply = c->await_frame(base());
    ASSERT_NE(reply, nullptr);
    EXPECT_EQ(reply->body_case, LEVEE__FRAME__BODY_HELLO_REPLY);
    EXPECT_TRUE(reply->hello_reply->accepted);
}

// The share of in-flight work is given back with each reply.
TEST_F(DispatcherTest, AnsweredRequestsGiveTheirShareBack) {
    dispatcher_.set_max_connection_in_flight(1);
    auto c = connect_hello();
    for (std::uint64_t id = 20; id < 23; id++) {
        UserQuery q(id);
        c->send(q.f);
        FramePtr reply = c->await_frame(base());
        ASSERT_NE(reply, nullptr);
        ASSERT_EQ(reply->body_case, LEVEE__FRAME__BODY_PRESENCE_QUERY_REPLY);
        EXPECT_TRUE(reply->presence_query_reply->ok) << reply->presence_query_reply->error;
    }
    EXPECT_EQ(metrics_.value("leveed_requests_refused_total", {{"reason", "connection_in_flight"}}), 0);
}

} // namespace
} // namespace levee::testing
