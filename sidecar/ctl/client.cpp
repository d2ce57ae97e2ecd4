#include "client.hpp"
#include "levee_version.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace levee::ctl {

Client::~Client() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

bool Client::connect(const std::string &path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr.sun_path)) {
        error_ = "socket path too long";
        return false;
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0) {
        error_ = "connect(" + path + "): " + std::strerror(errno);
        return false;
    }
    timeval tv{30, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return true;
}

bool Client::send(const Levee__Frame &frame) {
    std::vector<std::uint8_t> out;
    if (!encode_frame(frame, out)) {
        error_ = "frame too large";
        return false;
    }
    std::size_t off = 0;
    while (off < out.size()) {
        const ssize_t n = ::send(fd_, out.data() + off, out.size() - off, MSG_NOSIGNAL);
        if (n <= 0) {
            error_ = std::string("send: ") + std::strerror(errno);
            return false;
        }
        off += static_cast<std::size_t>(n);
    }
    return true;
}

FramePtr Client::receive() {
    for (;;) {
        DecodeResult r = decode_frame(in_.data(), in_.size(), kDefaultMaxFrameBytes);
        if (r.status == DecodeStatus::kFrame) {
            in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(r.consumed));
            return std::move(r.frame);
        }
        if (r.status != DecodeStatus::kNeedMore) {
            error_ = std::string("bad frame from leveed: ") + decode_status_name(r.status);
            return nullptr;
        }
        std::uint8_t buf[65536];
        const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
        if (n <= 0) {
            error_ = n == 0 ? "leveed closed the connection" : std::string("recv: ") + std::strerror(errno);
            return nullptr;
        }
        in_.insert(in_.end(), buf, buf + n);
    }
}

int hello(Client &client, std::uint32_t version, const char *program, bool quiet) {
    const std::string name = std::string(program) + "/" LEVEE_VERSION;
    Levee__Frame frame = LEVEE__FRAME__INIT;
    Levee__Hello h = LEVEE__HELLO__INIT;
    h.protocol_version = version;
    h.client = const_cast<char *>(name.c_str());
    h.pid = static_cast<std::uint32_t>(::getpid());
    frame.request_id = 1;
    frame.body_case = LEVEE__FRAME__BODY_HELLO;
    frame.hello = &h;
    if (!client.send(frame)) {
        std::fprintf(stderr, "%s: %s\n", program, client.error().c_str());
        return 3;
    }
    FramePtr reply = client.receive();
    if (!reply || reply->body_case != LEVEE__FRAME__BODY_HELLO_REPLY) {
        std::fprintf(stderr, "%s: no hello reply: %s\n", program, client.error().c_str());
        return 3;
    }
    const Levee__HelloReply &r = *reply->hello_reply;
    if (!quiet || !r.accepted) {
        std::printf("accepted=%s server=%s protocol_version=%u standalone=%s reason=\"%s\"\n",
                    r.accepted ? "yes" : "no", r.server, r.protocol_version, r.standalone ? "yes" : "no", r.reason);
    }
    return r.accepted ? 0 : 1;
}

} // namespace levee::ctl
