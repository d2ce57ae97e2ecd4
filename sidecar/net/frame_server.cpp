#include "frame_server.hpp"

#include <cstring>

#include <unistd.h>

#include <event2/event.h>

#include "log.hpp"
#include "metrics.hpp"

namespace levee {
namespace {

Labels with(Labels labels, const Labels &more) {
    labels.insert(labels.end(), more.begin(), more.end());
    return labels;
}

} // namespace

FrameServer::FrameServer(event_base *base, FrameServerOptions options, FrameHandler &handler, Metrics &metrics)
    : base_(base), options_(std::move(options)), handler_(handler), metrics_(metrics),
      reaper_(event_new(base, -1, 0, reap_cb, this)) {
    if (options_.admin) {
        labels_ = {{"socket", "admin"}};
    }
    metrics_.describe("leveed_connections", "gauge", "Open connections from nginx workers.");
    metrics_.describe("leveed_connections_accepted_total", "counter", "Connections accepted on the socket.");
    metrics_.describe("leveed_connections_refused_total", "counter", "Connections refused at max_connections.");
    metrics_.describe("leveed_connections_closed_total", "counter",
                      "Closed connections by reason (eof, error, malformed, truncated, oversize, unknown_type, "
                      "hello_timeout, frame_timeout, slow_reader, ...).");
    metrics_.describe("leveed_accept_errors_total", "counter",
                      "accept() failures by errno (EMFILE, ENFILE, ...); accepting pauses after each.");
    metrics_.describe("leveed_peers_refused_total", "counter",
                      "Connections closed at accept because the peer's user and groups (SO_PEERCRED) are not "
                      "allowed on the socket, by socket (nginx, admin).");
}

FrameServer::~FrameServer() {
    shutdown();
}

bool FrameServer::listen(std::string &error) {
    listener_ = UnixListener::open(
        base_, options_.socket_path, options_.socket_mode, options_.socket_group, [this](int fd) { accept(fd); },
        [this](int err) { accept_failed(err); }, error);
    return listener_ != nullptr;
}

void FrameServer::stop_accepting() {
    if (listener_) {
        listener_->disable();
    }
}

void FrameServer::shutdown() {
    for (auto &[id, conn] : connections_) {
        closed_.push_back(std::move(conn));
    }
    connections_.clear();
    closed_.clear();
    listener_.reset();
    metrics_.set("leveed_connections", labels_, 0);
}

bool FrameServer::peer_allowed(int fd) {
    PeerCredentials peer;
    const bool known = read_peer_credentials(fd, peer);
    if (known && options_.peers.allows(peer)) {
        return true;
    }
    metrics_.inc("leveed_peers_refused_total", {{"socket", options_.admin ? "admin" : "nginx"}});
    log_throttle_.warn("peer_refused", {{"socket", options_.socket_path},
                                        {"pid", static_cast<long>(peer.pid)},
                                        {"uid", known ? std::to_string(peer.uid) : "-"},
                                        {"gid", known ? std::to_string(peer.gid) : "-"},
                                        {"allowed", options_.peers.describe()},
                                        {"hint", options_.admin ? "the admin socket serves root and leveed's user only"
                                                                : "allow the peer with allow_users or allow_groups"}});
    return false;
}

void FrameServer::accept(int fd) {
    if (accept_failing_) {
        accept_failing_ = false;
        log::info("accept_resumed", {{"connections", connections_.size()}});
    }
    if (!peer_allowed(fd)) {
        ::close(fd);
        return;
    }
    if (connections_.size() >= options_.max_connections) {
        metrics_.inc("leveed_connections_refused_total", labels_);
        // A peer reconnecting in a loop would otherwise write a line per attempt.
        log_throttle_.warn("connection_refused", {{"reason", "max_connections"}, {"limit", options_.max_connections}});
        ::close(fd);
        return;
    }
    const std::uint64_t id = next_id_++;
    auto conn = std::make_unique<FrameConnection>(base_, fd, id, options_.limits, *this);
    conn->admin = options_.admin;
    if (!conn->start()) {
        log::error("connection_setup_failed", {{"conn", id}});
        return;
    }
    connections_.emplace(id, std::move(conn));
    metrics_.inc("leveed_connections_accepted_total", labels_);
    metrics_.set("leveed_connections", labels_, static_cast<double>(connections_.size()));
    log::debug("connection_accepted", {{"conn", id}});
}

void FrameServer::accept_failed(int error) {
    const char *name = error == EMFILE    ? "EMFILE"
                       : error == ENFILE  ? "ENFILE"
                       : error == ENOBUFS ? "ENOBUFS"
                       : error == ENOMEM  ? "ENOMEM"
                                          : "other";
    metrics_.inc("leveed_accept_errors_total", with({{"errno", name}}, labels_));
    if (!accept_failing_) {
        accept_failing_ = true;
        log::error("accept_failed", {{"errno", name},
                                     {"error", std::strerror(error)},
                                     {"connections", connections_.size()},
                                     {"retry_ms", UnixListener::kAcceptPauseMs},
                                     {"hint", "raise LimitNOFILE (RLIMIT_NOFILE) or lower max_connections"}});
    }
}

void FrameServer::set_limits(const ConnectionLimits &limits) {
    const std::uint32_t frame = options_.limits.max_frame_bytes;
    options_.limits = limits;
    options_.limits.max_frame_bytes = frame;
}

FrameConnection *FrameServer::find(std::uint64_t id) const {
    const auto it = connections_.find(id);
    return it == connections_.end() ? nullptr : it->second.get();
}

void FrameServer::on_frame(FrameConnection &conn, FramePtr frame) {
    handler_.handle(conn, std::move(frame));
}

void FrameServer::on_closed(FrameConnection &conn, const char *reason) {
    const auto it = connections_.find(conn.id());
    if (it == connections_.end()) {
        return;
    }
    metrics_.inc("leveed_connections_closed_total", with({{"reason", reason}}, labels_));
    const bool protocol_error = std::string(reason) != "eof";
    log::write(protocol_error ? log::Level::kWarn : log::Level::kInfo, "connection_closed",
               {{"conn", conn.id()}, {"peer", conn.peer.empty() ? "-" : conn.peer}, {"reason", reason}});
    closed_.push_back(std::move(it->second));
    connections_.erase(it);
    metrics_.set("leveed_connections", labels_, static_cast<double>(connections_.size()));
    event_active(reaper_.get(), 0, 0);
}

void FrameServer::reap_cb(int, short, void *arg) {
    static_cast<FrameServer *>(arg)->closed_.clear();
}

} // namespace levee
