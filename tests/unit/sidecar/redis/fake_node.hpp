// A stand-in for one Redis node on 127.0.0.1, on the test's own event loop:
// it reads RESP commands and answers each with whatever `answer` returns
// (raw RESP). It records what each connection received, in order, so tests
// can check what went first and that nothing slipped in before it. Real
// Redis cannot be told to misbehave like this (answer a command after a
// refused AUTH, echo a password).
#pragma once

#include <event2/event.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "node_connection.hpp"

namespace levee::redis::testing {

struct BaseFree {
    void operator()(event_base *b) const { event_base_free(b); }
};
using BasePtr = std::unique_ptr<event_base, BaseFree>;

// Turns the loop until `done()` or the timeout; returns done().
template <typename Pred> bool run_until(event_base *base, Pred done, int timeout_ms = 5000) {
    const int64_t deadline = now_ms() + timeout_ms;
    while (!done() && now_ms() < deadline) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    return done();
}

class FakeNode {
public:
    using Command = std::vector<std::string>;
    using Answer = std::function<std::string(const Command &)>;
    // An answer that closes the connection instead, after the command was
    // read: its sender cannot know whether it ran.
    static constexpr const char *kHangUp = "\x01hang up";

    FakeNode(event_base *base, Answer answer) : base_(base), answer_(std::move(answer)) {
        listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof(addr);
        if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0 ||
            ::listen(listen_fd_, 16) != 0 ||
            ::getsockname(listen_fd_, reinterpret_cast<sockaddr *>(&addr), &len) != 0) {
            std::abort();
        }
        port_ = ntohs(addr.sin_port);
        accept_ev_.reset(event_new(base_, listen_fd_, EV_READ | EV_PERSIST, &FakeNode::on_accept, this));
        event_add(accept_ev_.get(), nullptr);
    }
    ~FakeNode() {
        accept_ev_.reset();
        conns_.clear();
        ::close(listen_fd_);
    }
    FakeNode(const FakeNode &) = delete;
    FakeNode &operator=(const FakeNode &) = delete;

    int port() const { return port_; }
    std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }
    // What each accepted connection received, in order of acceptance.
    std::vector<std::vector<Command>> received() const {
        std::vector<std::vector<Command>> out;
        for (const auto &c : conns_) {
            out.push_back(c->commands);
        }
        return out;
    }
    // Accepted connections the peer has not closed.
    int open_connections() const {
        int n = 0;
        for (const auto &c : conns_) {
            n += c->ev != nullptr;
        }
        return n;
    }
    // While held, answers are kept back (in order) until release(): a
    // command stays in flight as long as the test needs.
    void hold_answers() { holding_ = true; }
    void release_answers() {
        holding_ = false;
        for (const auto &c : conns_) {
            if (c->fd >= 0 && !c->held.empty()) {
                write_all(c->fd, c->held);
            }
            c->held.clear();
        }
    }

private:
    struct EventFree {
        void operator()(event *ev) const { event_free(ev); }
    };
    struct Conn {
        FakeNode *node = nullptr;
        int fd = -1;
        std::unique_ptr<event, EventFree> ev;
        std::string in;
        std::vector<Command> commands;
        std::string held; // answers kept back by hold_answers()
        ~Conn() {
            ev.reset();
            if (fd >= 0) {
                ::close(fd);
            }
        }
    };

    static void on_accept(evutil_socket_t fd, short, void *arg) {
        auto *self = static_cast<FakeNode *>(arg);
        const int c = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            return;
        }
        auto conn = std::make_unique<Conn>();
        conn->node = self;
        conn->fd = c;
        conn->ev.reset(event_new(self->base_, c, EV_READ | EV_PERSIST, &FakeNode::on_read, conn.get()));
        event_add(conn->ev.get(), nullptr);
        self->conns_.push_back(std::move(conn));
    }

    static void on_read(evutil_socket_t fd, short, void *arg) {
        auto *conn = static_cast<Conn *>(arg);
        char buf[4096];
        const ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n <= 0) {
            conn->ev.reset(); // keep what it received; the peer is gone
            return;
        }
        conn->in.append(buf, static_cast<std::size_t>(n));
        std::string out;
        Command cmd;
        while (parse(conn->in, cmd)) {
            conn->commands.push_back(cmd);
            const std::string answer = conn->node->answer_(cmd);
            if (answer == kHangUp) {
                conn->ev.reset();
                ::close(conn->fd);
                conn->fd = -1;
                return;
            }
            out += answer;
        }
        if (conn->node->holding_) {
            conn->held += out;
        } else if (!out.empty()) {
            write_all(fd, out);
        }
    }

    // Small answers to a local peer: one blocking-enough write.
    static void write_all(int fd, const std::string &out) {
        if (::write(fd, out.data(), out.size()) != static_cast<ssize_t>(out.size())) {
            std::abort();
        }
    }

    // One "*N\r\n$len\r\nbytes\r\n..." off the front of `in`; false if incomplete.
    static bool parse(std::string &in, Command &cmd) {
        cmd.clear();
        std::size_t pos = 0;
        auto line = [&](char type, long &value) {
            const auto end = in.find("\r\n", pos);
            if (end == std::string::npos || in[pos] != type) {
                return false;
            }
            value = std::strtol(in.c_str() + pos + 1, nullptr, 10);
            pos = end + 2;
            return true;
        };
        long count = 0;
        if (in.empty() || !line('*', count)) {
            return false;
        }
        for (long i = 0; i < count; ++i) {
            long len = 0;
            if (pos >= in.size() || !line('$', len) || in.size() < pos + static_cast<std::size_t>(len) + 2) {
                return false;
            }
            cmd.push_back(in.substr(pos, static_cast<std::size_t>(len)));
            pos += static_cast<std::size_t>(len) + 2;
        }
        in.erase(0, pos);
        return true;
    }

    event_base *base_;
    Answer answer_;
    int listen_fd_ = -1;
    int port_ = 0;
    std::unique_ptr<event, EventFree> accept_ev_;
    std::vector<std::unique_ptr<Conn>> conns_;
    bool holding_ = false;
};

} // namespace levee::redis::testing
