// The on-disk write-ahead spool of presence records. leveed appends every
// batch here before acknowledging it; the MongoDB writer reads it from the
// last checkpoint, so a batch survives leveed's death and a database that is
// away for a while, and reaches the database in the order it was accepted.
//
// Files: spool-<segment>.log, each record [u32 length][u32 crc32][payload];
// checkpoint holds "<segment> <offset>" of the first record not yet written
// to the database. A torn record at the tail (a crash mid-write) is cut off
// when the spool is opened.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace levee {

struct SpoolRecord {
    std::string user;
    std::string room;
    std::int64_t last_seen_ms = 0;
};

struct SpoolPosition {
    std::uint64_t segment = 0;
    std::uint64_t offset = 0;
    bool operator==(const SpoolPosition &o) const { return segment == o.segment && offset == o.offset; }
    bool operator!=(const SpoolPosition &o) const { return !(*this == o); }
};

enum class SpoolFsync { kAlways, kInterval, kNever };

struct SpoolOptions {
    std::string dir;
    SpoolFsync fsync = SpoolFsync::kInterval;
    std::uint64_t segment_bytes = 64u << 20;
};

// Encodes/decodes one record's payload; exposed for tests and the fuzzer.
std::string encode_spool_payload(const SpoolRecord &record);
bool decode_spool_payload(const std::uint8_t *data, std::size_t len, SpoolRecord &out);

class Spool {
  public:
    static std::unique_ptr<Spool> open(const SpoolOptions &options, std::string &error);
    ~Spool();
    Spool(const Spool &) = delete;
    Spool &operator=(const Spool &) = delete;

    // Appends the records with one write(2); with SpoolFsync::kAlways also
    // fsyncs before returning. Loop thread only.
    bool append(const std::vector<SpoolRecord> &records, std::string &error);
    // fsync of the segment being written (SpoolFsync::kInterval calls this on a timer).
    bool sync(std::string &error);

    // Reader side, for one other thread: up to `max_records` from `from`;
    // `next` is where the following read starts. Returns false on an I/O
    // error or a corrupt record (which is reported, never skipped silently).
    bool read(SpoolPosition from, std::size_t max_records, std::vector<SpoolRecord> &out, SpoolPosition &next,
              std::string &error) const;
    // Everything before `upto` is in the database: persist the checkpoint
    // and delete segments that are wholly behind it.
    bool commit(SpoolPosition upto, std::uint64_t records, std::string &error);

    SpoolPosition checkpoint() const;
    SpoolPosition end() const;
    std::uint64_t pending_bytes() const;
    std::uint64_t pending_records() const { return pending_records_.load(); }

  private:
    explicit Spool(SpoolOptions options) : options_(std::move(options)) {}
    bool recover(std::string &error);
    bool open_segment(std::uint64_t segment, std::string &error);
    // Records of one segment in [from, limit); `next` is just after the last one read.
    bool scan(std::uint64_t segment, std::uint64_t from, std::uint64_t limit, std::size_t max_records,
              std::vector<SpoolRecord> &out, std::uint64_t &next, std::string &error) const;
    std::string segment_path(std::uint64_t segment) const;

    SpoolOptions options_;
    mutable std::mutex mutex_; // guards segments_, checkpoint_, end_
    std::vector<std::uint64_t> segments_;
    SpoolPosition checkpoint_;
    SpoolPosition end_;
    int fd_ = -1; // segment being appended to
    std::atomic<std::uint64_t> pending_records_{0};
};

} // namespace levee
