#include "daemon.hpp"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <fstream>
#include <utility>
#include <vector>

#include <event2/event.h>
#include <grp.h>
#include <unistd.h>

#include "cluster_client.hpp"
#include "config/config_diff.hpp"
#include "document_store.hpp"
#include "event_ptr.hpp"
#include "levee_version.h"
#include "log.hpp"
#include "loop_poster.hpp"
#include "metrics.hpp"
#include "metrics_http.hpp"
#include "mongo_uri.hpp"
#include "net/fd_limit.hpp"
#include "net/frame_server.hpp"
#include "presence_writer.hpp"
#include "service/presence_service.hpp"
#include "spool.hpp"
#include "service/dispatcher.hpp"
#include "service/limit_service.hpp"
#include "service/probe.hpp"
#include "service/registry_service.hpp"

namespace levee {
namespace {

// Operators with leveectl, not a fleet of workers.
constexpr std::uint32_t kAdminMaxConnections = 16;

ConnectionLimits connection_limits(const Config &c) {
    ConnectionLimits l;
    l.max_frame_bytes = c.max_frame_bytes;
    l.hello_timeout_ms = c.hello_timeout_ms;
    l.frame_timeout_ms = c.frame_timeout_ms;
    l.max_output_bytes = c.max_output_bytes;
    return l;
}

// Whom nginx's socket serves (see Config::allow_users); false with `error`
// when a name no longer resolves.
bool nginx_peers(const Config &c, PeerPolicy &out, std::string &error) {
    std::vector<uid_t> users;
    std::vector<gid_t> groups;
    if (!resolve_users(c.allow_users, users, error) || !resolve_groups(c.allow_groups, groups, error)) {
        return false;
    }
    gid_t socket_gid = ::getegid();
    if (!c.socket_group.empty()) {
        const group *gr = ::getgrnam(c.socket_group.c_str());
        if (gr == nullptr) {
            error = "socket_group \"" + c.socket_group + "\": no such group";
            return false;
        }
        socket_gid = gr->gr_gid;
    }
    out = nginx_socket_policy(users, groups, socket_gid);
    return true;
}

} // namespace

struct Daemon::Parts {
    Config config;
    ConfigSource source;
    std::unique_ptr<event_base, void (*)(event_base *)> base{event_base_new(), event_base_free};
    Metrics metrics;
    // Brings the spool's sync thread's word back to the loop: outlives the spool.
    std::unique_ptr<LoopPoster> poster;
    std::unique_ptr<redis::ClusterClient> redis;
    std::unique_ptr<DocumentStore> mongo;
    std::unique_ptr<Spool> spool;
    std::unique_ptr<PresenceWriter> presence_writer;
    std::unique_ptr<ProbeService> probe;
    std::unique_ptr<PresenceService> presence;
    std::unique_ptr<LimitService> limit;
    std::unique_ptr<RegistryService> registry;
    std::unique_ptr<Dispatcher> dispatcher;
    std::unique_ptr<FrameServer> server;
    std::unique_ptr<FrameServer> admin_server; // null: admin_socket off
    std::unique_ptr<MetricsHttp> metrics_http;
    std::vector<EventPtr> signals;
    EventPtr drain_deadline;
    EventPtr housekeeping;
    bool draining = false;
    int exit_code = 0;

    ~Parts() {
        // The client answers what is still in flight from its destructor:
        // the services those answers reach must still exist.
        redis.reset();
    }
    bool start();
    bool start_redis();
    bool start_mongo();
    void begin_drain(const char *why);
    void reload();
    void apply_live(const Config &before);
    void check_fd_limit();
    void arm_housekeeping();
    void update_gauges();
    static void on_housekeeping(evutil_socket_t, short, void *arg);
    void finish_drain();
    static void on_signal(evutil_socket_t sig, short, void *arg);
    static void on_drain_deadline(evutil_socket_t, short, void *arg);
};

Daemon::Daemon(Config config, ConfigSource source) : parts_(std::make_unique<Parts>()) {
    parts_->config = std::move(config);
    parts_->source = std::move(source);
}

Daemon::~Daemon() {
    if (!parts_->config.pid_file.empty()) {
        ::unlink(parts_->config.pid_file.c_str());
    }
}

bool Daemon::Parts::start() {
    if (!base) {
        log::error("startup_failed", {{"reason", "event_base_new failed"}});
        return false;
    }
    metrics.describe("leveed_up", "gauge", "1 while leveed runs.");
    metrics.set("leveed_up", {}, 1);
    check_fd_limit();
    poster = std::make_unique<LoopPoster>(base.get());

    if (!start_redis() || !start_mongo()) {
        return false;
    }
    if (config.standalone()) {
        log::warn("standalone_mode", {{"reason", "no redis configured"},
                                      {"meaning", "limits, presence and the registry live in this process: "
                                                  "each nginx host counts scope=global limits alone"}});
    }

    probe = std::make_unique<ProbeService>(redis.get(), mongo.get());
    presence = std::make_unique<PresenceService>(
        redis.get(), spool.get(), mongo.get(), base.get(), metrics, static_cast<std::uint16_t>(config.presence_buckets),
        [p = poster.get()](std::function<void()> fn) { p->post(std::move(fn)); });
    limit = std::make_unique<LimitService>(redis.get(), metrics, base.get());
    registry = std::make_unique<RegistryService>(redis.get(), metrics);
    dispatcher = std::make_unique<Dispatcher>(metrics, *probe, *presence, *limit, *registry, config.standalone());
    FrameServerOptions opts;
    opts.socket_path = config.socket_path;
    opts.socket_mode = config.socket_mode;
    opts.socket_group = config.socket_group;
    opts.max_connections = config.max_connections;
    opts.limits = connection_limits(config);
    std::string error;
    if (!nginx_peers(config, opts.peers, error)) {
        log::error("startup_failed", {{"reason", error}});
        return false;
    }
    dispatcher->set_max_connection_in_flight(config.max_connection_in_flight);
    dispatcher->set_presence_buckets(config.presence_buckets);
    const std::string admin_path = config.admin_socket_path();
    if (!admin_path.empty()) {
        FrameServerOptions admin;
        admin.socket_path = admin_path;
        admin.socket_mode = 0600;
        admin.max_connections = kAdminMaxConnections;
        admin.limits = opts.limits;
        admin.peers = admin_socket_policy();
        admin.admin = true;
        admin_server = std::make_unique<FrameServer>(base.get(), admin, *dispatcher, metrics);
        dispatcher->attach_admin(*admin_server);
        if (!admin_server->listen(error)) {
            log::error("startup_failed", {{"reason", "admin socket: " + error}});
            return false;
        }
    }
    // Last: whoever waits for nginx's socket finds the admin socket ready.
    server = std::make_unique<FrameServer>(base.get(), opts, *dispatcher, metrics);
    dispatcher->attach(*server);
    if (!server->listen(error)) {
        log::error("startup_failed", {{"reason", error}});
        return false;
    }

    metrics.describe("leveed_build_info", "gauge", "Always 1; the labels say which leveed runs.");
    metrics.set("leveed_build_info", {{"version", LEVEE_VERSION}}, 1);
    if (!config.metrics_listen.empty()) {
        metrics_http = std::make_unique<MetricsHttp>(base.get(), metrics, [this]() -> std::string {
            if (draining) {
                return "draining";
            }
            return server->accept_failing() ? "not accepting connections: out of file descriptors" : "";
        });
        if (!metrics_http->listen(config.metrics_listen, error)) {
            log::error("startup_failed", {{"reason", error}});
            return false;
        }
    }

    housekeeping.reset(event_new(base.get(), -1, EV_PERSIST, on_housekeeping, this));
    arm_housekeeping();

    for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
        EventPtr ev(evsignal_new(base.get(), sig, on_signal, this));
        if (!ev || event_add(ev.get(), nullptr) != 0) {
            log::error("startup_failed", {{"reason", "cannot install signal handler"}});
            return false;
        }
        signals.push_back(std::move(ev));
    }
    std::signal(SIGPIPE, SIG_IGN);

    if (!config.pid_file.empty()) {
        std::ofstream pid(config.pid_file, std::ios::trunc);
        pid << ::getpid() << '\n';
        if (!pid) {
            log::error("startup_failed", {{"reason", "cannot write pid file " + config.pid_file}});
            return false;
        }
    }

    // Whether AUTH is on and as whom, never the password.
    const std::string redis_auth = config.redis_password.empty() ? "-"
                                   : config.redis_user.empty()   ? "password"
                                                                 : "user " + config.redis_user;
    log::info("started", {{"socket", config.socket_path},
                          {"admin_socket", admin_path.empty() ? "-" : admin_path},
                          {"peers", opts.peers.describe()},
                          {"redis", config.redis_seeds.empty() ? "-" : config.redis_seeds},
                          {"redis_auth", redis_auth},
                          {"redis_tls", config.redis_tls ? "on" : "off"},
                          {"mongo", config.mongo_uri.empty() ? "-" : redact_mongo_uri(config.mongo_uri)},
                          {"metrics", config.metrics_listen.empty() ? "-" : config.metrics_listen},
                          {"pid", static_cast<long>(::getpid())}});
    return true;
}

// Out of descriptors, accept() fails and nginx workers cannot connect.
void Daemon::Parts::check_fd_limit() {
    const std::uint64_t needed = std::uint64_t{config.max_connections} + kFdReserve;
    const FdLimit l = ensure_fd_limit(needed);
    if (l.soft != l.soft_before) {
        log::info("fd_limit_raised", {{"from", l.soft_before}, {"to", l.soft}});
    }
    if (!l.enough) {
        log::warn("fd_limit_low", {{"soft", l.soft},
                                   {"hard", l.hard},
                                   {"needed", needed},
                                   {"max_connections", config.max_connections},
                                   {"hint", "raise LimitNOFILE= in the unit (ulimit -n) or lower max_connections"}});
    }
}

namespace {

// Null and no error: TLS is off.
std::shared_ptr<const redis::TlsContext> redis_tls_context(const Config &config, std::string &error) {
    if (!config.redis_tls) {
        return nullptr;
    }
    return redis::TlsContext::create(
        {config.redis_tls_ca_file, config.redis_tls_cert_file, config.redis_tls_key_file, config.redis_tls_server_name},
        error);
}

} // namespace

std::string check_config_files(const Config &config) {
    std::string error;
    (void)redis_tls_context(config, error);
    return error;
}

bool Daemon::Parts::start_redis() {
    if (config.redis_seeds.empty()) {
        return true;
    }
    std::vector<redis::HostPort> seeds;
    std::string error;
    if (!redis::parse_host_ports(config.redis_seeds, seeds, error)) {
        log::error("startup_failed", {{"reason", error}});
        return false;
    }
    redis::ClusterOptions opts;
    opts.wait_replicas = static_cast<int>(config.redis_wait_replicas);
    opts.wait_timeout_ms = static_cast<int>(config.redis_wait_timeout_ms);
    opts.user = config.redis_user;
    opts.password = config.redis_password;
    opts.tls = redis_tls_context(config, error);
    if (!error.empty()) {
        log::error("startup_failed", {{"reason", error}});
        return false;
    }
    redis = std::make_unique<redis::ClusterClient>(base.get(), seeds, opts);
    metrics.describe("leveed_redis_up", "gauge",
                     "1 while the Redis Cluster answers: the slot map is known and commands get replies.");
    metrics.describe_histogram("leveed_redis_command_duration_seconds",
                               "From a command to its reply, redirects and retries included.",
                               {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5});
    metrics.describe("leveed_redis_node_connections", "gauge",
                     "Connections kept to Redis nodes: seeds, masters, redirect targets; departed ones are closed.");
    redis->set_latency_observer(
        [this](double seconds) { metrics.observe("leveed_redis_command_duration_seconds", {}, seconds); });
    // The client keeps cumulative counts; they are published as counters.
    for (const char *name : {"commands", "errors", "moved", "ask", "refused_full", "slot_refreshes", "retries",
                             "node_commands", "node_errors", "auth_failures", "unreplicated", "connections_retired"}) {
        metrics.describe(std::string("leveed_redis_") + name + "_total", "counter",
                         std::string("Redis Cluster client: ") + name + ".");
    }
    redis->start([seeds = config.redis_seeds](bool ok, const std::string &err) {
        if (ok) {
            log::info("redis_cluster_ready", {{"seeds", seeds}});
        } else {
            log::warn("redis_cluster_unavailable", {{"seeds", seeds}, {"error", err}});
        }
    });
    return true;
}

bool Daemon::Parts::start_mongo() {
    if (config.mongo_uri.empty()) {
        return true;
    }
    std::string error;
    mongo = std::make_unique<DocumentStore>(base.get(), config.mongo_uri, config.mongo_database, metrics);
    if (!mongo->start(error)) {
        log::error("startup_failed", {{"reason", error}});
        return false;
    }
    SpoolOptions so;
    so.dir = config.spool_dir;
    so.fsync = config.spool_fsync == "always"  ? SpoolFsync::kAlways
               : config.spool_fsync == "never" ? SpoolFsync::kNever
                                               : SpoolFsync::kInterval;
    so.max_bytes = config.spool_max_bytes;
    metrics.describe("leveed_spool_corrupt_records_total", "counter",
                     "Damaged spans of the spool skipped (each held one record or more), never written to MongoDB.");
    so.on_damage = [this](const SpoolDamage &d) {
        if (d.kind == SpoolDamage::Kind::kTornTail) {
            log::warn("spool_torn_tail_cut", {{"file", d.file}, {"offset", d.offset}, {"bytes", d.bytes}});
            return;
        }
        metrics.inc("leveed_spool_corrupt_records_total");
        log::error("spool_corrupt_record", {{"segment", d.segment},
                                            {"offset", d.offset},
                                            {"bytes", d.bytes},
                                            {"file", d.file},
                                            {"error", d.reason},
                                            {"lost", "the records in these bytes never reach MongoDB"}});
    };
    spool = Spool::open(so, error);
    if (!spool) {
        log::error("startup_failed", {{"reason", "spool: " + error}});
        return false;
    }
    log::info("spool_opened", {{"dir", config.spool_dir},
                               {"pending_records", spool->pending_records()},
                               {"fsync", config.spool_fsync},
                               {"max_bytes", config.spool_max_bytes}});
    PresenceWriterOptions wo;
    wo.database = config.mongo_database;
    wo.flush_ms = config.mongo_flush_ms;
    wo.ttl_s = config.mongo_ttl_s;
    presence_writer = std::make_unique<PresenceWriter>(mongo->pool(), *spool, wo, metrics);
    presence_writer->start();
    return true;
}

void Daemon::Parts::arm_housekeeping() {
    const std::uint32_t tick_ms = std::min<std::uint32_t>(config.spool_fsync_interval_ms, 1000);
    const timeval tick{static_cast<time_t>(tick_ms / 1000), static_cast<suseconds_t>((tick_ms % 1000) * 1000)};
    event_add(housekeeping.get(), &tick);
}

void Daemon::Parts::update_gauges() {
    if (spool) {
        metrics.set("leveed_spool_pending_records", {}, static_cast<double>(spool->pending_records()));
        metrics.set("leveed_spool_pending_bytes", {}, static_cast<double>(spool->pending_bytes()));
    }
    if (redis) {
        const redis::ClusterStats &s = redis->stats();
        metrics.set("leveed_redis_commands_total", {}, static_cast<double>(s.commands));
        metrics.set("leveed_redis_errors_total", {}, static_cast<double>(s.errors));
        metrics.set("leveed_redis_moved_total", {}, static_cast<double>(s.moved));
        metrics.set("leveed_redis_ask_total", {}, static_cast<double>(s.ask));
        metrics.set("leveed_redis_refused_full_total", {}, static_cast<double>(s.refused_full));
        metrics.set("leveed_redis_slot_refreshes_total", {}, static_cast<double>(s.slot_refreshes));
        metrics.set("leveed_redis_retries_total", {}, static_cast<double>(s.retries));
        metrics.set("leveed_redis_auth_failures_total", {}, static_cast<double>(s.auth_failures));
        metrics.set("leveed_redis_unreplicated_total", {}, static_cast<double>(s.wait_short));
        metrics.set("leveed_redis_in_flight", {}, static_cast<double>(redis->in_flight()));
        metrics.set("leveed_redis_connections_retired_total", {}, static_cast<double>(s.connections_retired));
        metrics.set("leveed_redis_node_connections", {}, static_cast<double>(redis->node_connections()));
        metrics.set("leveed_redis_up", {}, s.reachable ? 1 : 0);
        // Replaced, not set: a retired node's series leave /metrics with it.
        std::vector<std::pair<Labels, double>> commands, errors;
        for (const auto &[node, counts] : s.per_node_commands_errors) {
            commands.push_back({{{"node", node}}, static_cast<double>(counts.first)});
            errors.push_back({{{"node", node}}, static_cast<double>(counts.second)});
        }
        metrics.replace("leveed_redis_node_commands_total", commands);
        metrics.replace("leveed_redis_node_errors_total", errors);
    }
}

void Daemon::Parts::on_housekeeping(evutil_socket_t, short, void *arg) {
    auto *self = static_cast<Parts *>(arg);
    if (self->spool && self->config.spool_fsync == "interval") {
        // On the spool's sync thread: a slow disk never holds up the loop.
        self->spool->sync_soon([](bool ok, const std::string &error) {
            if (!ok) {
                log::error("spool_sync_failed", {{"error", error}});
            }
        });
    }
    self->update_gauges();
}

void Daemon::Parts::on_signal(evutil_socket_t sig, short, void *arg) {
    auto *self = static_cast<Parts *>(arg);
    if (sig == SIGHUP) {
        std::string error;
        if (log::reopen(error)) {
            log::info("log_reopened");
        } else {
            log::error("log_reopen_failed", {{"error", error}});
        }
        self->reload();
        return;
    }
    self->begin_drain(sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

namespace {

std::string join(const std::vector<std::string> &keys) {
    std::string out;
    for (const std::string &k : keys) {
        out += (out.empty() ? "" : ",") + k;
    }
    return out.empty() ? "-" : out;
}

} // namespace

// Re-reads the settings as they were read at start (same file, same flags).
// A file with any error changes nothing; otherwise every setting that can
// change without dropping a connection is applied, the others are named.
void Daemon::Parts::reload() {
    Config next;
    const std::vector<ConfigError> errors = load_config(source, next);
    if (!errors.empty()) {
        for (const ConfigError &e : errors) {
            log::error("config_error", {{"file", source.label()}, {"line", e.line}, {"error", e.message}});
        }
        log::error("config_reload_failed", {{"errors", errors.size()}, {"kept", "running settings"}});
        return;
    }
    const ConfigChanges changes = diff_config(config, next);
    for (const std::string &key : changes.restart) {
        log::warn("config_restart_needed", {{"setting", key}, {"reason", "applies at the next start"}});
    }
    const Config before = config;
    config = merge_live(config, next);
    apply_live(before);
    log::info("config_reloaded", {{"changed", join(changes.live)}, {"restart_needed", join(changes.restart)}});
}

void Daemon::Parts::apply_live(const Config &before) {
    if (config.log_file != before.log_file) {
        std::string error;
        if (!log::open_file(config.log_file, error)) {
            log::error("log_reopen_failed", {{"error", error}});
            // The old file is still open: keep saying so.
            config.log_file = before.log_file;
            log::open_file(before.log_file, error);
        }
    }
    log::set_level(config.log_level);
    server->set_max_connections(config.max_connections);
    server->set_limits(connection_limits(config));
    if (admin_server) {
        admin_server->set_limits(connection_limits(config));
    }
    PeerPolicy peers;
    std::string error;
    if (nginx_peers(config, peers, error)) {
        server->set_peers(peers);
    } else {
        log::error("config_reload_peers_kept", {{"error", error}});
    }
    dispatcher->set_max_connection_in_flight(config.max_connection_in_flight);
    if (config.max_connections > before.max_connections) {
        check_fd_limit();
    }
    if (config.spool_fsync_interval_ms != before.spool_fsync_interval_ms) {
        arm_housekeeping();
    }
    if (presence_writer) {
        presence_writer->set_flush_ms(config.mongo_flush_ms);
    }
    if (spool) {
        spool->set_max_bytes(config.spool_max_bytes);
    }
    if (redis) {
        redis->set_wait(static_cast<int>(config.redis_wait_replicas), static_cast<int>(config.redis_wait_timeout_ms));
        redis->set_auth(config.redis_user, config.redis_password);
    }
    // drain_timeout_ms is read when a drain begins.
}

// Stop taking work, let what was accepted reach Redis and the database, then stop.
void Daemon::Parts::begin_drain(const char *why) {
    if (draining) {
        log::warn("drain_forced", {{"signal", why}});
        event_base_loopbreak(base.get());
        return;
    }
    draining = true;
    log::info("draining", {{"signal", why}});
    server->stop_accepting();
    if (admin_server) {
        admin_server->stop_accepting();
    }

    drain_deadline = start_timer(base.get(), static_cast<int>(config.drain_timeout_ms), on_drain_deadline, this);

    auto pending = std::make_shared<int>(1 + (redis ? 1 : 0) + (mongo ? 1 : 0));
    auto one_done = [this, pending] {
        if (--*pending == 0) {
            finish_drain();
        }
    };
    if (redis) {
        redis->drain(one_done);
    }
    if (mongo) {
        mongo->flush(one_done);
    }
    one_done();
}

void Daemon::Parts::on_drain_deadline(evutil_socket_t, short, void *arg) {
    auto *self = static_cast<Parts *>(arg);
    log::error("drain_timeout", {{"timeout_ms", self->config.drain_timeout_ms}});
    self->exit_code = 1;
    event_base_loopbreak(self->base.get());
}

void Daemon::Parts::finish_drain() {
    auto stop = [this] {
        log::info("drained", {{"spooled", spool ? spool->pending_records() : 0}});
        event_base_loopbreak(base.get());
    };
    if (!spool) {
        stop();
        return;
    }
    // The loop keeps running (and drain_timeout_ms counting) while the disk syncs.
    spool->sync_soon([this, stop](bool ok, const std::string &error) {
        poster->post([this, stop, ok, error] {
            if (!ok) {
                log::error("spool_sync_failed", {{"error", error}});
                exit_code = 1;
            }
            stop();
        });
    });
}

int Daemon::run() {
    Parts &p = *parts_;
    if (!p.start()) {
        return 1;
    }
    event_base_dispatch(p.base.get());
    p.server->shutdown();
    if (p.admin_server) {
        p.admin_server->shutdown();
    }
    log::info("stopped", {{"exit_code", p.exit_code}});
    return p.exit_code;
}

} // namespace levee
