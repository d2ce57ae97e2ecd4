#include "node_connection.hpp"

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string_view>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include "core/link/backoff.hpp"
#include "log.hpp"
#include "resp_command.hpp"

namespace levee::redis {

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

void NodeConnection::BufferEventFree::operator()(bufferevent *bev) const {
    bufferevent_free(bev);
}

void NodeConnection::ReaderFree::operator()(redisReader *reader) const {
    redisReaderFree(reader);
}

namespace {

struct CallbackScope {
    explicit CallbackScope(int &depth) : depth_(depth) { ++depth_; }
    ~CallbackScope() { --depth_; }
    int &depth_;
};

struct ReplyFree {
    void operator()(void *reply) const { freeReplyObject(reply); }
};

} // namespace

NodeConnection::NodeConnection(event_base *base, HostPort addr, Options opts, Handler &handler)
    : base_(base), addr_(std::move(addr)), name_(addr_.str()), opts_(std::move(opts)), handler_(handler),
      deferred_ev_(event_new(base, -1, 0, &NodeConnection::on_deferred, this)) {}

// The members close the transport and cancel a lookup; no handler hears of it.
NodeConnection::~NodeConnection() = default;

void NodeConnection::note_connect_failure() {
    ++connect_failures_;
    // the first retry waits the minimum: one doubling per failure after it
    const uint32_t delay = levee::link::backoff_delay(
        static_cast<uint32_t>(connect_failures_ - 1), static_cast<uint32_t>(opts_.reconnect_min_ms),
        static_cast<uint32_t>(opts_.reconnect_max_ms), reinterpret_cast<uintptr_t>(this) + now_ms());
    next_connect_ms_ = now_ms() + delay;
}

bool NodeConnection::connect(std::string &error) {
    if (connect_failures_ > 0 && now_ms() < next_connect_ms_) {
        error = "reconnect pending after: " + last_error_;
        return false;
    }
    connected_ = false;
    answered_ = false;
    connect_started_ms_ = now_ms();
    auth_refused_ = false;
    sent_password_ = opts_.password;
    if (is_numeric_host(addr_.host)) {
        if (!open_transport(addr_.host, error)) {
            last_error_ = error;
            last_failure_ms_ = now_ms();
            note_connect_failure();
            return false;
        }
    } else if (opts_.resolver == nullptr) {
        error = "resolve " + addr_.host + ": no resolver";
        return false;
    } else {
        lookup_ =
            opts_.resolver->resolve(addr_.host, [this](bool ok, const std::string &address, const std::string &why) {
                on_resolved(ok, address, why);
            });
    }
    if (!opts_.password.empty()) {
        std::vector<std::string> auth{"AUTH"};
        if (!opts_.user.empty()) {
            auth.push_back(opts_.user);
        }
        auth.push_back(opts_.password);
        // First in the output buffer: whatever the caller queues next goes
        // out behind it on the same connection.
        if (!append(Kind::Auth, 0, auth, error)) {
            lookup_.reset();
            bev_.reset();
            return false;
        }
    }
    return true;
}

bool NodeConnection::open_transport(const std::string &address, std::string &error) {
    sockaddr_storage sa{};
    int sa_len = sizeof(sa);
    const std::string spec =
        (address.find(':') != std::string::npos ? "[" + address + "]" : address) + ":" + std::to_string(addr_.port);
    if (evutil_parse_sockaddr_port(spec.c_str(), reinterpret_cast<sockaddr *>(&sa), &sa_len) != 0) {
        error = "not a numeric address: " + address;
        return false;
    }
    // Connected here rather than by bufferevent_socket_connect, so that a
    // refusal known at once (a local port) is reported with its errno.
    const evutil_socket_t fd = ::socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error = std::strerror(errno);
        return false;
    }
    const int one = 1;
    // Pipelined batches are written whole; Nagle would only hold the tail.
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (::connect(fd, reinterpret_cast<const sockaddr *>(&sa), static_cast<socklen_t>(sa_len)) != 0 &&
        errno != EINPROGRESS) {
        error = std::strerror(errno);
        evutil_closesocket(fd);
        return false;
    }
    bufferevent *bev = nullptr;
    if (opts_.tls) {
        SSL *ssl = opts_.tls->new_session(addr_.host, error);
        if (ssl == nullptr) {
            evutil_closesocket(fd);
            return false;
        }
        // Deferred callbacks: OpenSSL may fail inside a bufferevent_write,
        // which must not tear the connection down under append().
        bev = bufferevent_openssl_socket_new(base_, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
                                             BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (bev == nullptr) {
            SSL_free(ssl);
        }
    } else {
        bev = bufferevent_socket_new(base_, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    if (bev == nullptr) {
        evutil_closesocket(fd);
        error = "out of memory";
        return false;
    }
    std::unique_ptr<bufferevent, BufferEventFree> owned(bev);
    std::unique_ptr<redisReader, ReaderFree> reader(new_reply_reader());
    bufferevent_setcb(bev, &NodeConnection::on_read, nullptr, &NodeConnection::on_event, this);
    // With a NULL address, bufferevent_socket_connect waits for the
    // connect already under way on the descriptor and reports CONNECTED.
    if (!reader || bufferevent_enable(bev, EV_READ | EV_WRITE) != 0 ||
        (!opts_.tls && bufferevent_socket_connect(bev, nullptr, 0) != 0)) {
        error = "cannot start the connection";
        return false;
    }
    bev_ = std::move(owned);
    reader_ = std::move(reader);
    return true;
}

void NodeConnection::on_resolved(bool ok, const std::string &address, const std::string &why) {
    lookup_.reset();
    std::string error = why;
    if (ok && open_transport(address, error)) {
        for (const std::string &cmd : unsent_) {
            (void)write(cmd); // a failure there shows as a transport error
        }
        unsent_.clear();
        return;
    }
    // A failed connect, like a refused one: backoff, and what waited is lost.
    note_connect_failure();
    teardown(error);
}

bool NodeConnection::send(Kind kind, uint64_t id, const std::vector<std::string> &argv, std::string &error) {
    if (!open() && !connect(error)) {
        return false;
    }
    if (auth_refused_) {
        // Going down on the next loop turn; Redis would only answer NOAUTH.
        error = last_error_;
        return false;
    }
    return append(kind, id, argv, error);
}

bool NodeConnection::append(Kind kind, uint64_t id, const std::vector<std::string> &argv, std::string &error) {
    std::string cmd = resp_command(argv);
    if (lookup_) {
        unsent_.push_back(std::move(cmd));
    } else if (!write(cmd)) {
        error = "out of memory";
        return false;
    }
    const bool waits = kind == Kind::Command && opts_.wait_replicas > 0;
    sent_.push_back(Sent{kind, id, now_ms(), waits});
    if (waits) {
        wait_needed_ = true;
        if (!wait_in_flight_) {
            schedule_deferred();
        }
    } else if (kind == Kind::Wait) {
        wait_in_flight_ = true;
        wait_needed_ = false;
    }
    return true;
}

bool NodeConnection::write(const std::string &cmd) {
    return bufferevent_write(bev_.get(), cmd.data(), cmd.size()) == 0;
}

void NodeConnection::schedule_deferred() {
    if (!deferred_scheduled_ && deferred_ev_) {
        deferred_scheduled_ = true;
        // Runs after the current loop turn's callbacks: the WAIT then
        // closes the batch of everything sent during this turn.
        event_active(deferred_ev_.get(), EV_TIMEOUT, 1);
    }
}

void NodeConnection::on_deferred(int, short, void *arg) {
    auto *self = static_cast<NodeConnection *>(arg);
    self->deferred_scheduled_ = false;
    if (self->close_pending_) {
        self->close_pending_ = false;
        if (self->open()) {
            self->teardown(self->close_reason_);
        }
    }
    self->send_wait();
}

void NodeConnection::send_wait() {
    if (!wait_needed_ || wait_in_flight_ || !open()) {
        return;
    }
    const std::vector<std::string> argv{"WAIT", std::to_string(opts_.wait_replicas),
                                        std::to_string(opts_.wait_timeout_ms)};
    std::string error;
    if (!send(Kind::Wait, 0, argv, error)) {
        // The connection is going away; held replies are failed with it.
        log::debug("redis_wait_not_sent", {{"node", name_}, {"error", error}});
    }
}

void NodeConnection::check_timeouts(int64_t now) {
    if (!open() || in_callback_ > 0) {
        return;
    }
    if (!connected_ && now - connect_started_ms_ > opts_.connect_timeout_ms) {
        note_connect_failure();
        teardown(lookup_ ? "connect timeout: resolve " + addr_.host + " unanswered" : "connect timeout");
        return;
    }
    // A WAIT may legitimately block its connection for wait_timeout_ms.
    const int64_t limit = opts_.command_timeout_ms + (opts_.wait_replicas > 0 ? opts_.wait_timeout_ms : 0);
    if (!sent_.empty() && now - sent_.front().sent_ms > limit) {
        teardown("command timeout");
    }
}

void NodeConnection::close(const std::string &why) {
    if (!open()) {
        return;
    }
    if (in_callback_ > 0) {
        // Inside a callback the caller is still walking this connection's
        // replies; close on the next loop turn.
        close_pending_ = true;
        close_reason_ = why;
        schedule_deferred();
        return;
    }
    teardown(why);
}

void NodeConnection::teardown(const std::string &why) {
    CallbackScope scope(in_callback_);
    last_error_ = why;
    connected_ = false;
    wait_needed_ = false;
    wait_in_flight_ = false;
    last_failure_ms_ = now_ms();
    lookup_.reset();
    unsent_.clear();
    // Closed before anything is reported, so that a command retried from a
    // handler opens a new connection rather than joining this one.
    bev_.reset();
    reader_.reset();
    std::deque<Sent> lost;
    lost.swap(sent_);
    for (const Sent &s : lost) {
        if (s.kind == Kind::Command || s.kind == Kind::Refresh) {
            handler_.on_node_reply(*this, s.kind, s.id, nullptr, -1);
        }
    }
    fail_held();
    handler_.on_node_down(*this, why);
}

void NodeConnection::fail_held() {
    std::vector<Held> held;
    held.swap(held_);
    for (const Held &h : held) {
        handler_.on_node_reply(*this, Kind::Command, h.id, nullptr, -1);
    }
}

std::string NodeConnection::transport_error(short events) const {
    const int err = errno;
    if (opts_.tls) {
        SSL *ssl = bufferevent_openssl_get_ssl(bev_.get());
        const long verify = ssl != nullptr ? SSL_get_verify_result(ssl) : X509_V_OK;
        if (verify != X509_V_OK) {
            return std::string("TLS: certificate verify failed: ") + X509_verify_cert_error_string(verify);
        }
        const std::string errors = openssl_errors([this] { return bufferevent_get_openssl_error(bev_.get()); });
        if (!errors.empty()) {
            return "TLS: " + errors;
        }
    }
    if ((events & BEV_EVENT_ERROR) != 0 && err != 0 && err != EAGAIN && err != EINPROGRESS) {
        return std::strerror(err);
    }
    if (connected_) {
        return "connection closed";
    }
    return opts_.tls ? "connection closed before it was ready (TLS handshake)"
                     : "connection closed before it was ready";
}

void NodeConnection::on_event(bufferevent *bev, short events, void *arg) {
    auto *self = static_cast<NodeConnection *>(arg);
    if (self->bev_.get() != bev) {
        return;
    }
    if ((events & BEV_EVENT_CONNECTED) != 0) {
        self->connected_ = true;
        return;
    }
    if ((events & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) == 0) {
        return;
    }
    const std::string why = self->transport_error(events);
    // A peer that accepts and hangs up before answering anything (a TLS
    // port spoken to in plain text, a proxy with no backend) is refusing
    // too: back off rather than reconnect at once, forever.
    if (!self->answered_) {
        self->note_connect_failure();
    }
    self->teardown(why);
}

void NodeConnection::on_read(bufferevent *bev, void *arg) {
    auto *self = static_cast<NodeConnection *>(arg);
    if (self->bev_.get() != bev) {
        return;
    }
    evbuffer *in = bufferevent_get_input(bev);
    for (std::size_t left = evbuffer_get_length(in); left > 0; left = evbuffer_get_length(in)) {
        evbuffer_iovec chunks[8];
        const int n = evbuffer_peek(in, -1, nullptr, chunks, 8);
        std::size_t fed = 0;
        for (int i = 0; i < n && i < 8; ++i) {
            if (redisReaderFeed(self->reader_.get(), static_cast<const char *>(chunks[i].iov_base),
                                chunks[i].iov_len) != REDIS_OK) {
                self->teardown("out of memory");
                return;
            }
            fed += chunks[i].iov_len;
        }
        evbuffer_drain(in, fed);
    }
    CallbackScope scope(self->in_callback_);
    for (;;) {
        void *raw = nullptr;
        if (redisReaderGetReply(self->reader_.get(), &raw) != REDIS_OK) {
            // new_reply_reader's bound shows as hiredis's out-of-memory error.
            self->teardown(self->reader_->err == REDIS_ERR_OOM
                               ? "protocol error: an array reply above " + std::to_string(kMaxReplyElements) +
                                     " elements, or out of memory"
                               : std::string("protocol error: ") + self->reader_->errstr);
            return;
        }
        if (raw == nullptr) {
            return;
        }
        const std::unique_ptr<void, ReplyFree> reply(raw);
        if (self->sent_.empty()) {
            log::error("redis_reply_desync", {{"node", self->name_}});
            self->teardown("a reply to no command");
            return;
        }
        self->handle_reply(*static_cast<const redisReply *>(raw));
    }
}

void NodeConnection::handle_reply(const redisReply &reply) {
    const Sent sent = sent_.front();
    sent_.pop_front();
    answered_ = true;
    // The node is usable, and backoff over, once it answers; with a
    // password, once it accepts the AUTH (on_auth_reply).
    if (sent_password_.empty()) {
        connect_failures_ = 0;
    }
    const redisReply *r = &reply;
    if (sent.kind == Kind::Auth) {
        on_auth_reply(*r);
        return;
    }
    if (auth_refused_) {
        // Behind a refused AUTH every command was answered NOAUTH without
        // running: lost, so that the caller retries it, never answered.
        if (sent.kind == Kind::Command || sent.kind == Kind::Refresh) {
            handler_.on_node_reply(*this, sent.kind, sent.id, nullptr, -1);
        }
        return;
    }
    switch (sent.kind) {
    case Kind::Asking:
    case Kind::Load:
    case Kind::Auth: break;
    case Kind::Refresh: {
        const Reply copy = Reply::from_hiredis(*r);
        handler_.on_node_reply(*this, sent.kind, sent.id, &copy, -1);
        break;
    }
    case Kind::Command:
        if (sent.waits) {
            held_.push_back(Held{sent.id, Reply::from_hiredis(*r)});
        } else {
            const Reply copy = Reply::from_hiredis(*r);
            handler_.on_node_reply(*this, sent.kind, sent.id, &copy, -1);
        }
        break;
    case Kind::Wait: {
        // Every held reply came before this WAIT on the wire, so WAIT's
        // answer covers all of them.
        // A failed WAIT (an error: the node is no longer a master) confirms
        // no replica.
        const int acked = r->type == REDIS_REPLY_INTEGER ? static_cast<int>(r->integer) : 0;
        if (r->type != REDIS_REPLY_INTEGER) {
            log::warn("redis_wait_failed", {{"node", name_}, {"reply", r->str ? r->str : ""}});
        }
        wait_in_flight_ = false;
        std::vector<Held> held;
        held.swap(held_);
        for (const Held &h : held) {
            handler_.on_node_reply(*this, Kind::Command, h.id, &h.reply, acked);
        }
        // Cover what went out while this WAIT was blocking.
        send_wait();
        break;
    }
    }
}

void NodeConnection::on_auth_reply(const redisReply &r) {
    if (r.type != REDIS_REPLY_ERROR) {
        connect_failures_ = 0;
        auth_refusals_ = 0;
        return;
    }
    auth_refused_ = true;
    ++auth_refusals_;
    auth_error_ = r.str != nullptr ? std::string(r.str, r.len) : "AUTH refused";
    // Redis does not echo the password back; something in front of it might,
    // and this text is logged.
    constexpr std::string_view kMask = "<password>";
    for (auto at = sent_password_.empty() ? std::string::npos : auth_error_.find(sent_password_);
         at != std::string::npos; at = auth_error_.find(sent_password_, at + kMask.size())) {
        auth_error_.replace(at, sent_password_.size(), kMask);
    }
    last_error_ = "AUTH failed: " + auth_error_;
    // A refused AUTH is a failed connect: the same backoff before the next.
    note_connect_failure();
    close(last_error_);
}

} // namespace levee::redis
