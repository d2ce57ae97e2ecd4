// One connection to one cluster node on libevent: a bufferevent over TCP,
// or over TLS (OpenSSL; see tls_context.hpp), with hiredis's reply parser.
// hiredis 0.14's own async transport cannot do TLS, so only its parser is
// used.
//
// Commands are pipelined: each is appended to the bufferevent's output
// buffer, written when the socket is writable, so everything queued during
// one event-loop turn leaves in one write. With TLS, what is queued before
// the handshake ends goes out after it. Replies come back in order, so a
// FIFO of what was sent tells which reply answers what, and the age of its
// head tells a frozen node (SIGSTOP: TCP still accepts, nothing answers).
//
// With wait_replicas > 0 a `WAIT n timeout` follows each batch, and command
// replies are held until that WAIT answers: Redis replicates asynchronously,
// so a master killed right after answering can take the write with it. At
// most one WAIT is outstanding per connection: a WAIT blocks the connection
// in Redis (up to its timeout when replicas lag or are missing), and one per
// loop turn would queue up timeouts without bound. Commands sent while a
// WAIT is out are covered by the next one, sent when it answers.
//
// With a password, every new connection gets AUTH as its first command,
// queued before anything a caller sends. Redis answers in order, so the
// commands pipelined behind it need not wait for its answer; if AUTH is
// refused, Redis answered them NOAUTH without running them, and they are
// reported lost (retried elsewhere or later), never as answered.
//
// A host name is resolved through Options::resolver before connecting to
// the address (a blocking lookup would stall the loop). Commands sent
// meanwhile wait in order and go out once connected; a failed lookup is a
// failed connect (backoff, commands reported lost), and connect_timeout_ms
// covers the lookup, the connect and the TLS handshake together.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "event_ptr.hpp"
#include "host_port.hpp"
#include "reply.hpp"
#include "resolver.hpp"
#include "tls_context.hpp"
struct bufferevent;
struct redisReader;
struct redisReply;

namespace levee::redis {

class NodeConnection {
  public:
    enum class Kind : uint8_t {
        Command, // a caller's command; replies are held for WAIT when enabled
        Asking,  // ASKING before an ASK-redirected command; reply ignored
        Load,    // SCRIPT LOAD before re-sending an EVALSHA that hit NOSCRIPT; reply ignored
        Refresh, // CLUSTER SLOTS
        Wait,    // WAIT after a batch; internal
        Auth,    // AUTH, first on each connection; internal
    };

    class Handler {
      public:
        // `reply` null: the fate of the command is unknown: the connection
        // was lost or timed out before it was answered (or, with WAIT on,
        // before WAIT answered). `replicas_acked` is WAIT's count for a held
        // reply (0 when the WAIT itself failed: no replica is known to have
        // it), -1 for a reply no WAIT followed.
        //
        // Runs inside the connection's own callbacks: the handler may send()
        // on any connection, but must not destroy one.
        virtual void on_node_reply(NodeConnection &node, Kind kind, uint64_t id, const Reply *reply,
                                   int replicas_acked) = 0;
        // The connection is gone; every unanswered command was reported lost
        // before this. The next send() reconnects.
        virtual void on_node_down(NodeConnection &node, const std::string &why) = 0;

      protected:
        ~Handler() = default;
    };

    struct Options {
        int connect_timeout_ms = 1000;
        int command_timeout_ms = 2000;
        int wait_replicas = 0;
        int wait_timeout_ms = 200;
        // Delay between connect attempts while a node refuses them, so that
        // thousands of retried commands cost one connect, not thousands.
        int reconnect_min_ms = 20;
        int reconnect_max_ms = 1000;
        // Non-empty: `AUTH [user] password` opens every connection.
        std::string user;
        std::string password;
        // Resolves host names; null: only numeric hosts connect.
        Resolver *resolver = nullptr;
        // Non-null: every connection is TLS, its peer verified.
        std::shared_ptr<const TlsContext> tls;
    };

    NodeConnection(event_base *base, HostPort addr, Options opts, Handler &handler);
    // Closes the connection without reporting to the handler. Must not run
    // inside one of this connection's callbacks (use close()).
    ~NodeConnection();
    NodeConnection(const NodeConnection &) = delete;
    NodeConnection &operator=(const NodeConnection &) = delete;

    // Queues one command, connecting first if needed. Returns false (with
    // `error`) when no connection could be started; the handler then hears
    // nothing about this command.
    bool send(Kind kind, uint64_t id, const std::vector<std::string> &argv, std::string &error);

    // Closes the connection when connecting or the oldest unanswered command
    // has taken too long. Call from a timer, not from a connection's callback.
    void check_timeouts(int64_t now_ms);

    // Drops the connection; unanswered commands are reported lost, then
    // on_node_down. Deferred to the next loop turn inside a connection's callback.
    void close(const std::string &why);

    const HostPort &addr() const { return addr_; }
    const std::string &name() const { return name_; }
    bool connected() const { return connected_; }
    // Why the connection last went down ("command timeout", "Connection
    // refused", "TLS: certificate verify failed: ..."): valid while lost
    // commands are being reported.
    const std::string &last_error() const { return last_error_; }
    std::size_t unanswered() const { return sent_.size() + held_.size(); }
    // Connect attempts that failed since the last successful one: refused,
    // timed out, or closed before any reply (with a password: a refused AUTH
    // is a failed attempt, success is an accepted one).
    int connect_failures() const { return connect_failures_; }
    // When the connection last failed (timeout, error, refused); -1 never.
    int64_t last_failure_ms() const { return last_failure_ms_; }
    // Redis refused this connection's AUTH: that is why it is going down.
    // Valid in on_node_down (and until the next connect).
    bool auth_refused() const { return auth_refused_; }
    // A reload: commands sent from now on follow the new WAIT settings.
    void set_wait(int replicas, int timeout_ms) {
        opts_.wait_replicas = replicas;
        opts_.wait_timeout_ms = timeout_ms;
    }
    // A reload: the next connection (a reconnect) sends this AUTH; the open
    // one stays authenticated as it is.
    void set_auth(std::string user, std::string password) {
        opts_.user = std::move(user);
        opts_.password = std::move(password);
    }
    // Redis's answer to the last refused AUTH ("WRONGPASS ...").
    const std::string &auth_error() const { return auth_error_; }
    // AUTHs refused since one was last accepted.
    int auth_refusals() const { return auth_refusals_; }

  private:
    struct BufferEventFree {
        void operator()(bufferevent *bev) const;
    };
    struct ReaderFree {
        void operator()(redisReader *reader) const;
    };
    struct Sent {
        Kind kind;
        uint64_t id;
        int64_t sent_ms;
        // Whether a WAIT follows it: fixed when sent, so that a reload
        // changing wait_replicas never holds a reply no WAIT will release.
        bool waits;
    };
    struct Held {
        uint64_t id;
        Reply reply;
    };

    // A connection exists or is being set up (its host name resolving).
    bool open() const { return bev_ || lookup_; }
    bool connect(std::string &error);
    // Starts connecting to a numeric address (and the TLS handshake).
    bool open_transport(const std::string &address, std::string &error);
    void on_resolved(bool ok, const std::string &address, const std::string &error);
    bool append(Kind kind, uint64_t id, const std::vector<std::string> &argv, std::string &error);
    bool write(const std::string &cmd);
    void handle_reply(const redisReply &r);
    void on_auth_reply(const redisReply &r);
    // Why the transport failed, from OpenSSL or the socket.
    std::string transport_error(short events) const;
    // Closes the transport; unanswered commands are reported lost, then on_node_down.
    void teardown(const std::string &why);
    void fail_held();
    void schedule_deferred();
    void note_connect_failure();
    void send_wait();

    static void on_read(bufferevent *bev, void *arg);
    static void on_event(bufferevent *bev, short events, void *arg);
    static void on_deferred(int fd, short what, void *arg);

    event_base *base_;
    HostPort addr_;
    std::string name_;
    Options opts_;
    Handler &handler_;

    std::unique_ptr<bufferevent, BufferEventFree> bev_;
    std::unique_ptr<redisReader, ReaderFree> reader_;
    std::unique_ptr<Resolver::Lookup> lookup_;
    std::vector<std::string> unsent_; // RESP of the commands sent while resolving, in order
    EventPtr deferred_ev_;
    bool connected_ = false; // TCP connected and, with TLS, the handshake done
    bool answered_ = false;  // a reply came on this connection
    int64_t connect_started_ms_ = 0;
    int connect_failures_ = 0;
    int64_t next_connect_ms_ = 0;
    int in_callback_ = 0;
    bool close_pending_ = false;
    std::string close_reason_;
    std::string last_error_;
    bool wait_needed_ = false;    // commands went out since the last WAIT
    bool wait_in_flight_ = false; // a WAIT is unanswered
    int64_t last_failure_ms_ = -1;
    bool deferred_scheduled_ = false;
    bool auth_refused_ = false; // on the current connection
    std::string auth_error_;
    std::string sent_password_; // the AUTH of the current connection, masked in its error
    int auth_refusals_ = 0;

    std::deque<Sent> sent_;
    std::vector<Held> held_;
};

// Milliseconds on a monotonic clock.
int64_t now_ms();

} // namespace levee::redis
