// PresenceService driven with decoded frames: standalone (memory), with a
// spool, and with a fake Redis node (tests/unit/sidecar/redis/fake_node.hpp)
// that can answer an error where a real cluster would not.
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <event2/event.h>
#include <gtest/gtest.h>
#include <sys/resource.h>

#include "../net/server_fixture.hpp"
#include "../redis/fake_node.hpp"
#include "cluster_client.hpp"
#include "keys.hpp"
#include "metrics.hpp"
#include "service/presence_service.hpp"
#include "spool.hpp"

namespace levee {
namespace {

std::int64_t now_wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

struct Beat {
    std::string user;
    std::string room;
    std::int64_t last_seen_ms;
};

struct Ack {
    bool got = false;
    std::uint64_t request_id = 0;
    bool ok = false;
    std::uint32_t records = 0;
    std::string error;
};

// Owns the protobuf-c structs of one PresenceBatch, and the strings they
// point at (the beats are often a temporary of the caller).
struct BatchFrame {
    explicit BatchFrame(std::vector<Beat> given, std::uint32_t ttl_ms = 60000)
        : beats(std::move(given)), records(beats.size()) {
        for (std::size_t i = 0; i < beats.size(); i++) {
            levee__presence_record__init(&records[i]);
            records[i].user = const_cast<char *>(beats[i].user.c_str());
            records[i].room = const_cast<char *>(beats[i].room.c_str());
            records[i].last_seen_ms = beats[i].last_seen_ms;
            ptrs.push_back(&records[i]);
        }
        batch.ttl_ms = ttl_ms;
        batch.n_records = ptrs.size();
        batch.records = ptrs.data();
    }
    std::vector<Beat> beats;
    std::vector<Levee__PresenceRecord> records;
    std::vector<Levee__PresenceRecord *> ptrs;
    Levee__PresenceBatch batch = LEVEE__PRESENCE_BATCH__INIT;
};

Reply ack_into(Ack &ack) {
    return [&ack](const Levee__Frame &f) {
        ASSERT_FALSE(ack.got) << "acknowledged twice";
        ASSERT_EQ(f.body_case, LEVEE__FRAME__BODY_PRESENCE_ACK);
        ack.got = true;
        ack.request_id = f.request_id;
        ack.ok = f.presence_ack->ok;
        ack.records = f.presence_ack->records;
        ack.error = f.presence_ack->error;
    };
}

struct UserState {
    std::string user;
    bool online;
    std::int64_t last_seen_ms;
};

struct Answer {
    bool got = false;
    bool ok = false;
    std::string error;
    std::vector<UserState> users;
    std::uint32_t count = 0;
    std::vector<std::string> members;
};

Answer query(PresenceService &svc, std::vector<std::string> users, const std::string &room = "",
             std::uint32_t limit = 0) {
    std::vector<char *> ptrs;
    for (auto &u : users) {
        ptrs.push_back(const_cast<char *>(u.c_str()));
    }
    Levee__PresenceQuery q = LEVEE__PRESENCE_QUERY__INIT;
    q.n_users = ptrs.size();
    q.users = ptrs.data();
    q.room = const_cast<char *>(room.c_str());
    q.limit = limit;
    Answer a;
    svc.query(5, q, [&a](const Levee__Frame &f) {
        ASSERT_EQ(f.request_id, 5u);
        ASSERT_EQ(f.body_case, LEVEE__FRAME__BODY_PRESENCE_QUERY_REPLY);
        const Levee__PresenceQueryReply &r = *f.presence_query_reply;
        a.got = true;
        a.ok = r.ok;
        a.error = r.error;
        for (std::size_t i = 0; i < r.n_users; i++) {
            a.users.push_back({r.users[i]->user, r.users[i]->online != 0, r.users[i]->last_seen_ms});
        }
        a.count = r.count;
        for (std::size_t i = 0; i < r.n_members; i++) {
            a.members.emplace_back(r.members[i]);
        }
    });
    return a;
}

TEST(PresenceService, BucketOfAUserIsStableAndInRange) {
    EXPECT_LT(presence_bucket("alice", 64), 64);
    EXPECT_EQ(presence_bucket("alice", 64), presence_bucket("alice", 64));
}

TEST(PresenceService, StandaloneAcknowledgesAndAnswersFromMemory) {
    Metrics metrics;
    PresenceService svc(nullptr, nullptr, nullptr, nullptr, metrics);
    const std::int64_t now = now_wall_ms();
    BatchFrame f({{"alice", "lobby", now - 10}, {"bob", "", now - 20}, {"carol", "lobby", now - 5}});
    Ack ack;
    svc.handle(42, f.batch, ack_into(ack));
    ASSERT_TRUE(ack.got) << "standalone answers at once";
    EXPECT_EQ(ack.request_id, 42u);
    EXPECT_TRUE(ack.ok) << ack.error;
    EXPECT_EQ(ack.records, 3u);
    EXPECT_EQ(metrics.value("leveed_presence_batches_total", {{"result", "ok"}}), 1);

    Answer a = query(svc, {"alice", "bob", "dave"});
    ASSERT_TRUE(a.got);
    ASSERT_TRUE(a.ok) << a.error;
    ASSERT_EQ(a.users.size(), 3u);
    EXPECT_TRUE(a.users[0].online);
    EXPECT_EQ(a.users[0].last_seen_ms, now - 10);
    EXPECT_TRUE(a.users[1].online);
    EXPECT_FALSE(a.users[2].online);
    EXPECT_EQ(a.users[2].last_seen_ms, 0);

    Answer room = query(svc, {}, "lobby", 1);
    ASSERT_TRUE(room.ok) << room.error;
    EXPECT_EQ(room.count, 2u);
    EXPECT_EQ(room.members, (std::vector<std::string>{"carol"})) << "limit 1: the latest beat";
}

TEST(PresenceService, StandaloneNeverMovesAUserBackwards) {
    Metrics metrics;
    PresenceService svc(nullptr, nullptr, nullptr, nullptr, metrics);
    const std::int64_t now = now_wall_ms();
    Ack first, replay;
    svc.handle(1, BatchFrame({{"alice", "", now}}).batch, ack_into(first));
    svc.handle(2, BatchFrame({{"alice", "", now - 5000}}).batch, ack_into(replay));
    EXPECT_TRUE(replay.ok);
    Answer a = query(svc, {"alice"});
    ASSERT_EQ(a.users.size(), 1u);
    EXPECT_EQ(a.users[0].last_seen_ms, now);
}

TEST(PresenceService, AnInvalidRecordRefusesTheWholeBatch) {
    Metrics metrics;
    PresenceService svc(nullptr, nullptr, nullptr, nullptr, metrics);
    const std::string too_long(kMaxPresenceUserBytes + 1, 'x');
    for (const auto &bad : std::vector<Beat>{{"", "", 1}, {too_long, "", 1}, {"ok", too_long, 1}}) {
        Ack ack;
        svc.handle(3, BatchFrame({{"alice", "", 1}, bad}).batch, ack_into(ack));
        ASSERT_TRUE(ack.got);
        EXPECT_FALSE(ack.ok);
        EXPECT_EQ(ack.records, 2u);
        EXPECT_EQ(ack.error, "record 1: invalid user or room");
    }
    EXPECT_EQ(metrics.value("leveed_presence_batches_total", {{"result", "invalid"}}), 3);
    Answer a = query(svc, {"alice"});
    ASSERT_EQ(a.users.size(), 1u);
    EXPECT_FALSE(a.users[0].online) << "nothing of a refused batch is kept";
}

TEST(PresenceService, MalformedQueriesAreAnsweredWithAnError) {
    Metrics metrics;
    PresenceService svc(nullptr, nullptr, nullptr, nullptr, metrics);
    const std::string expected = "a query names a room or 1 to 1000 users";
    Answer none = query(svc, {});
    EXPECT_FALSE(none.ok);
    EXPECT_EQ(none.error, expected);
    Answer both = query(svc, {"alice"}, "lobby");
    EXPECT_FALSE(both.ok);
    EXPECT_EQ(both.error, expected);
    Answer too_many = query(svc, std::vector<std::string>(1001, "u"));
    EXPECT_FALSE(too_many.ok);
    Answer empty_user = query(svc, {"alice", ""});
    EXPECT_FALSE(empty_user.ok);
    EXPECT_EQ(empty_user.error, "invalid user");
    EXPECT_TRUE(empty_user.users.empty());
    EXPECT_EQ(metrics.value("leveed_presence_queries_total", {{"kind", "users"}, {"result", "invalid"}}), 3);
    EXPECT_EQ(metrics.value("leveed_presence_queries_total", {{"kind", "room"}, {"result", "invalid"}}), 1);
}

class PresenceServiceWithSpool : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/levee-presence-test-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        SpoolOptions o;
        o.dir = dir_;
        o.fsync = SpoolFsync::kNever;
        std::string error;
        spool_ = Spool::open(o, error);
        ASSERT_NE(spool_, nullptr) << error;
    }
    void TearDown() override {
        spool_.reset();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    std::string dir_;
    std::unique_ptr<Spool> spool_;
};

TEST_F(PresenceServiceWithSpool, AcknowledgedBatchesAreInTheSpool) {
    Metrics metrics;
    PresenceService svc(nullptr, spool_.get(), nullptr, nullptr, metrics);
    Ack ack;
    svc.handle(1, BatchFrame({{"alice", "lobby", 1000}, {"bob", "", 2000}}).batch, ack_into(ack));
    ASSERT_TRUE(ack.ok) << ack.error;
    std::vector<SpoolRecord> got;
    SpoolPosition next;
    std::string error;
    ASSERT_TRUE(spool_->read(spool_->checkpoint(), 10, got, next, error)) << error;
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].user, "alice");
    EXPECT_EQ(got[0].room, "lobby");
    EXPECT_EQ(got[1].last_seen_ms, 2000);
}

// The spool could not write (here past RLIMIT_FSIZE: EFBIG; a full disk is
// ENOSPC) and the batch was refused to nginx, Redis presence included. Now
// only its MongoDB copy is lost: acknowledged, recorded, and counted.
TEST_F(PresenceServiceWithSpool, ASpoolThatCannotWriteCostsTheDatabaseCopyNotTheAck) {
    Metrics metrics;
    PresenceService svc(nullptr, spool_.get(), nullptr, nullptr, metrics);
    Ack first;
    svc.handle(1, BatchFrame({{"alice", "", 1000}}).batch, ack_into(first));
    ASSERT_TRUE(first.ok) << first.error;

    // The segment is already past a 1-byte file size limit: the next write fails (EFBIG).
    rlimit old{};
    ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
    const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit tiny = old;
    tiny.rlim_cur = 1;
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &tiny), 0);
    Ack ack;
    svc.handle(2, BatchFrame({{"bob", "", 2000}, {"carol", "", 2000}}).batch, ack_into(ack));
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old), 0);
    std::signal(SIGXFSZ, old_handler);

    ASSERT_TRUE(ack.got);
    EXPECT_TRUE(ack.ok) << ack.error;
    EXPECT_EQ(ack.records, 2u);
    EXPECT_EQ(metrics.value("leveed_presence_batches_total", {{"result", "ok"}}), 2);
    EXPECT_EQ(metrics.value("leveed_spool_dropped_records_total", {{"reason", "disk"}}), 2);
    Answer a = query(svc, {"bob"});
    ASSERT_EQ(a.users.size(), 1u);
    EXPECT_TRUE(a.users[0].online) << "presence of an acknowledged batch";
    EXPECT_EQ(spool_->pending_records(), 1u);
}

// Past spool_max_bytes the same: acknowledged, counted as "full"; the spool
// takes batches again once there is room.
TEST_F(PresenceServiceWithSpool, AFullSpoolCostsTheDatabaseCopyNotTheAck) {
    Metrics metrics;
    PresenceService svc(nullptr, spool_.get(), nullptr, nullptr, metrics);
    spool_->set_max_bytes(1);
    Ack ack;
    svc.handle(1, BatchFrame({{"alice", "", 1000}}).batch, ack_into(ack));
    ASSERT_TRUE(ack.got);
    EXPECT_TRUE(ack.ok) << ack.error;
    EXPECT_EQ(metrics.value("leveed_spool_dropped_records_total", {{"reason", "full"}}), 1);
    EXPECT_EQ(spool_->pending_records(), 0u);
    spool_->set_max_bytes(0);
    Ack again;
    svc.handle(2, BatchFrame({{"bob", "", 2000}}).batch, ack_into(again));
    EXPECT_TRUE(again.ok) << again.error;
    EXPECT_EQ(spool_->pending_records(), 1u);
    EXPECT_EQ(metrics.value("leveed_spool_dropped_records_total", {{"reason", "full"}}), 1);
}

// With Redis: a fake node owning every slot.
using redis::testing::FakeNode;

using testing::BasePtr;
using testing::run_until;

std::string bulk(const std::string &s) { return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n"; }

class PresenceServiceWithRedis : public ::testing::Test {
  protected:
    void start(FakeNode::Answer answer, redis::ClusterOptions opts = {}) {
        // port_ is set before the client asks for the slots.
        node_ = std::make_unique<FakeNode>(base_.get(), [this, answer](const FakeNode::Command &c) {
            if (c[0] == "CLUSTER") {
                return "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n" + bulk("127.0.0.1") + ":" + std::to_string(port_) +
                       "\r\n";
            }
            return answer(c);
        });
        port_ = node_->port();
        client_ =
            std::make_unique<redis::ClusterClient>(base_.get(), std::vector<redis::HostPort>{{"127.0.0.1", port_}}, opts);
        bool ready = false, ok = false;
        client_->start([&](bool r, const std::string &) { ready = true, ok = r; });
        ASSERT_TRUE(run_until(base_.get(), [&] { return ready; }));
        ASSERT_TRUE(ok);
    }
    void TearDown() override {
        client_.reset();
        node_.reset();
    }
    // Commands the node got, CLUSTER SLOTS left out.
    std::vector<FakeNode::Command> commands() const {
        std::vector<FakeNode::Command> out;
        for (const auto &conn : node_->received()) {
            for (const auto &c : conn) {
                if (c[0] != "CLUSTER") {
                    out.push_back(c);
                }
            }
        }
        return out;
    }

    BasePtr base_{event_base_new()};
    int port_ = 0;
    std::unique_ptr<FakeNode> node_;
    std::unique_ptr<redis::ClusterClient> client_;
};

TEST_F(PresenceServiceWithRedis, AcknowledgesOnlyOnceRedisAnsweredEveryCommand) {
    start([](const FakeNode::Command &) { return std::string(":1\r\n"); });
    Metrics metrics;
    PresenceService svc(client_.get(), nullptr, nullptr, base_.get(), metrics, 1);
    Ack ack;
    svc.handle(7, BatchFrame({{"alice", "", 1000}, {"bob", "", 2000}}, 60000).batch, ack_into(ack));
    EXPECT_FALSE(ack.got) << "acknowledged before Redis answered";
    ASSERT_TRUE(run_until(base_.get(), [&] { return ack.got; }));
    EXPECT_TRUE(ack.ok) << ack.error;
    EXPECT_EQ(ack.request_id, 7u);
    EXPECT_EQ(ack.records, 2u);

    bool zadd = false;
    for (const auto &c : commands()) {
        if (c[0] == "ZADD") {
            zadd = true;
            EXPECT_EQ(c, (FakeNode::Command{"ZADD", "levee:presence:{b0}:60000", "GT", "61000", "alice", "62000", "bob"}));
        }
    }
    EXPECT_TRUE(zadd) << "one ZADD GT records the bucket's users";
}

// With Redis too: a spool that refuses the batch changes nothing of what
// reaches Redis nor of the ack.
TEST_F(PresenceServiceWithRedis, AFullSpoolStillSendsTheBatchToRedisAndAcknowledgesIt) {
    start([](const FakeNode::Command &) { return std::string(":1\r\n"); });
    char tmpl[] = "/tmp/levee-presence-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    SpoolOptions o;
    o.dir = tmpl;
    o.fsync = SpoolFsync::kNever;
    o.max_bytes = 1;
    std::string error;
    auto spool = Spool::open(o, error);
    ASSERT_NE(spool, nullptr) << error;
    Metrics metrics;
    PresenceService svc(client_.get(), spool.get(), nullptr, base_.get(), metrics, 1);
    Ack ack;
    svc.handle(9, BatchFrame({{"alice", "", 1000}}, 60000).batch, ack_into(ack));
    ASSERT_TRUE(run_until(base_.get(), [&] { return ack.got; }));
    EXPECT_TRUE(ack.ok) << ack.error;
    EXPECT_EQ(metrics.value("leveed_spool_dropped_records_total", {{"reason", "full"}}), 1);
    bool zadd = false;
    for (const auto &c : commands()) {
        zadd = zadd || (c[0] == "ZADD" && c.back() == "alice");
    }
    EXPECT_TRUE(zadd);
    spool.reset();
    std::error_code ec;
    std::filesystem::remove_all(tmpl, ec);
}

TEST_F(PresenceServiceWithRedis, ARedisErrorFailsTheAckWithRedisWords) {
    start([](const FakeNode::Command &c) {
        return c[0] == "ZADD" ? std::string("-OOM command not allowed\r\n") : std::string(":1\r\n");
    });
    Metrics metrics;
    PresenceService svc(client_.get(), nullptr, nullptr, base_.get(), metrics, 1);
    Ack ack;
    svc.handle(8, BatchFrame({{"alice", "", 1000}}).batch, ack_into(ack));
    ASSERT_TRUE(run_until(base_.get(), [&] { return ack.got; }));
    EXPECT_FALSE(ack.ok);
    EXPECT_EQ(ack.error, "redis: OOM command not allowed");
    EXPECT_EQ(metrics.value("leveed_presence_batches_total", {{"result", "error"}}), 1);
}

// WAIT 1 answered 0 (the replica is frozen or gone): Redis ran every
// command, but a master killed now takes the beats with it, so the batch is
// not acknowledged and the module keeps it. Acknowledging it broke the
// promise that a beat answered 204 survives a master's death.
TEST_F(PresenceServiceWithRedis, ABatchFewerReplicasThanAskedConfirmedIsNotAcknowledged) {
    int replicas = 0;
    redis::ClusterOptions opts;
    opts.wait_replicas = 1;
    opts.wait_timeout_ms = 50;
    start([&replicas](const FakeNode::Command &c) {
        return c[0] == "WAIT" ? ":" + std::to_string(replicas) + "\r\n" : std::string(":1\r\n");
    }, opts);
    Metrics metrics;
    PresenceService svc(client_.get(), nullptr, nullptr, base_.get(), metrics, 1);
    Ack ack;
    svc.handle(8, BatchFrame({{"alice", "lobby", 1000}}).batch, ack_into(ack));
    ASSERT_TRUE(run_until(base_.get(), [&] { return ack.got; }));
    EXPECT_FALSE(ack.ok);
    EXPECT_EQ(ack.error, "redis: not replicated: WAIT saw fewer replicas than redis_wait_replicas");
    EXPECT_EQ(metrics.value("leveed_presence_batches_total", {{"result", "unreplicated"}}), 1);
    EXPECT_EQ(client_->stats().wait_short, client_->stats().commands);

    // the same batch again, once the replica confirms it
    replicas = 1;
    Ack again;
    svc.handle(9, BatchFrame({{"alice", "lobby", 1000}}).batch, ack_into(again));
    ASSERT_TRUE(run_until(base_.get(), [&] { return again.got; }));
    EXPECT_TRUE(again.ok) << again.error;
    EXPECT_EQ(metrics.value("leveed_presence_batches_total", {{"result", "ok"}}), 1);
}

// A write that Redis refuses for good (here the script error that a room of
// over ~4,000 members once gave) is answered the same every time: the batch
// is acknowledged with it counted as lost, and the next batch goes through,
// where a failed ack had the module send the poison batch again forever.
TEST_F(PresenceServiceWithRedis, APermanentRedisErrorIsCountedAsLostAndDoesNotBlockTheNextBatch) {
    const std::string poison = redis::keys::room("poison");
    start([poison](const FakeNode::Command &c) {
        if (c[0] == "EVALSHA" && c[3] == poison) {
            return std::string("-ERR user_script:9: too many results to unpack\r\n");
        }
        if (c[0] == "ZADD" && c.back() == "wrongtype") {
            return std::string("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
        }
        return std::string(":1\r\n");
    });
    Metrics metrics;
    PresenceService svc(client_.get(), nullptr, nullptr, base_.get(), metrics, 1);
    Ack first;
    svc.handle(1, BatchFrame({{"alice", "poison", 1000}, {"bob", "poison", 1000}, {"carol", "lobby", 1000}}).batch,
               ack_into(first));
    ASSERT_TRUE(run_until(base_.get(), [&] { return first.got; }));
    EXPECT_TRUE(first.ok) << "a batch that fails for good is not sent again: " << first.error;
    EXPECT_EQ(first.records, 3u);
    EXPECT_EQ(metrics.value("leveed_presence_lost_total", {{"kind", "room"}}), 2);
    EXPECT_EQ(metrics.value("leveed_presence_lost_total", {{"kind", "user"}}), 0);
    EXPECT_EQ(metrics.value("leveed_presence_batches_total", {{"result", "partial"}}), 1);

    Ack second;
    svc.handle(2, BatchFrame({{"dave", "lobby", 2000}}).batch, ack_into(second));
    ASSERT_TRUE(run_until(base_.get(), [&] { return second.got; }));
    EXPECT_TRUE(second.ok) << second.error;
    EXPECT_EQ(metrics.value("leveed_presence_batches_total", {{"result", "ok"}}), 1);
    EXPECT_EQ(metrics.value("leveed_presence_lost_total", {{"kind", "room"}}), 2);

    // The users' own presence refused for good: the bucket's users are lost.
    Ack third;
    svc.handle(3, BatchFrame({{"erin", "", 3000}, {"wrongtype", "", 3000}}).batch, ack_into(third));
    ASSERT_TRUE(run_until(base_.get(), [&] { return third.got; }));
    EXPECT_TRUE(third.ok) << third.error;
    EXPECT_EQ(metrics.value("leveed_presence_lost_total", {{"kind", "user"}}), 2);
    EXPECT_EQ(metrics.value("leveed_presence_batches_total", {{"result", "error"}}), 0);
}

TEST_F(PresenceServiceWithRedis, AnErrorThatMayPassStillFailsTheBatch) {
    start([](const FakeNode::Command &c) {
        return c[0] == "EVALSHA" ? std::string("-BUSY Redis is busy running a script\r\n") : std::string(":1\r\n");
    });
    Metrics metrics;
    PresenceService svc(client_.get(), nullptr, nullptr, base_.get(), metrics, 1);
    Ack ack;
    svc.handle(4, BatchFrame({{"alice", "lobby", 1000}}).batch, ack_into(ack));
    ASSERT_TRUE(run_until(base_.get(), [&] { return ack.got; }));
    EXPECT_FALSE(ack.ok);
    EXPECT_EQ(ack.error, "redis: BUSY Redis is busy running a script");
    EXPECT_EQ(metrics.value("leveed_presence_lost_total", {{"kind", "room"}}), 0);
}

TEST_F(PresenceServiceWithRedis, ARoomsMembersGoInCallsOfAtMostKRoomMembersPerCall) {
    start([](const FakeNode::Command &) { return std::string(":1\r\n"); });
    Metrics metrics;
    PresenceService svc(client_.get(), nullptr, nullptr, base_.get(), metrics, 1);
    const std::size_t n = 2 * kRoomMembersPerCall + 500;
    std::vector<Beat> beats;
    for (std::size_t i = 0; i < n; i++) {
        beats.push_back({"u" + std::to_string(i), "big", 1000});
    }
    Ack ack;
    svc.handle(5, BatchFrame(beats).batch, ack_into(ack));
    ASSERT_TRUE(run_until(base_.get(), [&] { return ack.got; }));
    EXPECT_TRUE(ack.ok) << ack.error;
    std::vector<std::size_t> members; // per EVALSHA: sha, numkeys, key, then pairs
    for (const auto &c : commands()) {
        if (c[0] == "EVALSHA") {
            ASSERT_EQ(c[3], redis::keys::room("big"));
            members.push_back((c.size() - 4) / 2);
        }
    }
    EXPECT_EQ(members, (std::vector<std::size_t>{kRoomMembersPerCall, kRoomMembersPerCall, 500}));
}

// last_seen_ms + ttl_ms came from the socket unchecked: INT64_MAX overflowed
// (undefined behaviour) and was stored.
TEST(PresenceService, ALastSeenThatWouldOverflowRefusesTheBatch) {
    Metrics metrics;
    PresenceService svc(nullptr, nullptr, nullptr, nullptr, metrics);
    for (const std::int64_t bad : {INT64_MAX, kMaxLastSeenMs + 1, std::int64_t{-1}}) {
        Ack ack;
        svc.handle(4, BatchFrame({{"alice", "", 1}, {"mallory", "", bad}}).batch, ack_into(ack));
        ASSERT_TRUE(ack.got);
        EXPECT_FALSE(ack.ok);
        EXPECT_EQ(ack.error, "record 1: invalid last_seen_ms");
    }
    Ack fine;
    svc.handle(5, BatchFrame({{"alice", "", kMaxLastSeenMs}}).batch, ack_into(fine));
    EXPECT_TRUE(fine.ok);
}

} // namespace
} // namespace levee
