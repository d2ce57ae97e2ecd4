// What the spool asks the kernel to make durable, and in which order. A unit
// test cannot pull the power, so this binary interposes fsync, fdatasync and
// rename (its definitions win over libc's for the spool linked into it) and
// records each call with the path of its file descriptor and whether it ran
// on the thread that appended (leveed's event loop).
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "spool.hpp"

namespace {

struct Call {
    std::string op; // "fsync" (fsync or fdatasync) or "rename"
    std::string path;
    std::thread::id thread;
};

std::atomic<bool> g_recording{false};
std::mutex g_calls_mutex;
std::vector<Call> g_calls;
std::atomic<bool> g_fail_datasync{false}; // fdatasync fails with EIO, as on a failing disk

std::string fd_path(int fd) {
    char link[64];
    char target[PATH_MAX];
    std::snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    const ssize_t n = ::readlink(link, target, sizeof(target) - 1);
    return n < 0 ? std::string() : std::string(target, static_cast<std::size_t>(n));
}

template <typename Fn> Fn real(const char *name) {
    void *sym = ::dlsym(RTLD_NEXT, name);
    if (sym == nullptr) {
        std::abort();
    }
    return reinterpret_cast<Fn>(sym);
}

void record(const char *op, std::string path) {
    if (g_recording) {
        std::lock_guard<std::mutex> lock(g_calls_mutex);
        g_calls.push_back({op, std::move(path), std::this_thread::get_id()});
    }
}

} // namespace

extern "C" {

int fsync(int fd) {
    static const auto next = real<int (*)(int)>("fsync");
    record("fsync", fd_path(fd));
    return next(fd);
}

int fdatasync(int fd) {
    static const auto next = real<int (*)(int)>("fdatasync");
    record("fsync", fd_path(fd));
    if (g_fail_datasync) {
        errno = EIO;
        return -1;
    }
    return next(fd);
}

int rename(const char *from, const char *to) noexcept {
    static const auto next = real<int (*)(const char *, const char *)>("rename");
    const int r = next(from, to);
    record("rename", to);
    return r;
}

} // extern "C"

namespace levee {
namespace {

class SpoolDurability : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/levee-spool-durability-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = std::filesystem::canonical(tmpl).string();
    }
    void TearDown() override {
        g_recording = false;
        g_fail_datasync = false;
        g_calls.clear();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    std::unique_ptr<Spool> open(std::uint64_t segment_bytes = 64u << 20) {
        SpoolOptions o;
        o.dir = dir_;
        o.fsync = SpoolFsync::kAlways;
        o.segment_bytes = segment_bytes;
        std::string error;
        auto spool = Spool::open(o, error);
        EXPECT_NE(spool, nullptr) << error;
        return spool;
    }
    // Index of the first recorded call `op` on `path` at or after `from`, or -1.
    static int find(const std::string &op, const std::string &path, int from = 0) {
        for (int i = from; i < static_cast<int>(g_calls.size()); i++) {
            if (g_calls[i].op == op && g_calls[i].path == path) {
                return i;
            }
        }
        return -1;
    }
    std::string dir_;
};

struct Outcome {
    bool ok = false;
    std::string error;
};

// Appends and waits for the sync thread's word on the batch.
Outcome append_and_wait(Spool &spool, const std::vector<SpoolRecord> &batch) {
    std::promise<Outcome> said;
    std::string error;
    if (!spool.append(batch, error, nullptr,
                      [&said](bool ok, const std::string &e) { said.set_value(Outcome{ok, e}); })) {
        return Outcome{false, "refused: " + error};
    }
    return said.get_future().get();
}

const std::vector<SpoolRecord> kBatch = {{"alice", "", 1}, {"bob", "lobby", 2}};

TEST_F(SpoolDurability, FsyncAlwaysSyncsTheSegmentBeforeTheBatchIsDurable) {
    auto spool = open();
    g_recording = true;
    const Outcome o = append_and_wait(*spool, kBatch);
    g_recording = false;
    ASSERT_TRUE(o.ok) << o.error;
    char name[64];
    std::snprintf(name, sizeof(name), "/spool-%016llu.log", 1ull);
    EXPECT_GE(find("fsync", dir_ + name), 0);
    EXPECT_EQ(spool->pending_records(), kBatch.size());
}

// append() ran fdatasync (and the directory's fsync) itself, on leveed's
// event loop: every frame of every nginx worker waited for the disk. Now it
// only writes; the sync thread syncs.
TEST_F(SpoolDurability, NoSyncRunsOnTheThreadThatAppends) {
    auto spool = open(1); // the second batch starts a segment: the directory is synced too
    g_recording = true;
    ASSERT_TRUE(append_and_wait(*spool, kBatch).ok);
    ASSERT_TRUE(append_and_wait(*spool, kBatch).ok);
    g_recording = false;
    ASSERT_GE(g_calls.size(), 3u); // two segments, the directory
    for (const Call &c : g_calls) {
        EXPECT_NE(c.thread, std::this_thread::get_id()) << c.op << " " << c.path << " on the appending thread";
    }
}

// Until the sync thread has synced it, a batch is not for the reader: with
// spool_fsync always, MongoDB never gets a record nginx was not told is durable.
TEST_F(SpoolDurability, ABatchIsReadableOnlyOnceSynced) {
    std::promise<void> entered;
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    SpoolOptions o;
    o.dir = dir_;
    o.fsync = SpoolFsync::kAlways;
    o.datasync = [&entered, released](int fd) {
        entered.set_value();
        released.wait();
        return ::fdatasync(fd);
    };
    std::string error;
    auto spool = Spool::open(o, error);
    ASSERT_NE(spool, nullptr) << error;
    std::promise<bool> said;
    ASSERT_TRUE(spool->append(kBatch, error, nullptr, [&said](bool ok, const std::string &) { said.set_value(ok); }))
        << error;
    entered.get_future().wait(); // the round is in fdatasync
    EXPECT_EQ(spool->end(), (SpoolPosition{1, 0}));
    EXPECT_EQ(spool->pending_records(), 0u);
    release.set_value();
    EXPECT_TRUE(said.get_future().get());
    std::vector<SpoolRecord> got;
    SpoolPosition next;
    ASSERT_TRUE(spool->read(spool->checkpoint(), 10, got, next, error)) << error;
    EXPECT_EQ(got.size(), kBatch.size());
}

// Group commit: the batches written while a round is in fdatasync are all
// synced by the next round, one fdatasync for all of them.
TEST_F(SpoolDurability, BatchesWrittenDuringARoundShareTheNextOne) {
    std::promise<void> entered;
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    std::atomic<int> rounds{0};
    SpoolOptions o;
    o.dir = dir_;
    o.fsync = SpoolFsync::kAlways;
    o.datasync = [&](int fd) {
        if (rounds++ == 0) {
            entered.set_value();
            released.wait();
        }
        return ::fdatasync(fd);
    };
    std::string error;
    auto spool = Spool::open(o, error);
    ASSERT_NE(spool, nullptr) << error;
    std::vector<std::promise<bool>> said(5);
    for (std::size_t i = 0; i < said.size(); i++) {
        ASSERT_TRUE(spool->append(kBatch, error, nullptr,
                                  [&said, i](bool ok, const std::string &) { said[i].set_value(ok); }))
            << error;
        if (i == 0) {
            entered.get_future().wait(); // batches 1..4 come while batch 0 syncs
        }
    }
    release.set_value();
    for (auto &p : said) {
        EXPECT_TRUE(p.get_future().get());
    }
    EXPECT_EQ(rounds.load(), 2);
    EXPECT_EQ(spool->pending_records(), 5 * kBatch.size());
}

// commit() wrote checkpoint.tmp and renamed it over checkpoint syncing
// neither the file before the rename nor the directory after, so a power loss
// could leave an empty or an old checkpoint although commit() returned (and
// the segments behind it already unlinked).
TEST_F(SpoolDurability, CommitSyncsTheCheckpointFileThenItsDirectory) {
    auto spool = open();
    ASSERT_TRUE(append_and_wait(*spool, kBatch).ok);
    std::string error;
    g_recording = true;
    ASSERT_TRUE(spool->commit(spool->end(), kBatch.size(), error)) << error;
    g_recording = false;
    const int renamed = find("rename", dir_ + "/checkpoint");
    ASSERT_GE(renamed, 0);
    const int file_synced = find("fsync", dir_ + "/checkpoint.tmp");
    EXPECT_GE(file_synced, 0) << "checkpoint.tmp never synced";
    EXPECT_LT(file_synced, renamed) << "synced only after the rename";
    EXPECT_GE(find("fsync", dir_, renamed), 0) << "the directory is not synced after the rename";
}

// A new segment was created (O_CREAT) without syncing the directory, so with
// spool_fsync always an acknowledged batch in a fresh segment could vanish
// with the segment's directory entry on a power loss.
TEST_F(SpoolDurability, ANewSegmentIsInTheSyncedDirectoryBeforeTheBatchIsDurable) {
    auto spool = open(1); // every batch after the first starts a segment
    ASSERT_TRUE(append_and_wait(*spool, kBatch).ok);
    g_recording = true;
    ASSERT_TRUE(append_and_wait(*spool, kBatch).ok);
    g_recording = false;
    ASSERT_EQ(spool->end().segment, 2u);
    EXPECT_GE(find("fsync", dir_), 0) << "the directory holding the new segment is not synced";
}

TEST_F(SpoolDurability, AFailedSyncCutsTheBatchAndSaysWhy) {
    auto spool = open();
    g_fail_datasync = true;
    const Outcome o = append_and_wait(*spool, kBatch);
    g_fail_datasync = false;
    EXPECT_FALSE(o.ok);
    EXPECT_NE(o.error.find("fdatasync"), std::string::npos) << o.error;
    EXPECT_NE(o.error.find("Input/output error"), std::string::npos) << o.error;
    EXPECT_EQ(spool->pending_records(), 0u);
    EXPECT_EQ(spool->pending_bytes(), 0u);
}

// When fdatasync failed after the write, append() reported failure but left
// the batch's bytes in the segment without advancing end_; the next append
// landed after them, so end_ no longer fell on a record boundary and the
// reader met a "torn record" at end_. The refused batch is cut instead.
TEST_F(SpoolDurability, AFailedSyncLeavesTheSpoolReadable) {
    auto spool = open();
    ASSERT_TRUE(append_and_wait(*spool, {{"a", "", 1}}).ok);
    g_fail_datasync = true;
    EXPECT_FALSE(append_and_wait(*spool, {{"refused-batch", "", 2}}).ok);
    g_fail_datasync = false;
    ASSERT_TRUE(append_and_wait(*spool, {{"c", "", 3}}).ok);
    std::string error;
    std::vector<SpoolRecord> got;
    SpoolPosition next;
    ASSERT_TRUE(spool->read(spool->checkpoint(), 100, got, next, error)) << error;
    std::vector<std::string> users;
    for (const auto &r : got) {
        users.push_back(r.user);
    }
    EXPECT_EQ(users, (std::vector<std::string>{"a", "c"}));
}

} // namespace
} // namespace levee
