// With spool_fsync always, leveed as it is wired (socket server, dispatcher,
// presence service, spool, loop poster) on one libevent loop that the test
// pumps, with a spool whose fdatasync waits for the test to let it go: while
// a batch's sync is stuck, the loop still answers other connections' frames,
// and the batch is acknowledged only after its sync.
#include <atomic>
#include <cerrno>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <event2/thread.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "../net/server_fixture.hpp"
#include "loop_poster.hpp"
#include "service/limit_service.hpp"
#include "service/presence_service.hpp"
#include "service/probe.hpp"
#include "service/registry_service.hpp"
#include "spool.hpp"

namespace levee::testing {
namespace {

// Blocks each fdatasync until released (or fails it); says when one began.
struct SlowDisk {
    std::atomic<bool> entered{false};
    std::atomic<bool> fail{false};
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    std::atomic<bool> on_loop_thread{false};
    std::thread::id loop_thread = std::this_thread::get_id();
    bool let_go_ = false;

    void let_go() {
        if (!let_go_) {
            let_go_ = true;
            release.set_value();
        }
    }

    int datasync(int fd) {
        if (std::this_thread::get_id() == loop_thread) {
            on_loop_thread = true; // would block the loop: say so rather than hang
            return ::fdatasync(fd);
        }
        entered = true;
        released.wait();
        if (fail) {
            errno = EIO;
            return -1;
        }
        return ::fdatasync(fd);
    }
};

// The spool's thread wakes the loop (LoopPoster) as in leveed, whose main
// turns libevent's locking on before it makes its loop.
event_base *threaded_base() {
    evthread_use_pthreads();
    return event_base_new();
}

class SpoolSyncLoop : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/levee-spool-sync-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        SpoolOptions o;
        o.dir = dir_ + "/spool";
        o.fsync = SpoolFsync::kAlways;
        o.datasync = [this](int fd) { return disk_.datasync(fd); };
        std::string error;
        spool_ = Spool::open(o, error);
        ASSERT_NE(spool_, nullptr) << error;
        presence_ = std::make_unique<PresenceService>(
            nullptr, spool_.get(), nullptr, base_.get(), metrics_, kDefaultPresenceBuckets,
            [this](std::function<void()> fn) { poster_.post(std::move(fn)); });
        dispatcher_ = std::make_unique<Dispatcher>(metrics_, probe_, *presence_, limit_, registry_, true);
        FrameServerOptions so;
        so.socket_path = dir_ + "/leveed.sock";
        server_ = std::make_unique<FrameServer>(base_.get(), so, *dispatcher_, metrics_);
        dispatcher_->attach(*server_);
        ASSERT_TRUE(server_->listen(error)) << error;
    }
    void TearDown() override {
        disk_.let_go(); // a round still stuck would hold up the spool's destructor
        server_.reset();
        dispatcher_.reset();
        presence_.reset();
        spool_.reset();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    std::unique_ptr<Client> connect_hello() {
        auto c = std::make_unique<Client>(dir_ + "/leveed.sock");
        EXPECT_TRUE(c->connected());
        c->send_hello();
        FramePtr reply = c->await_frame(base_.get());
        EXPECT_NE(reply, nullptr);
        if (reply) {
            EXPECT_EQ(reply->body_case, LEVEE__FRAME__BODY_HELLO_REPLY);
        }
        return c;
    }
    void send_batch(Client &c, std::uint64_t id) {
        Levee__PresenceRecord r = LEVEE__PRESENCE_RECORD__INIT;
        r.user = const_cast<char *>("alice");
        r.room = const_cast<char *>("");
        r.last_seen_ms = 1000;
        Levee__PresenceRecord *records[] = {&r};
        Levee__PresenceBatch batch = LEVEE__PRESENCE_BATCH__INIT;
        batch.n_records = 1;
        batch.records = records;
        batch.ttl_ms = 60000;
        Levee__Frame f = LEVEE__FRAME__INIT;
        f.request_id = id;
        f.body_case = LEVEE__FRAME__BODY_PRESENCE_BATCH;
        f.presence_batch = &batch;
        c.send(f);
    }

    SlowDisk disk_;
    std::string dir_;
    BasePtr base_{threaded_base()};
    LoopPoster poster_{base_.get()};
    Metrics metrics_;
    ProbeService probe_{nullptr, nullptr};
    LimitService limit_{nullptr, metrics_};
    RegistryService registry_{nullptr, metrics_};
    std::unique_ptr<Spool> spool_;
    std::unique_ptr<PresenceService> presence_;
    std::unique_ptr<Dispatcher> dispatcher_;
    std::unique_ptr<FrameServer> server_;
};

// The spool's fdatasync ran inside append(), on the loop: one slow sync held
// up every frame of every nginx worker. Now another connection's hello and
// query are answered while it is stuck, and the batch's ack comes after it.
TEST_F(SpoolSyncLoop, OtherFramesAreAnsweredWhileABatchSyncs) {
    auto beats = connect_hello();
    send_batch(*beats, 7);
    ASSERT_TRUE(run_until(base_.get(), [&] { return disk_.entered.load(); })) << "no sync began";

    auto other = connect_hello(); // answered: the loop is not in fdatasync
    UserQuery q(8);
    other->send(q.f);
    FramePtr answer = other->await_frame(base_.get());
    ASSERT_NE(answer, nullptr);
    EXPECT_EQ(answer->body_case, LEVEE__FRAME__BODY_PRESENCE_QUERY_REPLY);
    EXPECT_EQ(beats->take_frame(), nullptr) << "acknowledged before its sync";
    EXPECT_EQ(spool_->pending_records(), 0u);

    disk_.let_go();
    FramePtr ack = beats->await_frame(base_.get());
    ASSERT_NE(ack, nullptr);
    ASSERT_EQ(ack->body_case, LEVEE__FRAME__BODY_PRESENCE_ACK);
    EXPECT_EQ(ack->request_id, 7u);
    EXPECT_TRUE(ack->presence_ack->ok);
    EXPECT_EQ(spool_->pending_records(), 1u);
    EXPECT_FALSE(disk_.on_loop_thread.load());
}

// A failed fdatasync still costs only the database's copy: the batch is cut
// from the spool, counted as dropped (disk), and acknowledged.
TEST_F(SpoolSyncLoop, AFailedSyncIsCutCountedAndAcknowledged) {
    disk_.fail = true;
    auto beats = connect_hello();
    send_batch(*beats, 9);
    ASSERT_TRUE(run_until(base_.get(), [&] { return disk_.entered.load(); }));
    disk_.let_go();
    FramePtr ack = beats->await_frame(base_.get());
    ASSERT_NE(ack, nullptr);
    ASSERT_EQ(ack->body_case, LEVEE__FRAME__BODY_PRESENCE_ACK);
    EXPECT_TRUE(ack->presence_ack->ok);
    EXPECT_EQ(metrics_.value("leveed_spool_dropped_records_total", {{"reason", "disk"}}), 1);
    EXPECT_EQ(spool_->pending_records(), 0u);
    EXPECT_EQ(spool_->pending_bytes(), 0u);
}

} // namespace
} // namespace levee::testing
