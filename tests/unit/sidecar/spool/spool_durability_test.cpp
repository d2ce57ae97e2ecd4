// What the spool asks the kernel to make durable, and in which order. A unit
// test cannot pull the power, so this binary interposes fsync, fdatasync and
// rename (its definitions win over libc's for the spool linked into it) and
// records each call with the path of its file descriptor.
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "spool.hpp"

namespace {

struct Call {
    std::string op; // "fsync" (fsync or fdatasync) or "rename"
    std::string path;
};

bool g_recording = false;
std::vector<Call> g_calls;
bool g_fail_datasync = false; // fdatasync fails with EIO, as on a failing disk

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
        g_calls.push_back({op, std::move(path)});
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

const std::vector<SpoolRecord> kBatch = {{"alice", "", 1}, {"bob", "lobby", 2}};

TEST_F(SpoolDurability, FsyncAlwaysSyncsTheSegmentBeforeAppendReturns) {
    auto spool = open();
    g_recording = true;
    std::string error;
    ASSERT_TRUE(spool->append(kBatch, error)) << error;
    g_recording = false;
    char name[64];
    std::snprintf(name, sizeof(name), "/spool-%016llu.log", 1ull);
    EXPECT_GE(find("fsync", dir_ + name), 0);
}

// commit() wrote checkpoint.tmp and renamed it over checkpoint syncing
// neither the file before the rename nor the directory after, so a power loss
// could leave an empty or an old checkpoint although commit() returned (and
// the segments behind it already unlinked).
TEST_F(SpoolDurability, CommitSyncsTheCheckpointFileThenItsDirectory) {
    auto spool = open();
    std::string error;
    ASSERT_TRUE(spool->append(kBatch, error)) << error;
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
TEST_F(SpoolDurability, ANewSegmentIsInTheSyncedDirectoryBeforeAppendReturns) {
    auto spool = open(1); // every batch after the first starts a segment
    std::string error;
    ASSERT_TRUE(spool->append(kBatch, error)) << error;
    g_recording = true;
    ASSERT_TRUE(spool->append(kBatch, error)) << error;
    g_recording = false;
    ASSERT_EQ(spool->end().segment, 2u);
    EXPECT_GE(find("fsync", dir_), 0) << "the directory holding the new segment is not synced";
}

TEST_F(SpoolDurability, AFailedSyncFailsTheAppend) {
    auto spool = open();
    g_fail_datasync = true;
    std::string error;
    EXPECT_FALSE(spool->append(kBatch, error));
    g_fail_datasync = false;
    EXPECT_NE(error.find("fdatasync"), std::string::npos) << error;
    EXPECT_NE(error.find("Input/output error"), std::string::npos) << error;
}

// When fdatasync failed after the write, append() reported failure but left
// the batch's bytes in the segment without advancing end_; the next append
// landed after them, so end_ no longer fell on a record boundary and the
// reader met a "torn record" at end_. The refused batch is cut instead.
TEST_F(SpoolDurability, AFailedSyncLeavesTheSpoolReadable) {
    auto spool = open();
    std::string error;
    ASSERT_TRUE(spool->append({{"a", "", 1}}, error)) << error;
    g_fail_datasync = true;
    EXPECT_FALSE(spool->append({{"refused-batch", "", 2}}, error));
    g_fail_datasync = false;
    ASSERT_TRUE(spool->append({{"c", "", 3}}, error)) << error;
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
