// libFuzzer target: leveed opening a spool directory whose files hold
// anything (a crash mid-write, a bad disk, a hand-edited checkpoint). Open
// either refuses or recovers; what it recovered reads back without end, and
// a batch appended afterwards is what the reader finds next. Also the record
// decoder alone: a payload it accepts must encode to the same length.
//
// Input: [flags][n x u16 segment lengths][segments...][checkpoint...]; the
// low two flag bits give n, bit 2 writes the rest as the checkpoint file.
#include <dirent.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "spool.hpp"

namespace {

struct Dir {
    Dir() {
        char tmpl[] = "/tmp/levee-fuzz-spool-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) {
            std::abort();
        }
        path = tmpl;
    }
    ~Dir() {
        clear();
        ::rmdir(path.c_str());
    }
    void clear() const {
        DIR *d = ::opendir(path.c_str());
        while (dirent *e = d ? ::readdir(d) : nullptr) {
            const std::string name = e->d_name;
            if (name != "." && name != "..") {
                ::unlink((path + "/" + name).c_str());
            }
        }
        if (d) {
            ::closedir(d);
        }
    }
    void write(const std::string &name, const std::uint8_t *p, std::size_t n) const {
        FILE *f = std::fopen((path + "/" + name).c_str(), "wb");
        if (f == nullptr || std::fwrite(p, 1, n, f) != n || std::fclose(f) != 0) {
            std::abort();
        }
    }
    std::string path;
};

void decode_alone(const std::uint8_t *data, std::size_t size) {
    levee::SpoolRecord record;
    if (levee::decode_spool_payload(data, size, record) && levee::encode_spool_payload(record).size() != size) {
        __builtin_trap();
    }
}

// Reads from `from` until the reader stops moving; bounded by the bytes on
// disk, since each read that returns moves past at least one byte.
levee::SpoolPosition drain(const levee::Spool &spool, levee::SpoolPosition from, std::vector<levee::SpoolRecord> &all) {
    for (int i = 0; i < 10000; ++i) {
        std::vector<levee::SpoolRecord> out;
        levee::SpoolPosition next;
        std::string error;
        if (!spool.read(from, 1000, out, next, error)) {
            __builtin_trap(); // no I/O error can happen on a temporary directory
        }
        all.insert(all.end(), out.begin(), out.end());
        if (next == from) {
            return from;
        }
        from = next;
    }
    __builtin_trap(); // the reader went round in circles
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    static Dir dir;
    decode_alone(data, size);
    if (size < 1) {
        return 0;
    }
    const std::size_t segments = data[0] & 3;
    if (size < 1 + 2 * segments) {
        return 0;
    }
    dir.clear();
    std::size_t at = 1 + 2 * segments;
    for (std::size_t i = 0; i < segments; ++i) {
        const std::size_t want = std::size_t{data[1 + 2 * i]} | (std::size_t{data[2 + 2 * i]} << 8);
        const std::size_t len = std::min(want, size - at);
        char name[64];
        std::snprintf(name, sizeof(name), "spool-%016zu.log", i + 1);
        dir.write(name, data + at, len);
        at += len;
    }
    if (data[0] & 4) {
        dir.write("checkpoint", data + at, size - at);
    }

    levee::SpoolOptions options;
    options.dir = dir.path;
    options.fsync = levee::SpoolFsync::kNever;
    options.on_damage = [](const levee::SpoolDamage &) {};
    std::string error;
    std::unique_ptr<levee::Spool> spool = levee::Spool::open(options, error);
    if (!spool) {
        return 0;
    }
    std::vector<levee::SpoolRecord> recovered;
    drain(*spool, spool->checkpoint(), recovered);

    const levee::SpoolPosition end = spool->end();
    const levee::SpoolRecord mark{"fuzz-user", "fuzz-room", 42};
    if (!spool->append({mark}, error)) {
        return 0; // e.g. a checkpoint naming a segment past what a file name holds
    }
    std::vector<levee::SpoolRecord> after;
    drain(*spool, end, after);
    if (after.size() != 1 || after[0].user != mark.user || after[0].room != mark.room ||
        after[0].last_seen_ms != mark.last_seen_ms) {
        __builtin_trap(); // a batch accepted after recovery is lost or is not alone
    }
    return 0;
}
