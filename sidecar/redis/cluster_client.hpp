// A Redis Cluster client on one libevent loop, over hiredis 0.14 (which
// knows nothing of clusters): we hash keys to slots, keep the slot map,
// follow MOVED and ASK, and ride out failovers by refreshing the topology
// and retrying with backoff.
//
// Threading: everything, callbacks included, runs on the event_base's loop
// thread. A callback may issue new commands; it must not destroy the client.
//
// Delivery: a command is reported successful only after Redis answered it
// (and, with wait_replicas > 0, after a WAIT that followed it answered).
// Commands whose connection is lost or times out are retried, so a command
// may execute more than once: prefer idempotent writes (SET of a newer value,
// ZADD GT, scripts that only move forward).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "event_ptr.hpp"
#include "host_port.hpp"
#include "node_connection.hpp"
#include "reply.hpp"
#include "slot_map.hpp"

namespace levee::redis {

struct ClusterOptions {
    std::size_t max_in_flight = 100000; // commands queued or sent, whole cluster; beyond: refused
    int connect_timeout_ms = 1000;
    int command_timeout_ms = 2000; // a command unanswered this long fails its connection (frozen node)
    int max_redirects = 16;
    int retry_backoff_min_ms = 20, retry_backoff_max_ms = 1000; // capped exponential with jitter
    int max_retry_ms = 15000; // total time a command keeps retrying across failover before failing upward
    // > 0: a `WAIT wait_replicas wait_timeout_ms` follows each pipelined
    // batch on a connection, and the batch's replies are reported only once
    // it answers. A reply that fewer replicas than asked confirmed is
    // reported with Reply::unreplicated set (Redis ran it: retrying would not
    // replicate it) and counts in stats().wait_short; each caller decides
    // what that means. A master without replicas (after a failover, until
    // the old master rejoins) then answers one batch per wait_timeout_ms per
    // connection: keep it short.
    int wait_replicas = 0;
    int wait_timeout_ms = 200;
    int refresh_min_interval_ms = 100; // rate limit of CLUSTER SLOTS refreshes
    // Non-empty password: every connection to every node (seeds, discovered
    // masters, redirect targets, reconnects) opens with `AUTH [user]
    // password`. A refused AUTH fails the connection like a refused connect.
    std::string user;
    std::string password;
    // Resolves seeds and nodes given by name (see NodeConnection); null:
    // the client's own evdns resolver on its loop.
    Resolver *resolver = nullptr;
    // Non-null: every connection is TLS (tls_context.hpp).
    std::shared_ptr<const TlsContext> tls;
};

struct ClusterStats {
    uint64_t commands = 0;            // accepted by command()
    uint64_t errors = 0;              // completed with an Error reply, Redis's or the client's
    uint64_t moved = 0;               // MOVED replies followed
    uint64_t ask = 0;                 // ASK replies followed
    uint64_t refused_full = 0;        // command() refused at max_in_flight
    uint64_t slot_refreshes = 0;      // CLUSTER SLOTS replies applied
    uint64_t retries = 0;             // attempts parked for a retry
    uint64_t timeouts = 0;            // connections dropped for an unanswered command or connect
    uint64_t connection_errors = 0;   // connections lost otherwise
    uint64_t wait_short = 0;          // replies reported unreplicated: WAIT saw fewer replicas than asked
    uint64_t auth_failures = 0;       // connections whose AUTH a node refused
    uint64_t connections_retired = 0; // connections closed because their node left the slot map
    // The last command completed with a reply from Redis (even an error
    // reply), not with the client giving up: the cluster is reachable.
    bool reachable = false;
    // "host:port" -> (commands sent to the node, failed attempts and error
    // replies there); a node's entry leaves with its retired connection.
    std::map<std::string, std::pair<uint64_t, uint64_t>> per_node_commands_errors;
};

class ClusterClient final : private NodeConnection::Handler {
  public:
    // Reply::Type::Error carries failures, including the client's own:
    // "LEVEE_TIMEOUT ..." (gave up; the last attempt timed out),
    // "LEVEE_UNAVAILABLE ..." (gave up; no node could take it, or too many
    // redirects), "LEVEE_SHUTDOWN ..." (client destroyed).
    using Callback = std::function<void(const Reply &reply)>;

    struct MasterInfo {
        HostPort addr;
        std::vector<std::pair<int, int>> slot_ranges; // inclusive
    };

    ClusterClient(event_base *base, std::vector<HostPort> seeds, ClusterOptions opts = {});
    // Closes every node connection and timer. Commands still in flight get a
    // "LEVEE_SHUTDOWN" error reply from inside the destructor (command()
    // refuses new ones meanwhile), then drain() waiters run. Destroy the
    // client before its event_base.
    ~ClusterClient();
    ClusterClient(const ClusterClient &) = delete;
    ClusterClient &operator=(const ClusterClient &) = delete;

    // Discovers the topology (CLUSTER SLOTS) from the first seed that
    // answers; `on_ready(false, ...)` when none does. Commands issued before
    // are held (within max_retry_ms) until the slot map is known. on_ready
    // may run before start() returns (every seed refused at once).
    void start(std::function<void(bool ok, const std::string &error)> on_ready);

    // Routes by the slot of `key`. argv is the full command, e.g.
    // {"SET", key, value}. Returns false (and counts refused_full) when
    // max_in_flight is reached or the client is shutting down; the callback
    // is then NOT called. Otherwise the callback is called exactly once,
    // never from inside command().
    bool command(std::string_view key, std::vector<std::string> argv, Callback cb);

    // EVALSHA of a registered script that meets NOSCRIPT (a new node, a
    // promoted replica, SCRIPT FLUSH) is answered by loading the script on
    // that connection and sending the same command again behind it.
    void register_script(std::string sha1, std::string source);

    std::vector<MasterInfo> masters() const;
    const ClusterStats &stats() const { return stats_; }
    // Called with each command's seconds from command() to its reply,
    // redirects and retries included.
    void set_latency_observer(std::function<void(double seconds)> observer) { latency_observer_ = std::move(observer); }
    std::size_t in_flight() const { return commands_.size(); }
    // Node connections kept (seeds, masters, redirect targets), connected or
    // not: without retirement this would grow with every node ever seen.
    std::size_t node_connections() const { return nodes_.size(); }

    // A reload: every node, and those found later, WAIT this way for the
    // commands sent from now on.
    void set_wait(int replicas, int timeout_ms);
    // A reload: connections opened from now on (reconnects, new nodes)
    // authenticate this way; open ones stay as they are.
    void set_auth(const std::string &user, const std::string &password);

    // Calls `done` once every in-flight command has completed (at once if
    // none is). Commands issued meanwhile are waited for too.
    void drain(std::function<void()> done);

  private:
    struct Command {
        uint64_t id = 0;
        uint16_t slot = 0;
        std::vector<std::string> argv;
        Callback cb;
        int64_t started_ms = 0;
        int redirects = 0;
        int attempts = 0;
        bool ask = false; // next attempt goes to ask_to, preceded by ASKING
        HostPort ask_to;
        std::string last_error;
        bool last_was_timeout = false;
    };
    using Parked = std::pair<int64_t, uint64_t>; // (due ms, command id)

    void on_node_reply(NodeConnection &node, NodeConnection::Kind kind, uint64_t id, const Reply *reply,
                       int replicas_acked) override;
    void on_node_down(NodeConnection &node, const std::string &why) override;

    NodeConnection &node(const HostPort &addr);
    void dispatch(Command &c);
    void handle_command_reply(NodeConnection &node, Command &c, const Reply *reply, int replicas_acked);
    void park(Command &c, std::string why, bool timeout);
    void arm_retry_timer(int64_t due);
    void run_retries();
    void complete(uint64_t id, const Reply &reply);
    void check_drained();

    void request_refresh();
    void run_refresh(bool all_seeds);
    void handle_refresh_reply(NodeConnection &node, uint64_t generation, const Reply *reply);
    void refresh_failed(const std::string &error);
    void apply_slot_map(SlotMap map);
    // Marks the connections to nodes that are neither masters in slots_ nor
    // seeds, and arms retire_departed() for the next loop turn.
    void mark_departed();
    // Destroys the marked connections that have nothing unanswered; the
    // others stay marked until their commands are answered or lost. Runs
    // from the client's timers, never inside a connection's callback.
    void retire_departed();

    event_base *base_;
    std::vector<HostPort> seeds_;
    ClusterOptions opts_;
    ClusterStats stats_;
    std::function<void(double)> latency_observer_;
    bool shutting_down_ = false;

    std::unique_ptr<Resolver> own_resolver_;                       // outlives nodes_, whose lookups it runs
    std::map<std::string, std::unique_ptr<NodeConnection>> nodes_; // by "host:port"
    SlotMap slots_;
    std::vector<NodeConnection *> slot_nodes_; // parallel to slots_.nodes()
    std::set<std::string> departed_;           // nodes_ keys awaiting retirement; node() takes one back

    std::unordered_map<uint64_t, std::unique_ptr<Command>> commands_;
    uint64_t next_id_ = 1;
    std::priority_queue<Parked, std::vector<Parked>, std::greater<Parked>> parked_;
    int64_t retry_armed_due_ = -1;
    bool wake_parked_ = false; // the topology changed: retry everything now
    std::minstd_rand rng_;

    std::function<void(bool, const std::string &)> on_ready_;
    uint64_t refresh_generation_ = 0;
    bool refresh_in_progress_ = false;
    bool refresh_scheduled_ = false;
    int refresh_outstanding_ = 0;
    int refresh_failures_ = 0;
    std::size_t refresh_rotation_ = 0;
    int64_t last_refresh_ms_ = -1000000;
    std::string refresh_error_;
    std::string refresh_last_failure_; // why the last refresh failed; empty once one succeeds

    std::vector<std::function<void()>> drain_waiters_;
    std::unordered_map<std::string, std::string> scripts_; // sha1 -> source

    EventPtr retry_ev_;
    EventPtr refresh_ev_;
    EventPtr tick_ev_;
    EventPtr retire_ev_;
};

} // namespace levee::redis
