// The write-ahead spool on a real file system: what survives a reopen, what a
// torn or corrupt record does at start and to the reader, and what a full
// disk and spool_max_bytes do to append.
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

std::unique_ptr<Spool> open_spool(const std::string &dir, std::uint64_t segment_bytes = 64u << 20,
                                  std::vector<SpoolDamage> *damage = nullptr, std::uint64_t max_bytes = 0) {
    SpoolOptions o;
    o.dir = dir;
    o.fsync = SpoolFsync::kNever;
    o.segment_bytes = segment_bytes;
    o.max_bytes = max_bytes;
    if (damage != nullptr) {
        o.on_damage = [damage](const SpoolDamage &d) { damage->push_back(d); };
    }
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

// recover() scanned the last segment in windows of 4096 records and, when a
// window ended in a torn record, truncated the file at the START of that
// window: every whole record before the torn one was cut off too, silently,
// though each was acknowledged. Only the torn record goes.
TEST(Spool, TornTailKeepsTheWholeRecordsBeforeIt) {
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

    std::vector<SpoolDamage> damage;
    auto spool = open_spool(dir.path(), 64u << 20, &damage);
    EXPECT_EQ(spool->end(), end);
    EXPECT_EQ(spool->pending_records(), 3u);
    EXPECT_EQ(fs::file_size(segment_file(dir.path(), end.segment)), end.offset);
    ASSERT_EQ(damage.size(), 1u);
    EXPECT_EQ(damage[0].kind, SpoolDamage::Kind::kTornTail);
    EXPECT_EQ(damage[0].offset, end.offset);
    EXPECT_EQ(damage[0].bytes, 6u);
    std::vector<SpoolRecord> got;
    std::string error;
    ASSERT_TRUE(read_all(*spool, got, error)) << error;
    EXPECT_EQ(users(got), (std::vector<std::string>{"a0", "a1", "a2"}));
}

// A whole record whose checksum fails in the last segment was taken for a
// torn tail: open() cut the file without a word, dropping the records before
// it in its scan window and every acknowledged record after it. It is skipped
// and reported once (at open, not again by the reader); the records on both
// sides of it stay and are read.
TEST(Spool, CorruptRecordInTheLastSegmentIsSkippedAndReported) {
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

    std::vector<SpoolDamage> damage;
    auto spool = open_spool(dir.path(), 64u << 20, &damage);
    EXPECT_EQ(fs::file_size(segment_file(dir.path(), end.segment)), end.offset);
    EXPECT_EQ(spool->end(), end);
    EXPECT_EQ(spool->pending_records(), 2u);
    ASSERT_EQ(damage.size(), 1u);
    EXPECT_EQ(damage[0].kind, SpoolDamage::Kind::kSkipped);
    EXPECT_EQ(damage[0].file, segment_file(dir.path(), end.segment));
    EXPECT_EQ(damage[0].offset, second);
    EXPECT_EQ(damage[0].bytes, record_bytes(a[1]));
    EXPECT_NE(damage[0].reason.find("checksum mismatch at offset " + std::to_string(second)), std::string::npos)
        << damage[0].reason;
    for (int round = 0; round < 2; round++) {
        std::vector<SpoolRecord> got;
        std::string error;
        ASSERT_TRUE(read_all(*spool, got, error)) << error;
        EXPECT_EQ(users(got), (std::vector<std::string>{"a0", "a2"}));
    }
    EXPECT_EQ(damage.size(), 1u) << "reported again by the reader";
}

// A damaged length says nothing of where the next record starts: the reader
// finds it by the next header whose record checks out.
TEST(Spool, ADamagedLengthIsResyncedAtTheNextValidRecord) {
    TempDir dir;
    const auto a = make_records("a", 4);
    std::vector<SpoolDamage> damage;
    auto spool = open_spool(dir.path(), 64u << 20, &damage);
    std::string error;
    ASSERT_TRUE(spool->append(a, error)) << error;
    const std::uint64_t second = record_bytes(a[0]);
    flip_byte(segment_file(dir.path(), spool->end().segment), second); // the top byte of a1's length
    std::vector<SpoolRecord> got;
    ASSERT_TRUE(read_all(*spool, got, error)) << error;
    EXPECT_EQ(users(got), (std::vector<std::string>{"a0", "a2", "a3"}));
    ASSERT_EQ(damage.size(), 1u);
    EXPECT_EQ(damage[0].offset, second);
    EXPECT_EQ(damage[0].bytes, record_bytes(a[1]));
    EXPECT_NE(damage[0].reason.find("bad record length"), std::string::npos) << damage[0].reason;
    EXPECT_EQ(spool->pending_records(), 3u);
}

// Damage longer than what one read brings in (zeros where a file system lost
// blocks): the resync reads on until the next valid record.
TEST(Spool, DamageLongerThanAReadWindowIsSkipped) {
    TempDir dir;
    auto spool = open_spool(dir.path());
    std::string error;
    std::vector<SpoolRecord> all;
    for (int i = 0; i < 100000; i++) {
        char user[16];
        std::snprintf(user, sizeof(user), "u%06d", i);
        all.push_back({user, "", i});
    }
    ASSERT_TRUE(spool->append(all, error)) << error;
    const std::uint64_t size = record_bytes(all[0]); // every record is as long
    const std::uint64_t from = 1000 * size + 5;
    const std::uint64_t to = 60000 * size + 6; // 1.5 MiB of zeros, ending in the checksum of u060000
    {
        std::fstream f(segment_file(dir.path(), spool->end().segment), std::ios::binary | std::ios::in | std::ios::out);
        f.seekp(static_cast<std::streamoff>(from));
        f << std::string(static_cast<std::size_t>(to - from), '\0');
    }
    std::vector<SpoolRecord> got;
    ASSERT_TRUE(read_all(*spool, got, error, 4096)) << error;
    ASSERT_EQ(got.size(), 1000u + (100000u - 60001u));
    EXPECT_EQ(got[999].user, "u000999");
    EXPECT_EQ(got[1000].user, "u060001");
    EXPECT_EQ(got.back().user, "u099999");
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

// Damage in a segment behind the last made Spool::open fail, so leveed did
// not start and no presence batch was acknowledged at all. The spool opens,
// new batches append, the damage is reported, and the reader reads every
// good record around it: a torn end of an older segment (it cannot be cut:
// records follow in the next segment) is skipped like a corrupt record.
TEST(Spool, DamageInAnOlderSegmentDoesNotStopStartup) {
    for (const Damage damage : {Damage::kFlippedByte, Damage::kTruncated}) {
        TempDir dir;
        SpoolPosition old_end;
        damage_older_segment(dir.path(), damage, old_end);
        std::vector<SpoolDamage> told;
        SpoolOptions o;
        o.dir = dir.path();
        o.on_damage = [&told](const SpoolDamage &d) { told.push_back(d); };
        std::string error;
        auto spool = Spool::open(o, error);
        ASSERT_NE(spool, nullptr) << error;
        ASSERT_EQ(told.size(), 1u);
        EXPECT_EQ(told[0].kind, SpoolDamage::Kind::kSkipped);
        EXPECT_EQ(told[0].file, segment_file(dir.path(), old_end.segment));
        EXPECT_NE(told[0].reason.find(damage == Damage::kFlippedByte ? "checksum mismatch" : "torn record"),
                  std::string::npos)
            << told[0].reason;
        ASSERT_TRUE(spool->append(make_records("w", 1), error)) << error;
        std::vector<SpoolRecord> got;
        ASSERT_TRUE(read_all(*spool, got, error)) << error;
        EXPECT_EQ(users(got), damage == Damage::kFlippedByte
                                  ? (std::vector<std::string>{"u0", "u2", "u3", "v0", "v1", "v2", "v3", "w0"})
                                  : (std::vector<std::string>{"u0", "u1", "u2", "v0", "v1", "v2", "v3", "w0"}));
        EXPECT_EQ(spool->pending_records(), 8u);
        EXPECT_EQ(told.size(), 1u) << "reported again by the reader";
    }
}

// Damage that appears while leveed runs is found by the reader: skipped,
// reported, and the reader goes on (here it is the last record).
TEST(Spool, ReaderSkipsAndReportsACorruptRecordWithItsOffset) {
    TempDir dir;
    std::vector<SpoolDamage> damage;
    auto spool = open_spool(dir.path(), 64u << 20, &damage);
    const auto a = make_records("a", 3);
    std::string error;
    ASSERT_TRUE(spool->append(a, error)) << error;
    const std::uint64_t third = record_bytes(a[0]) + record_bytes(a[1]);
    flip_byte(segment_file(dir.path(), spool->end().segment), third + 4); // its checksum
    std::vector<SpoolRecord> got;
    ASSERT_TRUE(read_all(*spool, got, error)) << error;
    EXPECT_EQ(users(got), (std::vector<std::string>{"a0", "a1"}));
    ASSERT_EQ(damage.size(), 1u);
    EXPECT_EQ(damage[0].offset, third);
    EXPECT_NE(damage[0].reason.find("checksum mismatch at offset " + std::to_string(third)), std::string::npos)
        << damage[0].reason;
    ASSERT_TRUE(spool->append(make_records("b", 1), error)) << error;
    got.clear();
    SpoolPosition next;
    ASSERT_TRUE(spool->read(spool->checkpoint(), 100, got, next, error)) << error;
    EXPECT_EQ(users(got), (std::vector<std::string>{"a0", "a1", "b0"}));
}

// spool_max_bytes bounds what is not yet in the database: past it a batch is
// refused whole, and taken again once the writer has caught up.
TEST(Spool, AFullSpoolRefusesTheBatchUntilTheWriterCatchesUp) {
    TempDir dir;
    const auto batch = make_records("a", 4);
    std::uint64_t batch_bytes = 0;
    for (const auto &r : batch) {
        batch_bytes += record_bytes(r);
    }
    auto spool = open_spool(dir.path(), 64u << 20, nullptr, 2 * batch_bytes);
    std::string error;
    SpoolRefusal why = SpoolRefusal::kNone;
    ASSERT_TRUE(spool->append(batch, error, &why)) << error;
    ASSERT_TRUE(spool->append(batch, error, &why)) << error;
    const SpoolPosition end = spool->end();
    EXPECT_FALSE(spool->append(make_records("b", 1), error, &why));
    EXPECT_EQ(why, SpoolRefusal::kFull);
    EXPECT_NE(error.find("spool full"), std::string::npos) << error;
    EXPECT_EQ(spool->end(), end);
    EXPECT_EQ(fs::file_size(segment_file(dir.path(), end.segment)), end.offset);
    EXPECT_EQ(spool->pending_records(), 8u);

    ASSERT_TRUE(spool->commit({end.segment, batch_bytes}, 4, error)) << error;
    ASSERT_TRUE(spool->append(batch, error)) << error;
    EXPECT_FALSE(spool->append(batch, error, &why));
    spool->set_max_bytes(0); // a reload lifting the bound
    ASSERT_TRUE(spool->append(batch, error)) << error;
    std::vector<SpoolRecord> got;
    ASSERT_TRUE(read_all(*spool, got, error)) << error;
    EXPECT_EQ(got.size(), 12u);
}

// Appends until the file system refuses, then checks that the refusal reached
// the caller, and that what is on disk is exactly the acknowledged batches.
void fill_until_refused(const std::string &dir, const char *expected_error) {
    auto spool = open_spool(dir);
    std::string error;
    std::size_t acked = 0;
    bool refused = false;
    SpoolRefusal why = SpoolRefusal::kNone;
    for (int i = 0; i < 1000 && !refused; i++) {
        const auto batch = make_records("user-with-a-longish-name-" + std::to_string(i) + "-", 50);
        if (spool->append(batch, error, &why)) {
            acked += batch.size();
        } else {
            refused = true;
        }
    }
    ASSERT_TRUE(refused) << "the file system never filled up";
    EXPECT_EQ(why, SpoolRefusal::kDisk);
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
