// leveed's socket server and dispatcher as leveed wires them, standalone (no
// Redis, no database), on a real Unix socket in a temporary directory and a
// libevent loop that the test pumps; and a client whose reads never block
// (the loop runs on the test's own thread).
#pragma once

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <event2/event.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "frame_codec.hpp"
#include "metrics.hpp"
#include "net/frame_server.hpp"
#include "node_connection.hpp"
#include "service/dispatcher.hpp"

namespace levee::testing {

struct BaseFree {
    void operator()(event_base *b) const { event_base_free(b); }
};
using BasePtr = std::unique_ptr<event_base, BaseFree>;

// Runs the loop until `done()`; the deadline only stops a hung test.
template <typename Pred> bool run_until(event_base *base, Pred done) {
    const auto deadline = redis::now_ms() + 5000;
    while (!done() && redis::now_ms() < deadline) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    return done();
}

// A presence query for one user: standalone leveed answers it at once.
struct UserQuery {
    explicit UserQuery(std::uint64_t id) {
        q.n_users = 1;
        q.users = users;
        f.request_id = id;
        f.body_case = LEVEE__FRAME__BODY_PRESENCE_QUERY;
        f.presence_query = &q;
    }
    UserQuery(const UserQuery &) = delete;
    UserQuery &operator=(const UserQuery &) = delete;
    char user[6] = "alice";
    char *users[1] = {user};
    Levee__PresenceQuery q = LEVEE__PRESENCE_QUERY__INIT;
    Levee__Frame f = LEVEE__FRAME__INIT;
};

class Client {
  public:
    explicit Client(const std::string &path) {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        path.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
        connected_ = ::connect(fd_, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) == 0;
    }
    ~Client() { ::close(fd_); }
    Client(const Client &) = delete;
    Client &operator=(const Client &) = delete;

    bool connected() const { return connected_; }

    void send_bytes(const std::uint8_t *p, std::size_t n) {
        while (n > 0) {
            const ssize_t w = ::send(fd_, p, n, MSG_NOSIGNAL);
            if (w <= 0) {
                ADD_FAILURE() << "send failed";
                return;
            }
            p += w;
            n -= static_cast<std::size_t>(w);
        }
    }
    void send_bytes(const std::vector<std::uint8_t> &b) { send_bytes(b.data(), b.size()); }
    void send(const Levee__Frame &frame) {
        std::vector<std::uint8_t> out;
        ASSERT_TRUE(encode_frame(frame, out));
        send_bytes(out);
    }
    void send_hello(std::uint32_t version = LEVEE__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT) {
        send(hello_frame(version));
    }
    // Declares the registries of the tests' batches (TTL 1 s and 60 s).
    static Levee__Frame hello_frame(std::uint32_t version) {
        static Levee__Hello hello;
        static std::uint32_t registry_ttls[] = {1000, 60000};
        levee__hello__init(&hello);
        hello.protocol_version = version;
        hello.client = const_cast<char *>("unit-test");
        hello.pid = 1;
        hello.n_registry_ttl_ms = 2;
        hello.registry_ttl_ms = registry_ttls;
        Levee__Frame f = LEVEE__FRAME__INIT;
        f.request_id = 1;
        f.body_case = LEVEE__FRAME__BODY_HELLO;
        f.hello = &hello;
        return f;
    }

    void close_write() { ::shutdown(fd_, SHUT_WR); }
    int fd() const { return fd_; }

    // Reads what is there without blocking; true once the server closed.
    bool pump() {
        std::uint8_t buf[4096];
        for (;;) {
            const ssize_t n = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
            if (n > 0) {
                in_.insert(in_.end(), buf, buf + n);
                continue;
            }
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                closed_ = true;
            }
            return closed_;
        }
    }
    // The next whole frame received, or null.
    FramePtr take_frame() {
        pump();
        DecodeResult r = decode_frame(in_.data(), in_.size(), kDefaultMaxFrameBytes);
        if (r.status != DecodeStatus::kFrame) {
            return nullptr;
        }
        in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(r.consumed));
        return std::move(r.frame);
    }
    FramePtr await_frame(event_base *base) {
        FramePtr f;
        run_until(base, [&] {
            if (!f) {
                f = take_frame();
            }
            return f != nullptr || closed_;
        });
        return f;
    }
    bool await_close(event_base *base) {
        return run_until(base, [&] { return pump(); });
    }

  private:
    int fd_ = -1;
    bool connected_ = false;
    bool closed_ = false;
    std::vector<std::uint8_t> in_;
};

class ServerFixture : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/levee-net-test-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        listen();
    }
    void TearDown() override {
        admin_server_.reset();
        server_.reset();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    void listen(std::uint32_t max_connections = 1024, std::uint32_t max_frame_bytes = 1u << 20) {
        ConnectionLimits limits;
        limits.max_frame_bytes = max_frame_bytes;
        listen(max_connections, limits);
    }
    void listen(std::uint32_t max_connections, const ConnectionLimits &limits) {
        server_.reset();
        FrameServerOptions o;
        o.socket_path = path();
        o.max_connections = max_connections;
        o.limits = limits;
        o.peers = peers_;
        server_ = std::make_unique<FrameServer>(base_.get(), o, dispatcher_, metrics_);
        dispatcher_.attach(*server_);
        std::string error;
        ASSERT_TRUE(server_->listen(error)) << error;
    }
    // The admin socket beside the other, as leveed opens it.
    void listen_admin() {
        FrameServerOptions o;
        o.socket_path = admin_path();
        o.socket_mode = 0600;
        o.admin = true;
        admin_server_ = std::make_unique<FrameServer>(base_.get(), o, dispatcher_, metrics_);
        dispatcher_.attach_admin(*admin_server_);
        std::string error;
        ASSERT_TRUE(admin_server_->listen(error)) << error;
    }
    std::string path() const { return dir_ + "/leveed.sock"; }
    std::string admin_path() const { return dir_ + "/leveed-admin.sock"; }
    std::unique_ptr<Client> connect(const std::string &socket = "") {
        auto c = std::make_unique<Client>(socket.empty() ? path() : socket);
        EXPECT_TRUE(c->connected());
        return c;
    }
    // A connection the server has accepted, its hello answered.
    std::unique_ptr<Client> connect_hello(const std::string &socket = "") {
        auto c = connect(socket);
        c->send_hello();
        FramePtr reply = c->await_frame(base());
        EXPECT_NE(reply, nullptr);
        if (reply) {
            EXPECT_EQ(reply->body_case, LEVEE__FRAME__BODY_HELLO_REPLY);
            EXPECT_TRUE(reply->hello_reply->accepted);
        }
        return c;
    }
    double closed(const char *reason) const {
        return metrics_.value("leveed_connections_closed_total", {{"reason", reason}});
    }
    event_base *base() const { return base_.get(); }

    BasePtr base_{event_base_new()};
    Metrics metrics_;
    ProbeService probe_{nullptr, nullptr};
    PresenceService presence_{nullptr, nullptr, nullptr, nullptr, metrics_};
    LimitService limit_{nullptr, metrics_};
    RegistryService registry_{nullptr, metrics_};
    Dispatcher dispatcher_{metrics_, probe_, presence_, limit_, registry_, /*standalone=*/true};
    std::string dir_;
    std::unique_ptr<FrameServer> server_;
    std::unique_ptr<FrameServer> admin_server_;
    PeerPolicy peers_ = admin_socket_policy(); // of the next listen()
};

} // namespace levee::testing
