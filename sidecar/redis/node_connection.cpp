#include "node_connection.hpp"

#include <chrono>
#include <cstdint>
#include <string_view>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "core/link/backoff.hpp"
#include "log.hpp"
#include "resp_command.hpp"

namespace levee::redis {

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

void NodeConnection::AsyncFree::operator()(redisAsyncContext *ac) const {
    redisAsyncFree(ac);
}

namespace {

// hiredis carries our per-command privdata as a void*; the generation of
// the context a command went out on fits in it and lets on_reply check that
// the FIFO head is really the command being answered.
void *to_privdata(uint64_t generation) {
    return reinterpret_cast<void *>(static_cast<uintptr_t>(generation));
}
uint64_t from_privdata(void *p) {
    return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p));
}

struct CallbackScope {
    explicit CallbackScope(int &depth) : depth_(depth) { ++depth_; }
    ~CallbackScope() { --depth_; }
    int &depth_;
};

} // namespace

NodeConnection::NodeConnection(event_base *base, HostPort addr, Options opts, Handler &handler)
    : base_(base), addr_(std::move(addr)), name_(addr_.str()), opts_(opts), handler_(handler),
      deferred_ev_(event_new(base, -1, 0, &NodeConnection::on_deferred, this)) {}

NodeConnection::~NodeConnection() {
    destroying_ = true;
    lookup_.reset();
    // redisAsyncFree runs the pending callbacks with NULL replies and then
    // the disconnect callback; both see destroying_ and stay quiet.
    ctx_.reset();
}

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
    ++generation_;
    connected_ = false;
    connect_started_ms_ = now_ms();
    auth_refused_ = false;
    sent_password_ = opts_.password;
    if (is_numeric_host(addr_.host)) {
        if (!open_context(addr_.host, error)) {
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
            ctx_.reset();
            return false;
        }
    }
    return true;
}

bool NodeConnection::open_context(const std::string &address, std::string &error) {
    // Numeric: hiredis's getaddrinfo returns at once.
    redisAsyncContext *ac = redisAsyncConnect(address.c_str(), addr_.port);
    if (ac == nullptr) {
        error = "out of memory";
        return false;
    }
    if (ac->err != 0) {
        error = ac->errstr;
        redisAsyncFree(ac);
        return false;
    }
    ac->data = this;
    if (redisLibeventAttach(ac, base_) != REDIS_OK) {
        error = "cannot attach to libevent";
        redisAsyncFree(ac);
        return false;
    }
    redisAsyncSetConnectCallback(ac, &NodeConnection::on_connect);
    redisAsyncSetDisconnectCallback(ac, &NodeConnection::on_disconnect);
    ctx_.reset(ac);
    return true;
}

void NodeConnection::on_resolved(bool ok, const std::string &address, const std::string &why) {
    lookup_.reset();
    std::string error = why;
    if (ok && open_context(address, error)) {
        for (const std::string &cmd : unsent_) {
            if (redisAsyncFormattedCommand(ctx_.get(), &NodeConnection::on_reply, to_privdata(generation_), cmd.data(),
                                           cmd.size()) != REDIS_OK) {
                break; // only when hiredis is tearing the context down: it reports what it has
            }
        }
        unsent_.clear();
        return;
    }
    // A failed connect, like a refused one: backoff, and what waited is lost.
    CallbackScope scope(in_callback_);
    last_error_ = error;
    last_failure_ms_ = now_ms();
    note_connect_failure();
    connected_ = false;
    wait_needed_ = false;
    wait_in_flight_ = false;
    drop_unsent();
    fail_held();
    handler_.on_node_down(*this, last_error_);
}

void NodeConnection::drop_unsent() {
    unsent_.clear();
    std::deque<Sent> lost;
    lost.swap(sent_);
    for (const Sent &s : lost) {
        if (s.kind == Kind::Command || s.kind == Kind::Refresh) {
            handler_.on_node_reply(*this, s.kind, s.id, nullptr, -1);
        }
    }
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
    } else if (redisAsyncFormattedCommand(ctx_.get(), &NodeConnection::on_reply, to_privdata(generation_), cmd.data(),
                                          cmd.size()) != REDIS_OK) {
        // Only when hiredis is already tearing this context down.
        error = "connection closing";
        return false;
    }
    const bool waits = kind == Kind::Command && opts_.wait_replicas > 0;
    sent_.push_back(Sent{kind, id, generation_, now_ms(), waits});
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
        // The context is going away; held replies are failed with it.
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
        // Freeing the context from inside its own callback would free it
        // under hiredis's feet; do it on the next loop turn.
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
    if (lookup_) {
        lookup_.reset(); // cancelled: no hiredis context yet
        drop_unsent();
    } else {
        // Released first so that on_disconnect knows we initiated this.
        redisAsyncFree(ctx_.release());
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

void NodeConnection::on_connect(const redisAsyncContext *ac, int status) {
    auto *self = static_cast<NodeConnection *>(ac->data);
    if (self == nullptr || self->destroying_ || self->ctx_.get() != ac) {
        return;
    }
    CallbackScope scope(self->in_callback_);
    if (status == REDIS_OK) {
        self->connected_ = true;
        // With a password the node is usable, and backoff over, only once
        // it accepts the AUTH.
        if (self->opts_.password.empty()) {
            self->connect_failures_ = 0;
        }
        return;
    }
    self->note_connect_failure();
    // hiredis frees the context right after this callback, then reports the
    // queued commands with NULL replies.
    self->last_error_ = ac->errstr[0] != '\0' ? ac->errstr : "connect failed";
    (void)self->ctx_.release();
    self->connected_ = false;
    self->wait_needed_ = false;
    self->wait_in_flight_ = false;
    self->last_failure_ms_ = now_ms();
    self->handler_.on_node_down(*self, self->last_error_);
}

void NodeConnection::on_disconnect(const redisAsyncContext *ac, int) {
    auto *self = static_cast<NodeConnection *>(ac->data);
    if (self == nullptr || self->destroying_ || self->ctx_.get() != ac) {
        return; // we initiated it: teardown() finishes the job
    }
    CallbackScope scope(self->in_callback_);
    // hiredis dropped the connection (EOF, I/O or protocol error) and frees
    // the context after this returns.
    if (ac->errstr[0] != '\0') {
        self->last_error_ = ac->errstr;
    } else if (self->last_error_.empty()) {
        self->last_error_ = "connection closed";
    }
    (void)self->ctx_.release();
    self->connected_ = false;
    self->wait_needed_ = false;
    self->wait_in_flight_ = false;
    self->last_failure_ms_ = now_ms();
    self->fail_held();
    self->handler_.on_node_down(*self, self->last_error_);
}

void NodeConnection::on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    auto *self = static_cast<NodeConnection *>(ac->data);
    if (self == nullptr) {
        return;
    }
    const uint64_t generation = from_privdata(privdata);
    if (self->sent_.empty() || self->sent_.front().generation != generation) {
        log::error("redis_reply_desync", {{"node", self->name_}});
        return;
    }
    const Sent sent = self->sent_.front();
    self->sent_.pop_front();
    if (self->destroying_) {
        return;
    }
    CallbackScope scope(self->in_callback_);
    const auto *r = static_cast<const redisReply *>(reply);
    if (sent.kind == Kind::Auth) {
        if (r != nullptr) {
            self->on_auth_reply(*r);
        }
        return;
    }
    if (self->auth_refused_ && sent.generation == self->generation_) {
        // Behind a refused AUTH every command was answered NOAUTH without
        // running: lost, so that the caller retries it, never answered.
        r = nullptr;
    }
    if (r == nullptr) {
        if (ac->errstr[0] != '\0' && self->ctx_.get() == ac) {
            self->last_error_ = ac->errstr;
        }
        if (sent.kind == Kind::Command || sent.kind == Kind::Refresh) {
            self->handler_.on_node_reply(*self, sent.kind, sent.id, nullptr, -1);
        }
        return;
    }
    switch (sent.kind) {
    case Kind::Asking:
    case Kind::Load:
    case Kind::Auth: break;
    case Kind::Refresh: {
        const Reply copy = Reply::from_hiredis(*r);
        self->handler_.on_node_reply(*self, sent.kind, sent.id, &copy, -1);
        break;
    }
    case Kind::Command:
        if (sent.waits) {
            self->held_.push_back(Held{sent.id, Reply::from_hiredis(*r)});
        } else {
            const Reply copy = Reply::from_hiredis(*r);
            self->handler_.on_node_reply(*self, sent.kind, sent.id, &copy, -1);
        }
        break;
    case Kind::Wait: {
        // Every held reply came before this WAIT on the wire, so WAIT's
        // answer covers all of them.
        // A failed WAIT (an error: the node is no longer a master) confirms
        // no replica.
        const int acked = r->type == REDIS_REPLY_INTEGER ? static_cast<int>(r->integer) : 0;
        if (r->type != REDIS_REPLY_INTEGER) {
            log::warn("redis_wait_failed", {{"node", self->name_}, {"reply", r->str ? r->str : ""}});
        }
        self->wait_in_flight_ = false;
        std::vector<Held> held;
        held.swap(self->held_);
        for (const Held &h : held) {
            self->handler_.on_node_reply(*self, Kind::Command, h.id, &h.reply, acked);
        }
        // Cover what went out while this WAIT was blocking.
        self->send_wait();
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
