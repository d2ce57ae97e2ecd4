// leveed's socket server: accepts module connections, owns them, counts
// protocol errors, and hands decoded frames to the service layer.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "event_ptr.hpp"
#include "frame_connection.hpp"
#include "log_throttle.hpp"
#include "metrics.hpp"
#include "peer_credentials.hpp"
#include "unix_listener.hpp"

namespace levee {

class FrameHandler {
  public:
    virtual ~FrameHandler() = default;
    virtual void handle(FrameConnection &conn, FramePtr frame) = 0;
};

struct FrameServerOptions {
    std::string socket_path;
    unsigned socket_mode = 0660;
    std::string socket_group;
    std::uint32_t max_connections = 1024;
    ConnectionLimits limits;
    // Whom the socket serves (SO_PEERCRED): anyone else is closed at accept.
    PeerPolicy peers = admin_socket_policy();
    // The admin socket: its connections may send administrative frames
    // (probe), and its metrics carry socket="admin".
    bool admin = false;
};

class FrameServer : public FrameSink {
  public:
    FrameServer(event_base *base, FrameServerOptions options, FrameHandler &handler, Metrics &metrics);
    ~FrameServer() override;

    bool listen(std::string &error);
    // Stops accepting; open connections stay until they close.
    void stop_accepting();
    // accept() is failing (out of descriptors): nginx workers cannot connect.
    bool accept_failing() const { return accept_failing_; }
    // Closes every connection and removes the socket.
    void shutdown();
    std::size_t connection_count() const { return connections_.size(); }
    // A reload: applies to the next accept, open connections stay.
    void set_max_connections(std::uint32_t n) { options_.max_connections = n; }
    // A reload: connections accepted from now on get these (max_frame_bytes is kept:
    // it is fixed at start, see config_diff.cpp).
    void set_limits(const ConnectionLimits &limits);
    // A reload: applies to the next accept.
    void set_peers(const PeerPolicy &peers) { options_.peers = peers; }
    // Replies to slow work go through here: the connection may be gone.
    FrameConnection *find(std::uint64_t id) const;

    void on_frame(FrameConnection &conn, FramePtr frame) override;
    void on_closed(FrameConnection &conn, const char *reason) override;

  private:
    void accept(int fd);
    bool peer_allowed(int fd);
    void accept_failed(int error);
    static void reap_cb(int, short, void *arg);

    event_base *base_;
    FrameServerOptions options_;
    FrameHandler &handler_;
    Metrics &metrics_;
    std::unique_ptr<UnixListener> listener_;
    std::map<std::uint64_t, std::unique_ptr<FrameConnection>> connections_;
    // Closed connections are freed from the event loop, never inside their own callback.
    std::vector<std::unique_ptr<FrameConnection>> closed_;
    EventPtr reaper_;
    std::uint64_t next_id_ = 1;
    bool accept_failing_ = false; // logged once per episode of failed accepts
    Labels labels_;               // {socket="admin"} on the admin socket's metrics
    // A refused peer may retry in a loop.
    log::LogThrottle log_throttle_;
};

} // namespace levee
