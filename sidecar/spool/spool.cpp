#include "spool.hpp"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

namespace levee {
namespace {

constexpr std::size_t kHeader = 8;
constexpr std::uint32_t kMaxPayload = 1u << 16;
// What one pread brings in: always more than the largest record, so a record
// that does not fit in a window runs past the end of the data.
constexpr std::size_t kWindow = 1u << 20;
static_assert(kWindow >= kHeader + kMaxPayload, "a window holds any record");

void put_u32(std::string &out, std::uint32_t v) {
    for (int i = 3; i >= 0; i--) {
        out.push_back(static_cast<char>((v >> (i * 8)) & 0xff));
    }
}

std::uint32_t get_u32(const std::uint8_t *p) {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

std::uint32_t checksum(const std::uint8_t *p, std::size_t n) {
    return static_cast<std::uint32_t>(crc32(0L, p, static_cast<uInt>(n)));
}

std::string errno_text(const std::string &what) {
    return what + ": " + std::strerror(errno);
}

bool write_all(int fd, const char *p, std::size_t n) {
    while (n > 0) {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

enum class Check { kOk, kShort, kBad };

// The record at `p`, of which `avail` bytes are in hand.
Check check_record(const std::uint8_t *p, std::size_t avail, SpoolRecord &out, std::size_t &size, std::string &why) {
    if (avail < kHeader) {
        why = "torn record";
        return Check::kShort;
    }
    const std::uint32_t len = get_u32(p);
    if (len > kMaxPayload) {
        why = "bad record length " + std::to_string(len);
        return Check::kBad;
    }
    if (avail - kHeader < len) {
        why = "torn record";
        return Check::kShort;
    }
    if (checksum(p + kHeader, len) != get_u32(p + 4)) {
        why = "checksum mismatch";
        return Check::kBad;
    }
    if (!decode_spool_payload(p + kHeader, len, out)) {
        why = "undecodable record";
        return Check::kBad;
    }
    size = kHeader + len;
    return Check::kOk;
}

// Whether a whole record could start at `p`: the lengths inside the payload
// add up to the length in the header. Cheap, so a resync tries the checksum
// only where this holds.
bool plausible(const std::uint8_t *p, std::size_t avail) {
    if (avail < kHeader + 12) {
        return false;
    }
    const std::uint32_t len = get_u32(p);
    if (len > kMaxPayload || avail - kHeader < len || len < 12) {
        return false;
    }
    const std::uint8_t *q = p + kHeader;
    const std::size_t user = (std::size_t{q[0]} << 8) | q[1];
    if (2 + user + 2 > len) {
        return false;
    }
    const std::size_t room = (std::size_t{q[2 + user]} << 8) | q[3 + user];
    return 2 + user + 2 + room + 8 == len;
}

// One segment file read through a sliding window.
class SegmentFile {
  public:
    explicit SegmentFile(std::string path) : path_(std::move(path)) {}
    ~SegmentFile() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    SegmentFile(const SegmentFile &) = delete;
    SegmentFile &operator=(const SegmentFile &) = delete;

    // The bytes from `at` up to `limit`, at least a whole record's worth
    // when there are that many: `avail` says how many are in hand.
    const std::uint8_t *view(std::uint64_t at, std::uint64_t limit, std::size_t &avail, std::string &error) {
        const std::uint64_t want_end = std::min<std::uint64_t>(limit, at + kHeader + kMaxPayload);
        if (at < start_ || at > start_ + got_ || (start_ + got_ < want_end && !short_)) {
            if (fd_ < 0 && (fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC)) < 0) {
                error = errno_text("open " + path_);
                return nullptr;
            }
            buf_.resize(static_cast<std::size_t>(std::min<std::uint64_t>(limit - at, kWindow)));
            const ssize_t n = ::pread(fd_, buf_.data(), buf_.size(), static_cast<off_t>(at));
            if (n < 0) {
                error = errno_text("pread " + path_);
                return nullptr;
            }
            start_ = at;
            got_ = static_cast<std::size_t>(n);
            short_ = got_ < buf_.size(); // the file ends before `limit`
        }
        avail = static_cast<std::size_t>(std::min<std::uint64_t>(start_ + got_, limit) - at);
        return buf_.data() + (at - start_);
    }

  private:
    std::string path_;
    int fd_ = -1;
    std::vector<std::uint8_t> buf_;
    std::uint64_t start_ = 0;
    std::size_t got_ = 0;
    bool short_ = false;
};

// The first offset after the damaged record at `bad` where a valid record
// starts, before `limit`. The header's own length is tried first: when only
// the payload is damaged that is the next record, and bytes inside the
// damaged one (a user name can hold anything) are never taken for a record.
enum class Resync { kFound, kNone, kError };

Resync find_next_record(SegmentFile &file, std::uint64_t bad, std::uint64_t limit, std::uint64_t &found,
                        std::string &error) {
    SpoolRecord r;
    std::size_t size;
    std::string why;
    std::size_t avail;
    const std::uint8_t *p = file.view(bad, limit, avail, error);
    if (p == nullptr) {
        return Resync::kError;
    }
    if (avail >= kHeader && get_u32(p) <= kMaxPayload) {
        const std::uint64_t jump = bad + kHeader + get_u32(p);
        if (jump < limit) {
            const std::uint8_t *q = file.view(jump, limit, avail, error);
            if (q == nullptr) {
                return Resync::kError;
            }
            if (check_record(q, avail, r, size, why) == Check::kOk) {
                found = jump;
                return Resync::kFound;
            }
        }
    }
    for (std::uint64_t at = bad + 1; at + kHeader + 12 <= limit; at++) {
        const std::uint8_t *q = file.view(at, limit, avail, error);
        if (q == nullptr) {
            return Resync::kError;
        }
        if (avail < kHeader + 12) {
            return Resync::kNone; // the file ends here (shorter than `limit` if it was cut behind our back)
        }
        if (plausible(q, avail) && check_record(q, avail, r, size, why) == Check::kOk) {
            found = at;
            return Resync::kFound;
        }
    }
    return Resync::kNone;
}

std::uint64_t file_size(const std::string &path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

} // namespace

std::string encode_spool_payload(const SpoolRecord &r) {
    std::string p;
    p.reserve(12 + r.user.size() + r.room.size());
    p.push_back(static_cast<char>(r.user.size() >> 8));
    p.push_back(static_cast<char>(r.user.size() & 0xff));
    p += r.user;
    p.push_back(static_cast<char>(r.room.size() >> 8));
    p.push_back(static_cast<char>(r.room.size() & 0xff));
    p += r.room;
    const auto v = static_cast<std::uint64_t>(r.last_seen_ms);
    for (int i = 7; i >= 0; i--) {
        p.push_back(static_cast<char>((v >> (i * 8)) & 0xff));
    }
    return p;
}

bool decode_spool_payload(const std::uint8_t *data, std::size_t len, SpoolRecord &out) {
    std::size_t at = 0;
    auto str = [&](std::string &s) {
        if (len - at < 2) {
            return false;
        }
        const std::size_t n = (std::size_t{data[at]} << 8) | data[at + 1];
        at += 2;
        if (len - at < n) {
            return false;
        }
        s.assign(reinterpret_cast<const char *>(data + at), n);
        at += n;
        return true;
    };
    if (!str(out.user) || !str(out.room) || len - at != 8) {
        return false;
    }
    std::uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | data[at + i];
    }
    out.last_seen_ms = static_cast<std::int64_t>(v);
    return true;
}

std::string Spool::segment_path(std::uint64_t segment) const {
    char name[64];
    std::snprintf(name, sizeof(name), "/spool-%016" PRIu64 ".log", segment);
    return options_.dir + name;
}

std::unique_ptr<Spool> Spool::open(const SpoolOptions &options, std::string &error) {
    if (::mkdir(options.dir.c_str(), 0750) != 0 && errno != EEXIST) {
        error = errno_text("mkdir " + options.dir);
        return nullptr;
    }
    std::unique_ptr<Spool> spool(new Spool(options));
    if (!spool->recover(error)) {
        return nullptr;
    }
    spool->sync_thread_ = std::thread([s = spool.get()] { s->sync_loop(); });
    return spool;
}

Spool::~Spool() {
    if (sync_thread_.joinable()) {
        {
            std::lock_guard<std::mutex> lock(sync_mutex_);
            sync_stop_ = true;
        }
        sync_cv_.notify_one();
        sync_thread_.join(); // after the round asked for, if any
    }
    // Batches still unsynced are made durable here, but no one waits for them any more.
    for (int fd : retired_) {
        ::fsync(fd);
        ::close(fd);
    }
    if (fd_ >= 0) {
        ::fsync(fd_);
        ::close(fd_);
    }
}

int Spool::datasync(int fd) const {
    return options_.datasync ? options_.datasync(fd) : ::fdatasync(fd);
}

bool Spool::recover(std::string &error) {
    DIR *d = ::opendir(options_.dir.c_str());
    if (d == nullptr) {
        error = errno_text("opendir " + options_.dir);
        return false;
    }
    while (dirent *e = ::readdir(d)) {
        std::uint64_t seg;
        if (std::sscanf(e->d_name, "spool-%" SCNu64 ".log", &seg) == 1) {
            segments_[seg] = file_size(segment_path(seg));
        }
    }
    ::closedir(d);

    std::ifstream cp(options_.dir + "/checkpoint");
    if (!(cp >> checkpoint_.segment >> checkpoint_.offset)) {
        checkpoint_ = {segments_.empty() ? 1 : segments_.begin()->first, 0};
    }
    // Appends must land where the reader looks: at or after the checkpoint.
    if (segments_.empty() || segments_.rbegin()->first < checkpoint_.segment) {
        segments_[checkpoint_.segment] = 0;
    }
    const std::uint64_t last = segments_.rbegin()->first;

    // Count what the database still lacks, report damage, and find where
    // whole records end in the last segment.
    recovering_ = true;
    std::uint64_t pending = 0;
    std::uint64_t last_end = 0;
    for (auto &[seg, size] : segments_) {
        if (seg < checkpoint_.segment) {
            continue;
        }
        if (seg == checkpoint_.segment && checkpoint_.offset > size) {
            checkpoint_.offset = size; // the records it pointed into are gone with the bytes
        }
        std::uint64_t at = seg == checkpoint_.segment ? checkpoint_.offset : 0;
        ScanEnd s;
        s.tail = size;
        while (at < size) {
            std::vector<SpoolRecord> batch;
            if (!scan(seg, at, size, 4096, batch, s, error)) {
                return false;
            }
            pending += batch.size();
            at = s.next;
            if (s.tail < size) {
                break;
            }
        }
        if (s.tail < size) {
            if (seg == last) {
                report(SpoolDamage::Kind::kTornTail, seg, s.tail, size - s.tail, s.tail_reason);
                size = s.tail;
            } else {
                report(SpoolDamage::Kind::kSkipped, seg, s.tail, size - s.tail, s.tail_reason);
            }
        }
        if (seg == last) {
            last_end = size;
        }
    }
    recovering_ = false;
    pending_records_ = pending;
    end_ = {last, last_end};
    written_ = end_;
    durable_ = end_;
    if (checkpoint_.segment == last && checkpoint_.offset > last_end) {
        checkpoint_.offset = last_end;
    }
    if (!open_segment(last, error)) {
        return false;
    }
    if (::ftruncate(fd_, static_cast<off_t>(end_.offset)) != 0) {
        error = errno_text("ftruncate " + segment_path(last));
        return false;
    }
    return true;
}

bool Spool::open_segment(std::uint64_t segment, std::string &error) {
    const std::string path = segment_path(segment);
    const bool exists = ::access(path.c_str(), F_OK) == 0;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        error = errno_text("open " + path);
        return false;
    }
    if (fd_ >= 0 && options_.fsync == SpoolFsync::kNever) {
        ::close(fd_);
    } else if (fd_ >= 0) {
        retired_.push_back(fd_); // its last bytes are synced by the next round, off this thread
    }
    fd_ = fd;
    dir_dirty_ = dir_dirty_ || !exists;
    return true;
}

bool Spool::sync_dir(std::string &error) const {
    const int fd = ::open(options_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        error = errno_text("open " + options_.dir);
        return false;
    }
    const bool ok = ::fsync(fd) == 0;
    if (!ok) {
        error = errno_text("fsync " + options_.dir);
    }
    ::close(fd);
    return ok;
}

void Spool::undo_write(std::string &error) {
    if (::ftruncate(fd_, static_cast<off_t>(written_.offset)) != 0) {
        error += "; " + errno_text("ftruncate");
        roll_next_ = true;
    }
}

bool Spool::append(const std::vector<SpoolRecord> &records, std::string &error, SpoolRefusal *why, SpoolSynced synced) {
    auto refuse = [why](SpoolRefusal r) {
        if (why != nullptr) {
            *why = r;
        }
        return false;
    };
    std::string buf;
    for (const auto &r : records) {
        if (r.user.size() > 0xffff || r.room.size() > 0xffff) {
            error = "record field longer than 65535 bytes";
            return refuse(SpoolRefusal::kDisk);
        }
        const std::string payload = encode_spool_payload(r);
        put_u32(buf, static_cast<std::uint32_t>(payload.size()));
        put_u32(buf, checksum(reinterpret_cast<const std::uint8_t *>(payload.data()), payload.size()));
        buf += payload;
    }
    {
        std::lock_guard<std::mutex> lock(mutex_);
        const std::uint64_t max = max_bytes_.load();
        if (max > 0 && pending_bytes_locked() + buf.size() > max) {
            error = "spool full: " + std::to_string(pending_bytes_locked()) + " bytes not yet in the database, " +
                    std::to_string(max) + " at most";
            return refuse(SpoolRefusal::kFull);
        }
        if (roll_next_ || (written_.offset > 0 && written_.offset + buf.size() > options_.segment_bytes)) {
            const std::uint64_t next = written_.segment + 1;
            if (!open_segment(next, error)) {
                return refuse(SpoolRefusal::kDisk);
            }
            segments_[next] = 0;
            written_ = {next, 0};
            roll_next_ = false;
        }
        if (!write_all(fd_, buf.data(), buf.size())) {
            error = errno_text("write " + segment_path(written_.segment));
            undo_write(error); // a part may be there: a torn tail
            return refuse(SpoolRefusal::kDisk);
        }
        written_.offset += buf.size();
        segments_[written_.segment] = written_.offset;
        if (options_.fsync != SpoolFsync::kAlways) {
            end_ = written_;
            pending_records_ += records.size();
            return true;
        }
        unsynced_.push_back({written_, records.size(), std::move(synced)});
    }
    sync_soon();
    return true;
}

void Spool::sync_soon(SpoolSynced done) {
    {
        std::lock_guard<std::mutex> lock(sync_mutex_);
        sync_wanted_ = true;
        if (done) {
            sync_done_.push_back(std::move(done));
        }
    }
    sync_cv_.notify_one();
}

void Spool::sync_loop() {
    std::unique_lock<std::mutex> lock(sync_mutex_);
    for (;;) {
        sync_cv_.wait(lock, [this] { return sync_wanted_ || sync_stop_; });
        if (!sync_wanted_) {
            return;
        }
        sync_wanted_ = false;
        std::vector<SpoolSynced> done;
        done.swap(sync_done_);
        lock.unlock();
        std::string error;
        const bool ok = sync(error);
        for (auto &fn : done) {
            fn(ok, error);
        }
        lock.lock();
    }
}

bool Spool::sync(std::string &error) {
    std::lock_guard<std::mutex> round(round_mutex_);
    int fd = -1;
    SpoolPosition target;
    std::vector<int> retired;
    bool dir = false;
    bool ok = true;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        // A copy of the descriptor: the loop may leave the segment meanwhile.
        if (fd_ >= 0 && (fd = ::dup(fd_)) < 0) {
            error = errno_text("dup");
            ok = false; // a failed round: the batches waiting for it must hear so
        }
        target = written_;
        retired.swap(retired_);
        dir = dir_dirty_ && options_.fsync != SpoolFsync::kNever;
        dir_dirty_ = false;
    }
    for (int r : retired) {
        if (ok && datasync(r) != 0) {
            error = errno_text("fdatasync");
            ok = false;
        }
        ::close(r);
    }
    if (fd >= 0) {
        if (ok && datasync(fd) != 0) {
            error = errno_text("fdatasync " + segment_path(target.segment));
            ok = false;
        }
        ::close(fd);
    }
    // The segment's directory entry is as much a part of its batches as their bytes.
    if (ok && dir && !sync_dir(error)) {
        ok = false;
    }
    std::vector<SpoolSynced> told;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (ok) {
            durable_ = target;
            if (options_.fsync == SpoolFsync::kAlways) {
                end_ = target;
                while (!unsynced_.empty() && !(target < unsynced_.front().end)) {
                    pending_records_ += unsynced_.front().records;
                    told.push_back(std::move(unsynced_.front().synced));
                    unsynced_.pop_front();
                }
            }
        } else {
            dir_dirty_ = dir_dirty_ || dir;
            if (options_.fsync == SpoolFsync::kAlways) {
                told = cut_unsynced(error);
            }
        }
    }
    for (auto &fn : told) {
        if (fn) {
            fn(ok, error);
        }
    }
    return ok;
}

std::vector<SpoolSynced> Spool::cut_unsynced(std::string &error) {
    // Refused, so gone: left there, the next batch would follow bytes no one
    // counted, and a restart would send MongoDB records counted as dropped.
    // Segments begun since the last good round hold nothing else.
    std::vector<SpoolSynced> told;
    for (auto &u : unsynced_) {
        told.push_back(std::move(u.synced));
    }
    unsynced_.clear();
    while (segments_.rbegin()->first > durable_.segment) {
        ::unlink(segment_path(segments_.rbegin()->first).c_str());
        segments_.erase(std::prev(segments_.end()));
    }
    const bool cut = ::truncate(segment_path(durable_.segment).c_str(), static_cast<off_t>(durable_.offset)) == 0;
    if (!cut) {
        error += "; " + errno_text("truncate");
    }
    segments_[durable_.segment] = durable_.offset;
    // Appending goes on in a fresh segment when fd_ is one just unlinked, or
    // ends in bytes the truncate could not cut.
    roll_next_ = roll_next_ || !cut || written_.segment != durable_.segment;
    written_ = durable_;
    return told;
}

void Spool::report(SpoolDamage::Kind kind, std::uint64_t segment, std::uint64_t offset, std::uint64_t bytes,
                   const std::string &reason) const {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!reported_.insert({segment, offset}).second) {
            return;
        }
    }
    if (kind == SpoolDamage::Kind::kSkipped && !recovering_) {
        // Counted when appended, never to be read: one at least.
        std::uint64_t n = pending_records_.load();
        while (n > 0 && !pending_records_.compare_exchange_weak(n, n - 1)) {
        }
    }
    if (options_.on_damage) {
        options_.on_damage({kind, segment_path(segment), segment, offset, bytes, reason});
    }
}

bool Spool::scan(std::uint64_t segment, std::uint64_t from, std::uint64_t limit, std::size_t max_records,
                 std::vector<SpoolRecord> &out, ScanEnd &end, std::string &error) const {
    end = ScanEnd{from, limit, ""};
    SegmentFile file(segment_path(segment));
    std::uint64_t at = from;
    while (at < limit && out.size() < max_records) {
        std::size_t avail;
        const std::uint8_t *p = file.view(at, limit, avail, error);
        if (p == nullptr) {
            return false;
        }
        SpoolRecord r;
        std::size_t size;
        std::string why;
        if (check_record(p, avail, r, size, why) == Check::kOk) {
            out.push_back(std::move(r));
            at += size;
            continue;
        }
        std::uint64_t resume = limit;
        const Resync found = find_next_record(file, at, limit, resume, error);
        if (found == Resync::kError) {
            return false;
        }
        if (found == Resync::kNone) {
            end.tail = at;
            end.tail_reason = why + " at offset " + std::to_string(at);
            break;
        }
        report(SpoolDamage::Kind::kSkipped, segment, at, resume - at, why + " at offset " + std::to_string(at));
        at = resume;
    }
    end.next = at;
    return true;
}

bool Spool::read(SpoolPosition from, std::size_t max_records, std::vector<SpoolRecord> &out, SpoolPosition &next,
                 std::string &error) const {
    SpoolPosition end;
    std::map<std::uint64_t, std::uint64_t> segments;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        end = end_;
        segments = segments_;
    }
    next = from;
    auto it = segments.lower_bound(next.segment);
    if (it == segments.end()) {
        return true;
    }
    if (it->first != next.segment) {
        next = {it->first, 0}; // its segment is gone: start at the next one there is
    }
    while (out.size() < max_records) {
        const std::uint64_t limit = next.segment == end.segment ? end.offset : it->second;
        ScanEnd s;
        if (!scan(next.segment, next.offset, limit, max_records, out, s, error)) {
            return false;
        }
        next.offset = s.next;
        if (s.tail < limit) {
            // Within what was written whole, or on disk at open: nothing to wait for.
            report(SpoolDamage::Kind::kSkipped, next.segment, s.tail, limit - s.tail, s.tail_reason);
            next.offset = limit;
        }
        if (next.offset < limit || next.segment >= end.segment) {
            return true; // a full batch, or everything written so far
        }
        if (++it == segments.end()) {
            return true;
        }
        next = {it->first, 0};
    }
    return true;
}

bool Spool::commit(SpoolPosition upto, std::uint64_t records, std::string &error) {
    std::vector<std::uint64_t> drop;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        checkpoint_ = upto;
        while (segments_.size() > 1 && segments_.begin()->first < upto.segment) {
            drop.push_back(segments_.begin()->first);
            segments_.erase(segments_.begin());
        }
        reported_.erase(reported_.begin(), reported_.lower_bound({segments_.begin()->first, 0}));
    }
    // Durable before a segment behind it goes: a checkpoint lost to a power
    // cut would otherwise point at a deleted segment, or be empty.
    const bool durable = options_.fsync != SpoolFsync::kNever;
    const std::string tmp = options_.dir + "/checkpoint.tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        error = errno_text("open " + tmp);
        return false;
    }
    const std::string text = std::to_string(upto.segment) + ' ' + std::to_string(upto.offset) + '\n';
    if (!write_all(fd, text.data(), text.size()) || (durable && ::fsync(fd) != 0)) {
        error = errno_text("write " + tmp);
        ::close(fd);
        return false;
    }
    ::close(fd);
    if (::rename(tmp.c_str(), (options_.dir + "/checkpoint").c_str()) != 0) {
        error = errno_text("rename " + tmp);
        return false;
    }
    if (durable && !sync_dir(error)) {
        return false;
    }
    for (std::uint64_t seg : drop) {
        ::unlink(segment_path(seg).c_str());
    }
    pending_records_ -= std::min<std::uint64_t>(records, pending_records_.load());
    return true;
}

SpoolPosition Spool::checkpoint() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return checkpoint_;
}

SpoolPosition Spool::end() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return end_;
}

std::uint64_t Spool::pending_bytes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return pending_bytes_locked();
}

std::uint64_t Spool::pending_bytes_locked() const {
    std::uint64_t total = 0;
    for (const auto &[seg, size] : segments_) {
        if (seg >= checkpoint_.segment) {
            total += size - (seg == checkpoint_.segment ? std::min(size, checkpoint_.offset) : 0);
        }
    }
    return total;
}

} // namespace levee
