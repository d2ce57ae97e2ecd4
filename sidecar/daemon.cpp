#include "daemon.hpp"

#include <csignal>
#include <cstring>
#include <fstream>
#include <vector>

#include <event2/event.h>
#include <unistd.h>

#include "cluster_client.hpp"
#include "document_store.hpp"
#include "log.hpp"
#include "metrics.hpp"
#include "metrics_http.hpp"
#include "net/frame_server.hpp"
#include "service/dispatcher.hpp"
#include "service/probe.hpp"

namespace levee {

using EventPtr = std::unique_ptr<event, void (*)(event *)>;

struct Daemon::Parts {
    Config config;
    std::unique_ptr<event_base, void (*)(event_base *)> base{event_base_new(), event_base_free};
    Metrics metrics;
    std::unique_ptr<redis::ClusterClient> redis;
    std::unique_ptr<DocumentStore> mongo;
    std::unique_ptr<ProbeService> probe;
    std::unique_ptr<Dispatcher> dispatcher;
    std::unique_ptr<FrameServer> server;
    std::unique_ptr<MetricsHttp> metrics_http;
    std::vector<EventPtr> signals;
    EventPtr drain_deadline{nullptr, event_free};
    bool draining = false;
    int exit_code = 0;

    bool start();
    void begin_drain(const char *why);
    void finish_drain();
    static void on_signal(evutil_socket_t sig, short, void *arg);
    static void on_drain_deadline(evutil_socket_t, short, void *arg);
};

Daemon::Daemon(Config config) : parts_(std::make_unique<Parts>()) { parts_->config = std::move(config); }

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

    if (!config.redis_seeds.empty()) {
        std::vector<redis::HostPort> seeds;
        std::string error;
        if (!redis::parse_host_ports(config.redis_seeds, seeds, error)) {
            log::error("startup_failed", {{"reason", error}});
            return false;
        }
        redis = std::make_unique<redis::ClusterClient>(base.get(), seeds);
        redis->start([seeds = config.redis_seeds](bool ok, const std::string &err) {
            if (ok) {
                log::info("redis_cluster_ready", {{"seeds", seeds}});
            } else {
                log::warn("redis_cluster_unavailable", {{"seeds", seeds}, {"error", err}});
            }
        });
    }
    if (!config.mongo_uri.empty()) {
        mongo = std::make_unique<DocumentStore>(base.get(), config.mongo_uri, config.mongo_database, metrics);
        std::string error;
        if (!mongo->start(error)) {
            log::error("startup_failed", {{"reason", error}});
            return false;
        }
    }
    if (config.standalone()) {
        log::info("standalone_mode", {{"reason", "no redis and no mongo configured"}});
    }

    probe = std::make_unique<ProbeService>(redis.get(), mongo.get());
    dispatcher = std::make_unique<Dispatcher>(metrics, *probe);
    FrameServerOptions opts;
    opts.socket_path = config.socket_path;
    opts.socket_mode = config.socket_mode;
    opts.socket_group = config.socket_group;
    opts.max_frame_bytes = config.max_frame_bytes;
    opts.max_connections = config.max_connections;
    server = std::make_unique<FrameServer>(base.get(), opts, *dispatcher, metrics);
    dispatcher->attach(*server);
    std::string error;
    if (!server->listen(error)) {
        log::error("startup_failed", {{"reason", error}});
        return false;
    }

    if (!config.metrics_listen.empty()) {
        metrics_http = std::make_unique<MetricsHttp>(base.get(), metrics, [this]() -> std::string {
            return draining ? "draining" : "";
        });
        if (!metrics_http->listen(config.metrics_listen, error)) {
            log::error("startup_failed", {{"reason", error}});
            return false;
        }
    }

    for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
        EventPtr ev(evsignal_new(base.get(), sig, on_signal, this), event_free);
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

    log::info("started", {{"socket", config.socket_path}, {"redis", config.redis_seeds.empty() ? "-" : config.redis_seeds},
                          {"mongo", config.mongo_uri.empty() ? "-" : config.mongo_uri},
                          {"metrics", config.metrics_listen.empty() ? "-" : config.metrics_listen},
                          {"pid", static_cast<long>(::getpid())}});
    return true;
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
        return;
    }
    self->begin_drain(sig == SIGTERM ? "SIGTERM" : "SIGINT");
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

    drain_deadline.reset(evtimer_new(base.get(), on_drain_deadline, this));
    const timeval tv{static_cast<time_t>(config.drain_timeout_ms / 1000),
                     static_cast<suseconds_t>((config.drain_timeout_ms % 1000) * 1000)};
    evtimer_add(drain_deadline.get(), &tv);

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
    log::info("drained");
    event_base_loopbreak(base.get());
}

int Daemon::run() {
    Parts &p = *parts_;
    if (!p.start()) {
        return 1;
    }
    event_base_dispatch(p.base.get());
    p.server->shutdown();
    log::info("stopped", {{"exit_code", p.exit_code}});
    return p.exit_code;
}

} // namespace levee
