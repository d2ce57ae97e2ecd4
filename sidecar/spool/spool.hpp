// The on-disk write-ahead spool of presence records. leveed appends every
// batch here before acknowledging it; the MongoDB writer reads it from the
// last checkpoint, so a batch survives leveed's death and a database that is
// away for a while, and reaches the database in the order it was accepted.
//
// Files: spool-<segment>.log, each record [u32 length][u32 crc32][payload];
// checkpoint holds "<segment> <offset>" of the first record not yet written
// to the database. Damage never stops the spool: an unreadable span followed
// by a valid record is skipped and reported, wherever it is; an unreadable
// tail of the last segment (a crash mid-write) is cut off when the spool is
// opened; one of an older segment is skipped and reported.
//
// Every fdatasync/fsync of the segments runs on the spool's own sync thread,
// never on the caller's (leveed's event loop): a slow disk delays the batches
// waiting to be durable, not every other frame. One round syncs all that was
// written before it began (group commit), however many batches that is.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
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
    bool operator<(const SpoolPosition &o) const {
        return segment < o.segment || (segment == o.segment && offset < o.offset);
    }
};

// Told, on the sync thread, how a sync round went: `ok`, or the error of the
// fdatasync/fsync that failed.
using SpoolSynced = std::function<void(bool ok, const std::string &error)>;

enum class SpoolFsync { kAlways, kInterval, kNever };

// Bytes the spool could not read back.
struct SpoolDamage {
    enum class Kind {
        kSkipped, // lost: the records in [offset, offset + bytes) never reach the database
        kTornTail // cut off at open: the end of the last segment, a write a crash interrupted
    };
    Kind kind;
    std::string file;
    std::uint64_t segment;
    std::uint64_t offset;
    std::uint64_t bytes;
    std::string reason; // "checksum mismatch", "bad record length N", "torn record", ...
};

struct SpoolOptions {
    std::string dir;
    SpoolFsync fsync = SpoolFsync::kInterval;
    std::uint64_t segment_bytes = 64u << 20;
    // Bound on the bytes not yet in the database; 0: none.
    std::uint64_t max_bytes = 0;
    // Told once per damaged span per process, from the thread that found it
    // (open()'s, or the reader's).
    std::function<void(const SpoolDamage &)> on_damage;
    // fdatasync(2) unless set: lets a test make a sync slow or fail.
    std::function<int(int fd)> datasync;
};

// Why append() refused a batch.
enum class SpoolRefusal {
    kNone,
    kFull, // max_bytes would be passed
    kDisk  // the file system failed (no space, a file size limit, an I/O error), or a field is over 64 KiB
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

    // Appends the records with one write(2); a refused batch leaves nothing
    // behind. Without SpoolFsync::kAlways the batch is readable (and
    // counted) at once and `synced` is never called. With it, append() only
    // writes and asks the sync thread for a round: the batch becomes readable
    // and counted once a round has synced it (and the directory, for a new
    // segment), then `synced(true, "")` runs on the sync thread; if that
    // round fails, this batch and every one written after the last good round
    // are cut, as if refused, and `synced(false, error)` says why. Loop
    // thread only.
    bool append(const std::vector<SpoolRecord> &records, std::string &error, SpoolRefusal *why = nullptr,
                SpoolSynced synced = {});
    // Never blocks: the sync thread syncs all written so far (the segment,
    // segments left since the last round, the directory if a segment was
    // created), then calls `done` on its thread. Asks made during a round
    // are all served by the next one. SpoolFsync::kInterval calls this on a
    // timer, a drain at the end.
    void sync_soon(SpoolSynced done = {});
    // One such round, on the calling thread: blocks on the disk. The sync
    // thread's; tests call it to sync without waiting for that thread.
    bool sync(std::string &error);
    bool syncs_each_batch() const { return options_.fsync == SpoolFsync::kAlways; }
    // A reload: the bound applies from the next append on.
    void set_max_bytes(std::uint64_t max_bytes) { max_bytes_ = max_bytes; }

    // Reader side, for one other thread: up to `max_records` from `from`;
    // `next` is where the following read starts. Damaged spans on the way are
    // skipped and reported through on_damage. Returns false on an I/O error.
    bool read(SpoolPosition from, std::size_t max_records, std::vector<SpoolRecord> &out, SpoolPosition &next,
              std::string &error) const;
    // Everything before `upto` is in the database: persist the checkpoint
    // durably and delete segments that are wholly behind it.
    bool commit(SpoolPosition upto, std::uint64_t records, std::string &error);

    SpoolPosition checkpoint() const;
    SpoolPosition end() const;
    std::uint64_t pending_bytes() const;
    std::uint64_t pending_records() const { return pending_records_.load(); }

  private:
    // Where a scan of one segment stopped.
    struct ScanEnd {
        std::uint64_t next = 0; // just past the last record read or span skipped
        std::uint64_t tail = 0; // start of an unreadable rest of the range, or its limit if none
        std::string tail_reason;
    };

    // A batch written with SpoolFsync::kAlways and not yet synced.
    struct Unsynced {
        SpoolPosition end; // just past it
        std::uint64_t records;
        SpoolSynced synced;
    };

    explicit Spool(SpoolOptions options) : options_(std::move(options)), max_bytes_(options_.max_bytes) {}
    bool recover(std::string &error);
    int datasync(int fd) const;
    void sync_loop();
    // A round failed: every unsynced batch goes, as if refused. Returns their callbacks.
    std::vector<SpoolSynced> cut_unsynced(std::string &error);
    bool open_segment(std::uint64_t segment, std::string &error);
    bool sync_dir(std::string &error) const;
    // Cuts a batch that was written but refused; when that fails, later
    // batches go to a new segment so the bytes are never read.
    void undo_write(std::string &error);
    // Records of one segment in [from, limit), skipping (and reporting)
    // damage that a valid record follows.
    bool scan(std::uint64_t segment, std::uint64_t from, std::uint64_t limit, std::size_t max_records,
              std::vector<SpoolRecord> &out, ScanEnd &end, std::string &error) const;
    void report(SpoolDamage::Kind kind, std::uint64_t segment, std::uint64_t offset, std::uint64_t bytes,
                const std::string &reason) const;
    std::uint64_t pending_bytes_locked() const;
    std::string segment_path(std::uint64_t segment) const;

    SpoolOptions options_;
    std::atomic<std::uint64_t> max_bytes_;
    // Guards segments_, checkpoint_, end_, written_, durable_, unsynced_,
    // retired_, fd_, roll_next_, dir_dirty_ and reported_.
    mutable std::mutex mutex_;
    // Segment -> bytes of it written as whole records (and damage already on
    // disk at open). The reader stops at end_.
    std::map<std::uint64_t, std::uint64_t> segments_;
    SpoolPosition checkpoint_;
    SpoolPosition end_;     // what the reader may read: written_, or with kAlways durable_
    SpoolPosition written_; // where the next batch goes
    SpoolPosition durable_; // what the last good sync round covered
    std::deque<Unsynced> unsynced_;
    std::vector<int> retired_; // segments left behind, to be synced and closed by the next round
    mutable std::set<std::pair<std::uint64_t, std::uint64_t>> reported_; // damage told, by segment and offset
    bool recovering_ = false;
    int fd_ = -1;            // segment being appended to
    bool roll_next_ = false; // fd_'s end holds bytes of a refused batch: start a new segment
    bool dir_dirty_ = false; // a segment was created since the directory was last synced
    mutable std::atomic<std::uint64_t> pending_records_{0}; // the reader takes off what it finds damaged

    std::mutex round_mutex_; // one sync round at a time
    std::mutex sync_mutex_;  // guards the three below
    std::condition_variable sync_cv_;
    bool sync_wanted_ = false;
    bool sync_stop_ = false;
    std::vector<SpoolSynced> sync_done_;
    std::thread sync_thread_;
};

} // namespace levee
