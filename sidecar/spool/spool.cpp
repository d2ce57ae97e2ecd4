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
    return spool;
}

Spool::~Spool() {
    if (fd_ >= 0) {
        ::fsync(fd_);
        ::close(fd_);
    }
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
            segments_.push_back(seg);
        }
    }
    ::closedir(d);
    std::sort(segments_.begin(), segments_.end());

    std::ifstream cp(options_.dir + "/checkpoint");
    if (!(cp >> checkpoint_.segment >> checkpoint_.offset)) {
        checkpoint_ = {segments_.empty() ? 1 : segments_.front(), 0};
    }
    if (segments_.empty()) {
        segments_.push_back(checkpoint_.segment);
    }

    // Count what the database still lacks; find where whole records end in
    // the last segment: anything after that is a torn write, cut off below.
    std::uint64_t pending = 0;
    for (std::uint64_t seg : segments_) {
        if (seg < checkpoint_.segment) {
            continue;
        }
        std::uint64_t at = seg == checkpoint_.segment ? checkpoint_.offset : 0;
        struct stat st;
        const std::uint64_t size =
            ::stat(segment_path(seg).c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
        for (;;) {
            std::vector<SpoolRecord> batch;
            std::uint64_t next = at;
            std::string err;
            const bool ok = scan(seg, at, size, 4096, batch, next, err);
            pending += batch.size();
            if (!ok && seg != segments_.back()) {
                error = "spool segment " + segment_path(seg) + " is corrupt: " + err;
                return false;
            }
            if (!ok || next == at) {
                break;
            }
            at = next;
        }
        end_ = {seg, at};
    }
    pending_records_ = pending;
    const std::uint64_t last = segments_.back();
    if (end_.segment != last) {
        end_ = {last, 0};
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
    const int fd = ::open(segment_path(segment).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        error = errno_text("open " + segment_path(segment));
        return false;
    }
    if (fd_ >= 0) {
        ::fsync(fd_);
        ::close(fd_);
    }
    fd_ = fd;
    return true;
}

bool Spool::append(const std::vector<SpoolRecord> &records, std::string &error) {
    std::string buf;
    for (const auto &r : records) {
        if (r.user.size() > 0xffff || r.room.size() > 0xffff) {
            error = "record field longer than 65535 bytes";
            return false;
        }
        const std::string payload = encode_spool_payload(r);
        put_u32(buf, static_cast<std::uint32_t>(payload.size()));
        put_u32(buf, checksum(reinterpret_cast<const std::uint8_t *>(payload.data()), payload.size()));
        buf += payload;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (end_.offset > 0 && end_.offset + buf.size() > options_.segment_bytes) {
        const std::uint64_t next = end_.segment + 1;
        if (!open_segment(next, error)) {
            return false;
        }
        segments_.push_back(next);
        end_ = {next, 0};
    }
    if (!write_all(fd_, buf.data(), buf.size())) {
        error = errno_text("write " + segment_path(end_.segment));
        // whatever part was written is a torn tail: cut it so the next append starts clean
        if (::ftruncate(fd_, static_cast<off_t>(end_.offset)) != 0) {
            error += "; ftruncate failed too";
        }
        return false;
    }
    if (options_.fsync == SpoolFsync::kAlways && ::fdatasync(fd_) != 0) {
        error = errno_text("fdatasync " + segment_path(end_.segment));
        return false;
    }
    end_.offset += buf.size();
    pending_records_ += records.size();
    return true;
}

bool Spool::sync(std::string &error) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (fd_ >= 0 && ::fdatasync(fd_) != 0) {
        error = errno_text("fdatasync");
        return false;
    }
    return true;
}

bool Spool::scan(std::uint64_t segment, std::uint64_t from, std::uint64_t limit, std::size_t max_records,
                 std::vector<SpoolRecord> &out, std::uint64_t &next, std::string &error) const {
    next = from;
    if (from >= limit) {
        return true;
    }
    const int fd = ::open(segment_path(segment).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        error = errno_text("open " + segment_path(segment));
        return false;
    }
    std::vector<std::uint8_t> buf(static_cast<std::size_t>(std::min<std::uint64_t>(limit - from, 4u << 20)));
    const ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(from));
    ::close(fd);
    if (n < 0) {
        error = errno_text("pread " + segment_path(segment));
        return false;
    }
    const std::size_t got = static_cast<std::size_t>(n);
    std::size_t at = 0;
    while (out.size() < max_records && got - at >= kHeader) {
        const std::uint32_t len = get_u32(buf.data() + at);
        const std::uint32_t sum = get_u32(buf.data() + at + 4);
        if (len > kMaxPayload) {
            error = "bad record length " + std::to_string(len) + " at offset " + std::to_string(from + at);
            return false;
        }
        if (got - at - kHeader < len) {
            break;
        }
        SpoolRecord r;
        if (checksum(buf.data() + at + kHeader, len) != sum ||
            !decode_spool_payload(buf.data() + at + kHeader, len, r)) {
            error = "checksum mismatch at offset " + std::to_string(from + at);
            return false;
        }
        out.push_back(std::move(r));
        at += kHeader + len;
    }
    next = from + at;
    // Stopped short of the limit with the whole rest in hand: a torn record.
    if (out.size() < max_records && next < limit && from + got == limit) {
        error = "torn record at offset " + std::to_string(next);
        return false;
    }
    return true;
}

bool Spool::read(SpoolPosition from, std::size_t max_records, std::vector<SpoolRecord> &out, SpoolPosition &next,
                 std::string &error) const {
    SpoolPosition end;
    std::vector<std::uint64_t> segments;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        end = end_;
        segments = segments_;
    }
    next = from;
    while (out.size() < max_records) {
        std::uint64_t limit;
        if (next.segment == end.segment) {
            limit = end.offset; // only what append() completed
        } else {
            struct stat st;
            limit = ::stat(segment_path(next.segment).c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
        }
        std::uint64_t after = next.offset;
        if (!scan(next.segment, next.offset, limit, max_records, out, after, error)) {
            return false;
        }
        next.offset = after;
        if (next.offset < limit || next.segment >= end.segment) {
            return true; // a full batch, or everything written so far
        }
        const auto it = std::upper_bound(segments.begin(), segments.end(), next.segment);
        if (it == segments.end()) {
            return true;
        }
        next = {*it, 0};
    }
    return true;
}

bool Spool::commit(SpoolPosition upto, std::uint64_t records, std::string &error) {
    std::vector<std::uint64_t> drop;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        checkpoint_ = upto;
        while (segments_.size() > 1 && segments_.front() < upto.segment) {
            drop.push_back(segments_.front());
            segments_.erase(segments_.begin());
        }
    }
    const std::string tmp = options_.dir + "/checkpoint.tmp";
    {
        std::ofstream f(tmp, std::ios::trunc);
        f << upto.segment << ' ' << upto.offset << '\n';
        if (!f) {
            error = "cannot write " + tmp;
            return false;
        }
    }
    if (::rename(tmp.c_str(), (options_.dir + "/checkpoint").c_str()) != 0) {
        error = errno_text("rename " + tmp);
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
    std::uint64_t total = 0;
    for (std::uint64_t seg : segments_) {
        if (seg < checkpoint_.segment) {
            continue;
        }
        struct stat st;
        const std::uint64_t size =
            seg == end_.segment
                ? end_.offset
                : (::stat(segment_path(seg).c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0);
        total += size - (seg == checkpoint_.segment ? std::min(size, checkpoint_.offset) : 0);
    }
    return total;
}

} // namespace levee
