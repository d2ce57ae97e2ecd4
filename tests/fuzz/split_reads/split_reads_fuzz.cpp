// libFuzzer target: a byte stream that reaches leveed in pieces cut at
// arbitrary points. FrameConnection must hand its sink the frames, and close
// for the reason, that decoding the whole stream at once gives.
//
// Input: [n][n x u16 piece lengths][stream]; n is taken modulo 16.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../fuzz_loop.hpp"
#include "frame_codec.hpp"
#include "net/frame_connection.hpp"

namespace levee::fuzz {
namespace {

// Small, so that the fuzzer reaches "oversize" too.
constexpr std::uint32_t kMaxFrame = 4096;

struct Recorder : FrameSink {
    void on_frame(FrameConnection &, FramePtr frame) override {
        std::vector<std::uint8_t> bytes;
        encode_frame(*frame, bytes, kMaxFrame);
        frames.push_back(std::move(bytes));
    }
    void on_closed(FrameConnection &, const char *why) override { reason = why; }
    std::vector<std::vector<std::uint8_t>> frames;
    std::string reason;
};

// What one read of the whole stream gives: its frames and why it ends.
void expect(const std::uint8_t *p, std::size_t n, Recorder &out) {
    std::size_t at = 0;
    while (at < n) {
        DecodeResult r = decode_frame(p + at, n - at, kMaxFrame);
        if (r.status == DecodeStatus::kNeedMore) {
            out.reason = "truncated";
            return;
        }
        if (r.status != DecodeStatus::kFrame) {
            out.reason = decode_status_name(r.status);
            return;
        }
        std::vector<std::uint8_t> bytes;
        encode_frame(*r.frame, bytes, kMaxFrame);
        out.frames.push_back(std::move(bytes));
        at += r.consumed;
    }
    out.reason = "eof";
}

} // namespace
} // namespace levee::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    using namespace levee;
    using namespace levee::fuzz;
    static BasePtr base{event_base_new()};
    if (size < 1) {
        return 0;
    }
    const std::size_t pieces = data[0] % 16;
    if (size < 1 + 2 * pieces) {
        return 0;
    }
    std::vector<std::size_t> lengths;
    for (std::size_t i = 0; i < pieces; ++i) {
        lengths.push_back(std::size_t{data[1 + 2 * i]} | (std::size_t{data[2 + 2 * i]} << 8));
    }
    const std::uint8_t *stream = data + 1 + 2 * pieces;
    const std::size_t n = size - 1 - 2 * pieces;

    Recorder want;
    expect(stream, n, want);

    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
        std::abort();
    }
    Recorder got;
    ConnectionLimits limits;
    limits.max_frame_bytes = kMaxFrame;
    limits.hello_timeout_ms = 3600 * 1000;
    limits.frame_timeout_ms = 3600 * 1000;
    {
        FrameConnection conn(base.get(), fds[0], 1, limits, got);
        if (!conn.start()) {
            std::abort();
        }
        std::size_t at = 0;
        for (std::size_t i = 0; i <= pieces && got.reason.empty(); ++i) {
            // the last piece is the rest
            const std::size_t len = i < pieces ? std::min(lengths[i], n - at) : n - at;
            std::size_t done = 0;
            while (done < len && got.reason.empty()) {
                const ssize_t w = ::send(fds[1], stream + at + done, len - done, MSG_NOSIGNAL);
                if (w > 0) {
                    done += static_cast<std::size_t>(w);
                }
                // each piece is one read for leveed, or more when the socket is full
                event_base_loop(base.get(), EVLOOP_ONCE | EVLOOP_NONBLOCK);
            }
            at += len;
        }
        ::shutdown(fds[1], SHUT_WR);
        pump(base.get(), 1000, [&] { return !got.reason.empty(); });
    } // frees the bufferevent, which closes fds[0]
    ::close(fds[1]);

    if (got.reason != want.reason || got.frames != want.frames) {
        __builtin_trap();
    }
    return 0;
}
