// The write-ahead spool on a real file system: what survives a reopen, what a
// torn or corrupt record does at start and to the reader, and what a full
// disk does to append. Tests named DISABLED_ state behaviour that must hold
// and does not yet; each names the defect.
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>

#include "spool.hpp"

namespace levee {
namespace {

namespace fs = std::filesystem;

class TempDir {
  public:
    TempDir() {
        char tmpl[] = "/tmp/levee-spool-test-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) {
            std::abort();
        }
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const std::string &path() const { return path_; }

  private:
    std::string path_;
};

std::string segment_file(const std::string &dir, std::uint64_t segment) {
    char name[64];
    std::snprintf(name, sizeof(name), "/spool-%016llu.log", static_cast<unsigned long long>(segment));
    return dir + name;
}

// Bytes one record takes on disk: header, two length-prefixed strings, the time.
std::uint64_t record_bytes(const SpoolRecord &r) { return 8 + 2 + r.user.size() + 2 + r.room.size() + 8; }

std::vector<SpoolRecord> make_records(const std::string &prefix, int n, std::int64_t t0 = 1000) {
    std::vector<SpoolRecord> out;
    for (int i = 0; i < n; i++) {
        out.push_back({prefix + std::to_string(i), i % 2 ? "room" : "", t0 + i});
    }
    return out;
}

std::unique_ptr<Spool> open_spool(const std::string &dir, std::uint64_t segment_bytes = 64u << 20) {
    SpoolOptions o;
    o.dir = dir;
    o.fsync = SpoolFsync::kNever;
    o.segment_bytes = segment_bytes;
    std::string error;
    auto spool = Spool::open(o, error);
    EXPECT_NE(spool, nullptr) << error;
    return spool;
}

// Everything from the checkpoint on, in batches of `batch`.
bool read_all(const Spool &spool, std::vector<SpoolRecord> &out, std::string &error, std::size_t batch = 1000) {
    SpoolPosition at = spool.checkpoint();
    for (int guard = 0; guard < 10000; guard++) {
        SpoolPosition next;
        std::vector<SpoolRecord> got; // read() counts `max_records` against what `out` holds
        const bool ok = spool.read(at, batch, got, next, error);
        out.insert(out.end(), got.begin(), got.end());
        if (!ok || got.empty()) {
            return ok;
        }
        at = next;
    }
    error = "read never reached the end";
    return false;
}

std::vector<std::string> users(const std::vector<SpoolRecord> &records) {
    std::vector<std::string> out;
    for (const auto &r : records) {
        out.push_back(r.user);
    }
    return out;
}

void append_bytes(const std::string &path, const std::string &bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::app);
    f << bytes;
}

void flip_byte(const std::string &path, std::uint64_t offset) {
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    f.seekg(static_cast<std::streamoff>(offset));
    char c = 0;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(offset));
    f.put(static_cast<char>(c ^ 0x5a));
}

TEST(SpoolPayload, RoundTripsAndRefusesShortOrLongPayloads) {
    const SpoolRecord r{"alice", "lobby", 1700000000123};
    const std::string p = encode_spool_payload(r);
    SpoolRecord back;
    ASSERT_TRUE(decode_spool_payload(reinterpret_cast<const std::uint8_t *>(p.data()), p.size(), back));
    EXPECT_EQ(back.user, "alice");
    EXPECT_EQ(back.room, "lobby");
    EXPECT_EQ(back.last_seen_ms, 1700000000123);
    EXPECT_FALSE(decode_spool_payload(reinterpret_cast<const std::uint8_t *>(p.data()), p.size() - 1, back));
    const std::string longer = p + "x";
    EXPECT_FALSE(decode_spool_payload(reinterpret_cast<const std::uint8_t *>(longer.data()), longer.size(), back));
}

TEST(Spool, RoundTripSurvivesReopenAndCommitMovesTheCheckpoint) {
    TempDir dir;
    const auto a = make_records("a", 3);
    const auto b = make_records("b", 2);
    SpoolPosition after_a;
    {
        auto spool = open_spool(dir.path());
        std::string error;
        ASSERT_TRUE(spool->append(a, error)) << error;
        after_a = spool->end();
        ASSERT_TRUE(spool->append(b, error)) << error;
        EXPECT_EQ(spool->pending_records(), 5u);
        std::vector<SpoolRecord> got;
        ASSERT_TRUE(read_all(*spool, got, error)) << error;
        EXPECT_EQ(users(got), (std::vector<std::string>{"a0", "a1", "a2", "b0", "b1"}));
        EXPECT_EQ(got[1].room, "room");
        EXPECT_EQ(got[1].last_seen_ms, 1001);
        ASSERT_TRUE(spool->commit(after_a, 3, error)) << error;
        EXPECT_EQ(spool->pending_records(), 2u);
    }
    auto spool = open_spool(dir.path());
    EXPECT_EQ(spool->checkpoint(), after_a);
    EXPECT_EQ(spool->pending_records(), 2u);
    std::vector<SpoolRecord> got;
    std::string error;
    ASSERT_TRUE(read_all(*spool, got, error)) << error;
    EXPECT_EQ(users(got), (std::vector<std::string>{"b0", "b1"}));
}

TEST(Spool, ReadsAcrossSegmentsAndCommitDeletesTheOnesBehind) {
    TempDir dir;
    std::uint64_t batch_bytes = 0;
    for (const auto &r : make_records("s0-", 4)) {
        batch_bytes += record_bytes(r);
    }
    // Two batches fit in a segment, the third starts the next one.
    auto spool = open_spool(dir.path(), 2 * batch_bytes + 1);
    std::string error;
    for (int i = 0; i < 5; i++) {
        ASSERT_TRUE(spool->append(make_records("s" + std::to_string(i) + "-", 4), error)) << error;
    }
    EXPECT_EQ(spool->end().segment, spool->checkpoint().segment + 2);
    std::vector<SpoolRecord> got;
    ASSERT_TRUE(read_all(*spool, got, error, 3)) << error;
    ASSERT_EQ(got.size(), 20u);
    EXPECT_EQ(got.front().user, "s0-0");
    EXPECT_EQ(got.back().user, "s4-3");

    const std::uint64_t first = spool->checkpoint().segment;
    ASSERT_TRUE(spool->commit({first + 2, 0}, 16, error)) << error;
    EXPECT_FALSE(fs::exists(segment_file(dir.path(), first)));
    EXPECT_FALSE(fs::exists(segment_file(dir.path(), first + 1)));
    EXPECT_TRUE(fs::exists(segment_file(dir.path(), first + 2)));
    got.clear();
    ASSERT_TRUE(read_all(*spool, got, error)) << error;
    EXPECT_EQ(users(got), (std::vector<std::string>{"s4-0", "s4-1", "s4-2", "s4-3"}));
}

TEST(Spool, TornTailAfterTheCheckpointIsCutOnOpen) {
    TempDir dir;
    SpoolPosition committed;
    {
        auto spool = open_spool(dir.path());
        std::string error;
        ASSERT_TRUE(spool->append(make_records("a", 2), error)) << error;
        committed = spool->end();
        ASSERT_TRUE(spool->commit(committed, 2, error)) << error;
    }
    // A crash mid-write: a header announcing 30 bytes, and 5 of them.
    append_bytes(segment_file(dir.path(), committed.segment), std::string("\0\0\0\x1e\0\0\0\0abcde", 13));

    auto spool = open_spool(dir.path());
    EXPECT_EQ(spool->end(), committed);
    EXPECT_EQ(fs::file_size(segment_file(dir.path(), committed.segment)), committed.offset);
    std::string error;
    ASSERT_TRUE(spool->append(make_records("c", 1), error)) << error;
    std::vector<SpoolRecord> got;
    ASSERT_TRUE(read_all(*spool, got, error)) << error;
    EXPECT_EQ(users(got), (std::vector<std::string>{"c0"}));
}

// Defect: recover() scans the last segment in windows of 4096 records and, when
// a window ends in a torn record, truncates the file at the START of that
// window (`at` is not advanced on a failed scan): every whole record before the
// torn one in that window is cut off too, silently, though each was acknowledged.
TEST(Spool, DISABLED_TornTailKeepsTheWholeRecordsBeforeIt) {
    TempDir dir;
    const auto a = make_records("a", 3);
    SpoolPosition end;
    {
        auto spool = open_spool(dir.path());
        std::string error;
        ASSERT_TRUE(spool->append(a, error)) << error;
        end = spool->end();
    }
    append_bytes(segment_file(dir.path(), end.segment), std::string("\0\0\0\x1e\0\0", 6)); // torn header

    auto spool = open_spool(dir.path());
    EXPECT_EQ(spool->end(), end);
    EXPECT_EQ(spool->pending_records(), 3u);
    std::vector<SpoolRecord> got;
    std::string error;
    ASSERT_TRUE(read_all(*spool, got, error)) << error;
    EXPECT_EQ(users(got), (std::vector<std::string>{"a0", "a1", "a2"}));
}

// Defect: a whole record whose checksum fails in the last segment is taken for
// a torn tail: open() succeeds without a word, and the file is truncated at
// the start of the scan window, dropping the records before it and every
// acknowledged record after it. docs/leveed.md says a corrupt record is
// reported, never skipped; it must stay on disk and stop the reader with the
// offset, and the records before it must still be read.
TEST(Spool, DISABLED_CorruptRecordInTheLastSegmentIsReportedNotCut) {
    TempDir dir;
    const auto a = make_records("a", 3);
    SpoolPosition end;
    {
        auto spool = open_spool(dir.path());
        std::string error;
        ASSERT_TRUE(spool->append(a, error)) << error;
        end = spool->end();
    }
    const std::uint64_t second = record_bytes(a[0]);
    flip_byte(segment_file(dir.path(), end.segment), second + 8 + 3); // a byte of a1's user

    SpoolOptions o;
    o.dir = dir.path();
    std::string error;
    auto spool = Spool::open(o, error);
    ASSERT_NE(spool, nullptr) << error;
    EXPECT_EQ(fs::file_size(segment_file(dir.path(), end.segment)), end.offset);
    EXPECT_EQ(spool->end(), end);
    std::vector<SpoolRecord> got;
    SpoolPosition next;
    EXPECT_FALSE(spool->read(spool->checkpoint(), 100, got, next, error));
    EXPECT_NE(error.find("checksum mismatch at offset " + std::to_string(second)), std::string::npos) << error;
    EXPECT_EQ(users(got), (std::vector<std::string>{"a0"}));
}

// A segment behind the one being written, damaged on disk.
enum class Damage { kFlippedByte, kTruncated };

void damage_older_segment(const std::string &dir, Damage damage, SpoolPosition &old_end) {
    const auto batch = make_records("u", 4);
    std::uint64_t batch_bytes = 0;
    for (const auto &r : batch) {
        batch_bytes += record_bytes(r);
    }
    auto spool = open_spool(dir, batch_bytes + 1);
    std::string error;
    ASSERT_TRUE(spool->append(batch, error)) << error;
    old_end = spool->end();
    ASSERT_TRUE(spool->append(make_records("v", 4), error)) << error;
    ASSERT_EQ(spool->end().segment, old_end.segment + 1);
    spool.reset();
    const std::string path = segment_file(dir, old_end.segment);
    if (damage == Damage::kFlippedByte) {
        flip_byte(path, record_bytes(batch[0]) + 8 + 2);
    } else {
        fs::resize_file(path, old_end.offset - 3);
    }
}

// What recovery does today: open() refuses, naming the segment and the damage.
// It is the defect that DISABLED_DamageInAnOlderSegmentDoesNotStopStartup
// states; its fix replaces this test.
TEST(Spool, DamageInAnOlderSegmentIsReportedByOpenToday) {
    for (const Damage damage : {Damage::kFlippedByte, Damage::kTruncated}) {
        TempDir dir;
        SpoolPosition old_end;
        damage_older_segment(dir.path(), damage, old_end);
        SpoolOptions o;
        o.dir = dir.path();
        std::string error;
        EXPECT_EQ(Spool::open(o, error), nullptr);
        EXPECT_NE(error.find("spool segment " + segment_file(dir.path(), old_end.segment) + " is corrupt"),
                  std::string::npos)
            << error;
        EXPECT_NE(error.find(damage == Damage::kFlippedByte ? "checksum mismatch" : "torn record"),
                  std::string::npos)
            << error;
    }
}

// Defect: damage in a segment behind the last makes Spool::open fail, so
// leveed does not start and no presence batch is acknowledged at all. The
// spool must open (new batches still append), and the reader must stop at the
// damage with an error naming it, never skip it.
TEST(Spool, DISABLED_DamageInAnOlderSegmentDoesNotStopStartup) {
    for (const Damage damage : {Damage::kFlippedByte, Damage::kTruncated}) {
        TempDir dir;
        SpoolPosition old_end;
        damage_older_segment(dir.path(), damage, old_end);
        SpoolOptions o;
        o.dir = dir.path();
        std::string error;
        auto spool = Spool::open(o, error);
        ASSERT_NE(spool, nullptr) << error;
        ASSERT_TRUE(spool->append(make_records("w", 1), error)) << error;
        std::vector<SpoolRecord> got;
        SpoolPosition next;
        EXPECT_FALSE(spool->read(spool->checkpoint(), 100, got, next, error));
        EXPECT_NE(error.find(damage == Damage::kFlippedByte ? "checksum mismatch" : "torn record"),
                  std::string::npos)
            << error;
        EXPECT_EQ(users(got), (std::vector<std::string>{"u0"}));
    }
}

TEST(Spool, ReaderReportsACorruptRecordWithItsOffset) {
    TempDir dir;
    auto spool = open_spool(dir.path());
    const auto a = make_records("a", 3);
    std::string error;
    ASSERT_TRUE(spool->append(a, error)) << error;
    const std::uint64_t third = record_bytes(a[0]) + record_bytes(a[1]);
    flip_byte(segment_file(dir.path(), spool->end().segment), third + 4); // its checksum
    std::vector<SpoolRecord> got;
    SpoolPosition next;
    EXPECT_FALSE(spool->read(spool->checkpoint(), 100, got, next, error));
    EXPECT_NE(error.find("checksum mismatch at offset " + std::to_string(third)), std::string::npos) << error;
}

// Appends until the file system refuses, then checks that the refusal reached
// the caller, and that what is on disk is exactly the acknowledged batches.
void fill_until_refused(const std::string &dir, const char *expected_error) {
    auto spool = open_spool(dir);
    std::string error;
    std::size_t acked = 0;
    bool refused = false;
    for (int i = 0; i < 1000 && !refused; i++) {
        const auto batch = make_records("user-with-a-longish-name-" + std::to_string(i) + "-", 50);
        if (spool->append(batch, error)) {
            acked += batch.size();
        } else {
            refused = true;
        }
    }
    ASSERT_TRUE(refused) << "the file system never filled up";
    EXPECT_NE(error.find(expected_error), std::string::npos) << error;
    EXPECT_EQ(spool->pending_records(), acked);
    const SpoolPosition end = spool->end();
    EXPECT_EQ(fs::file_size(segment_file(dir, end.segment)), end.offset) << "a partial batch was left behind";
    std::vector<SpoolRecord> got;
    ASSERT_TRUE(read_all(*spool, got, error)) << error;
    EXPECT_EQ(got.size(), acked);
    spool.reset();

    auto reopened = open_spool(dir);
    got.clear();
    ASSERT_TRUE(read_all(*reopened, got, error)) << error;
    EXPECT_EQ(got.size(), acked);
}

TEST(Spool, FullDiskFailsTheAppendAndKeepsOnlyWholeBatches) {
    TempDir dir;
    const std::string mnt = dir.path() + "/tmpfs";
    fs::create_directory(mnt);
    if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k") != 0) {
        GTEST_SKIP() << "cannot mount a 64 KiB tmpfs (" << std::strerror(errno)
                     << "); FileSizeLimitFailsTheAppend covers the same path unprivileged";
    }
    fill_until_refused(mnt + "/spool", "No space left on device");
    EXPECT_EQ(::umount(mnt.c_str()), 0);
}

TEST(Spool, FileSizeLimitFailsTheAppendAndKeepsOnlyWholeBatches) {
    TempDir dir;
    rlimit old{};
    ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
    // Past the limit write(2) fails with EFBIG instead of killing us with SIGXFSZ.
    const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit small = old;
    small.rlim_cur = 48 * 1024;
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
    fill_until_refused(dir.path(), "File too large");
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old), 0);
    std::signal(SIGXFSZ, old_handler);
}

} // namespace
} // namespace levee
