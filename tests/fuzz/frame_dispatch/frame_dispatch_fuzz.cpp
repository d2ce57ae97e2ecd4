// libFuzzer target: the bytes a peer can put on leveed's socket after its
// hello, through what leveed runs on them: FrameServer's connection, the
// Dispatcher and the standalone services (in-memory presence, limits and
// registry; no Redis, no database). Also the decoder alone, frame after
// frame: a frame it accepts must encode again.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "../fuzz_loop.hpp"
#include "frame_codec.hpp"
#include "metrics.hpp"
#include "net/frame_server.hpp"
#include "service/dispatcher.hpp"

namespace levee::fuzz {
namespace {

// leveed as main() wires it when no Redis is configured; lives for the
// whole run, one connection per input.
struct Leveed {
    Leveed() {
        char tmpl[] = "/tmp/levee-fuzz-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) {
            std::abort();
        }
        dir = tmpl;
        path = dir + "/leveed.sock";
        FrameServerOptions o;
        o.socket_path = path;
        // No clock may end an input's connection: only its bytes do.
        o.limits.hello_timeout_ms = 3600 * 1000;
        o.limits.frame_timeout_ms = 3600 * 1000;
        server = std::make_unique<FrameServer>(base.get(), o, dispatcher, metrics);
        dispatcher.attach(*server);
        std::string error;
        if (!server->listen(error)) {
            std::abort();
        }
    }
    ~Leveed() {
        server.reset();
        ::rmdir(dir.c_str());
    }
    BasePtr base{event_base_new()};
    Metrics metrics;
    ProbeService probe{nullptr, nullptr};
    PresenceService presence{nullptr, nullptr, nullptr, nullptr, metrics};
    LimitService limit{nullptr, metrics};
    RegistryService registry{nullptr, metrics};
    Dispatcher dispatcher{metrics, probe, presence, limit, registry, /*standalone=*/true};
    std::string dir;
    std::string path;
    std::unique_ptr<FrameServer> server;
};

std::vector<std::uint8_t> hello_bytes() {
    Levee__Hello hello = LEVEE__HELLO__INIT;
    hello.protocol_version = LEVEE__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
    hello.client = const_cast<char *>("fuzz");
    hello.pid = 1;
    Levee__Frame f = LEVEE__FRAME__INIT;
    f.request_id = 1;
    f.body_case = LEVEE__FRAME__BODY_HELLO;
    f.hello = &hello;
    std::vector<std::uint8_t> out;
    encode_frame(f, out);
    return out;
}

void decode_alone(const std::uint8_t *data, std::size_t size) {
    std::size_t at = 0;
    while (at < size) {
        DecodeResult r = decode_frame(data + at, size - at, 64 * 1024);
        if (r.status != DecodeStatus::kFrame) {
            break;
        }
        std::vector<std::uint8_t> out;
        if (!encode_frame(*r.frame, out, 1u << 20)) {
            __builtin_trap();
        }
        at += r.consumed;
    }
}

// Sends everything (reading replies meanwhile, so leveed never sees a slow
// reader), half-closes, and reads until leveed closes. Every reply must be
// a frame.
void converse(Leveed &leveed, const std::vector<std::uint8_t> &bytes) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    leveed.path.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0) {
        std::abort();
    }
    std::vector<std::uint8_t> in;
    bool closed = false;
    auto read_some = [&] {
        std::uint8_t buf[4096];
        for (;;) {
            const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
            if (n > 0) {
                in.insert(in.end(), buf, buf + n);
                continue;
            }
            if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                closed = true;
            }
            return closed;
        }
    };
    std::size_t sent = 0;
    bool shut = false;
    pump(leveed.base.get(), 100000, [&] {
        if (sent < bytes.size()) {
            const ssize_t w = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
            if (w > 0) {
                sent += static_cast<std::size_t>(w);
            } else if (errno != EAGAIN && errno != EINTR) {
                sent = bytes.size(); // leveed closed early: nothing more to say
            }
        } else if (!shut) {
            ::shutdown(fd, SHUT_WR);
            shut = true;
        }
        return read_some();
    });
    ::close(fd);
    // Let the server reap the connection before the next input.
    pump(leveed.base.get(), 10, [&] { return leveed.server->connection_count() == 0; });
    std::size_t at = 0;
    while (at < in.size()) {
        DecodeResult r = decode_frame(in.data() + at, in.size() - at, kDefaultMaxFrameBytes);
        if (r.status != DecodeStatus::kFrame) {
            __builtin_trap(); // leveed wrote something that is not a frame
        }
        at += r.consumed;
    }
}

} // namespace
} // namespace levee::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    using namespace levee::fuzz;
    static Leveed leveed;
    static const std::vector<std::uint8_t> hello = hello_bytes();
    decode_alone(data, size);
    std::vector<std::uint8_t> bytes = hello;
    bytes.insert(bytes.end(), data, data + size);
    converse(leveed, bytes);
    return 0;
}
