// One connection's share of the work in flight: the Redis client refuses
// commands past its budget for every connection at once, so the dispatcher
// refuses a connection's requests past max_connection_in_flight with an
// error reply while the other connections' requests still run. Real
// FrameServer and Dispatcher, a fake Redis node that answers no SET (Redis
// answers in order: holding back some answers only would not do), so the
// work of every request stays in flight.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "../net/server_fixture.hpp"
#include "../redis/fake_node.hpp"
#include "cluster_client.hpp"
#include "config/config.hpp"

namespace levee::testing {
namespace {

using redis::testing::FakeNode;

std::string bulk(const std::string &s) { return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n"; }

// A registry batch of `n` entries whose keys start with `prefix`.
struct RegistryFrame {
    RegistryFrame(std::uint64_t id, const std::string &prefix, std::size_t n) : keys(n), entries(n), ptrs(n) {
        for (std::size_t i = 0; i < n; i++) {
            keys[i] = prefix + std::to_string(i);
            levee__registry_entry__init(&entries[i]);
            entries[i].key.data = reinterpret_cast<std::uint8_t *>(keys[i].data());
            entries[i].key.len = keys[i].size();
            entries[i].server = server;
            ptrs[i] = &entries[i];
        }
        batch.ttl_ms = 60000;
        batch.n_entries = n;
        batch.entries = ptrs.data();
        f.request_id = id;
        f.body_case = LEVEE__FRAME__BODY_REGISTRY_BATCH;
        f.registry_batch = &batch;
    }
    char server[16] = "10.0.0.1:80";
    std::vector<std::string> keys;
    std::vector<Levee__RegistryEntry> entries;
    std::vector<Levee__RegistryEntry *> ptrs;
    Levee__RegistryBatch batch = LEVEE__REGISTRY_BATCH__INIT;
    Levee__Frame f = LEVEE__FRAME__INIT;
};

class InFlightShareTest : public ::testing::Test {
  protected:
    void SetUp() override {
        node_ = std::make_unique<FakeNode>(base_.get(), [this](const FakeNode::Command &c) -> std::string {
            if (c[0] == "CLUSTER") {
                return "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n" + bulk("127.0.0.1") + ":" + std::to_string(port_) + "\r\n";
            }
            return std::string();
        });
        port_ = node_->port();
        redis_ = std::make_unique<redis::ClusterClient>(base_.get(), std::vector<redis::HostPort>{{"127.0.0.1", port_}});
        bool ready = false;
        redis_->start([&](bool, const std::string &) { ready = true; });
        ASSERT_TRUE(run_until(base_.get(), [&] { return ready; }));

        char tmpl[] = "/tmp/levee-share-test-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        registry_ = std::make_unique<RegistryService>(redis_.get(), metrics_);
        dispatcher_ = std::make_unique<Dispatcher>(metrics_, probe_, presence_, limit_, *registry_, false);
        dispatcher_->set_max_connection_in_flight(10);
        FrameServerOptions o;
        o.socket_path = dir_ + "/leveed.sock";
        server_ = std::make_unique<FrameServer>(base_.get(), o, *dispatcher_, metrics_);
        dispatcher_->attach(*server_);
        std::string error;
        ASSERT_TRUE(server_->listen(error)) << error;
    }
    void TearDown() override {
        // The client answers what is in flight as it goes: the server must still be there.
        redis_.reset();
        server_.reset();
        node_.reset();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    std::unique_ptr<Client> connect_hello() {
        auto c = std::make_unique<Client>(dir_ + "/leveed.sock");
        c->send_hello();
        FramePtr reply = c->await_frame(base_.get());
        EXPECT_NE(reply, nullptr);
        return c;
    }
    double refused() const {
        return metrics_.value("leveed_requests_refused_total", {{"reason", "connection_in_flight"}});
    }

    BasePtr base_{event_base_new()};
    int port_ = 0;
    std::unique_ptr<FakeNode> node_;
    std::unique_ptr<redis::ClusterClient> redis_;
    Metrics metrics_;
    ProbeService probe_{nullptr, nullptr};
    PresenceService presence_{nullptr, nullptr, nullptr, nullptr, metrics_};
    LimitService limit_{nullptr, metrics_};
    std::unique_ptr<RegistryService> registry_;
    std::unique_ptr<Dispatcher> dispatcher_;
    std::string dir_;
    std::unique_ptr<FrameServer> server_;
};

TEST(RequestCost, CountsTheWorkItemsOfARequest) {
    RegistryFrame r(1, "k", 7);
    EXPECT_EQ(request_cost(r.f, 64), 7u);
    UserQuery q(2);
    EXPECT_EQ(request_cost(q.f, 64), 1u);
    EXPECT_EQ(request_cost(Client::hello_frame(1), 64), 0u);
}

// The module keeps 32 batches of up to 4000 records in flight: a batch
// costs its commands (per bucket, per room), not its records.
TEST(RequestCost, APresenceBatchCostsItsBucketsAndRoomsNotItsRecords) {
    constexpr std::size_t kRecords = 4000;
    std::vector<std::string> users(kRecords);
    std::vector<Levee__PresenceRecord> records(kRecords);
    std::vector<Levee__PresenceRecord *> ptrs(kRecords);
    char lobby[] = "lobby", kitchen[] = "kitchen", none[] = "";
    for (std::size_t i = 0; i < kRecords; i++) {
        users[i] = "u" + std::to_string(i);
        levee__presence_record__init(&records[i]);
        records[i].user = users[i].data();
        records[i].room = i == 0 ? lobby : i == 1 ? kitchen : i == 2 ? lobby : none;
        ptrs[i] = &records[i];
    }
    Levee__PresenceBatch batch = LEVEE__PRESENCE_BATCH__INIT;
    batch.n_records = kRecords;
    batch.records = ptrs.data();
    Levee__Frame f = LEVEE__FRAME__INIT;
    f.body_case = LEVEE__FRAME__BODY_PRESENCE_BATCH;
    f.presence_batch = &batch;
    EXPECT_EQ(request_cost(f, 64), 2u * 64 + 1 + 2);
    EXPECT_LE(32 * request_cost(f, 64), Config{}.max_connection_in_flight) << "the module's own load is refused";
    batch.n_records = 3;
    EXPECT_EQ(request_cost(f, 64), 3u + 2);
}

TEST_F(InFlightShareTest, AConnectionPastItsShareGetsErrorsWhileAnothersWorkGoesOn) {
    auto a = connect_hello();
    auto b = connect_hello();

    RegistryFrame first(10, "a", 6);
    a->send(first.f);
    ASSERT_TRUE(run_until(base_.get(), [&] { return redis_->in_flight() == 6; }));

    // 6 + 6 > 10: refused at once, in the reply type the request expects.
    RegistryFrame second(11, "a-more", 6);
    a->send(second.f);
    FramePtr r = a->await_frame(base_.get());
    ASSERT_NE(r, nullptr) << "the request past the share was neither refused nor answered";
    ASSERT_EQ(r->body_case, LEVEE__FRAME__BODY_REGISTRY_ACK);
    EXPECT_EQ(r->request_id, 11u);
    EXPECT_FALSE(r->registry_ack->ok);
    EXPECT_NE(std::string(r->registry_ack->error).find("max_connection_in_flight 10"), std::string::npos)
        << r->registry_ack->error;
    EXPECT_EQ(refused(), 1);
    EXPECT_EQ(redis_->in_flight(), 6u) << "the refused request sent nothing to Redis";

    // The other connection's work goes to Redis: its own share is untouched.
    RegistryFrame other(20, "b", 8);
    b->send(other.f);
    ASSERT_TRUE(run_until(base_.get(), [&] { return redis_->in_flight() == 14; }));
    EXPECT_EQ(refused(), 1);
    EXPECT_EQ(b->take_frame(), nullptr);

    // What is left of a's share is still its to use.
    RegistryFrame fits(12, "a-fits", 4);
    a->send(fits.f);
    ASSERT_TRUE(run_until(base_.get(), [&] { return redis_->in_flight() == 18; }));
    EXPECT_EQ(refused(), 1);
}

TEST_F(InFlightShareTest, ARequestLargerThanTheShareIsRefusedOnAnIdleConnection) {
    auto a = connect_hello();
    RegistryFrame big(30, "big", 11);
    a->send(big.f);
    FramePtr r = a->await_frame(base_.get());
    ASSERT_NE(r, nullptr);
    ASSERT_EQ(r->body_case, LEVEE__FRAME__BODY_REGISTRY_ACK);
    EXPECT_FALSE(r->registry_ack->ok);
    EXPECT_EQ(refused(), 1);
    EXPECT_EQ(redis_->in_flight(), 0u);
}

} // namespace
} // namespace levee::testing
