// One peer on leveed's socket: reads length-prefixed frames, writes replies.
// A malformed, truncated, oversize or unknown frame closes this connection
// only; the server counts why. So does a peer that holds a slot without
// talking (no hello in time, a frame left half-sent) or without reading.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "event_ptr.hpp"
#include "frame_codec.hpp"

struct bufferevent;
struct event_base;

namespace levee {

class FrameConnection;

class FrameSink {
  public:
    virtual ~FrameSink() = default;
    virtual void on_frame(FrameConnection &conn, FramePtr frame) = 0;
    // The connection is gone after this returns. `reason` is a metric label.
    virtual void on_closed(FrameConnection &conn, const char *reason) = 0;
};

// What one connection may hold of leveed, fixed when it is accepted.
struct ConnectionLimits {
    std::uint32_t max_frame_bytes = 1u << 20;
    // From accept to an accepted hello ("hello_timeout"). nginx links send
    // nothing once they said hello until there is work (no keepalives), so
    // this is the only idle limit: a link that said hello stays for ever.
    std::uint32_t hello_timeout_ms = 5000;
    // From a frame's first byte to its last ("frame_timeout"), and the
    // longest a queued reply may wait for the peer to read ("slow_reader").
    std::uint32_t frame_timeout_ms = 10000;
    // Replies queued beyond this close the connection ("slow_reader").
    std::uint32_t max_output_bytes = 8u << 20;
};

// A global limit zone as nginx declared it at hello: its leases must ask
// for this bucket, nothing else.
struct DeclaredZone {
    std::uint64_t period_us = 0;
    std::uint32_t capacity = 0;
};
using DeclaredZones = std::unordered_map<std::string, DeclaredZone>;

class FrameConnection {
  public:
    FrameConnection(event_base *base, int fd, std::uint64_t id, const ConnectionLimits &limits, FrameSink &sink);
    ~FrameConnection();
    FrameConnection(const FrameConnection &) = delete;
    FrameConnection &operator=(const FrameConnection &) = delete;

    bool start();
    bool send(const Levee__Frame &frame);
    // Stops reading and reports the close to the sink (once).
    void close(const char *reason);
    // Stops reading now and closes once everything queued was written.
    void close_when_flushed(const char *reason);

    std::uint64_t id() const { return id_; }
    std::size_t output_pending() const;

    // Called by the service once the peer said hello in a version we speak.
    void hello_accepted();
    bool hello_done() const { return hello_done_; }
    std::string peer;
    // Work items of this connection's requests still unanswered (dispatcher).
    std::uint64_t in_flight = 0;
    // Accepted on the admin socket: administrative frames (probe) allowed.
    bool admin = false;
    // What the peer's hello declared (dispatcher): the zones its leases may
    // name, the TTLs of its registries.
    DeclaredZones zones;
    std::vector<std::uint32_t> registry_ttl_ms;

  private:
    static void read_cb(bufferevent *bev, void *arg);
    static void event_cb(bufferevent *bev, short what, void *arg);
    static void write_cb(bufferevent *bev, void *arg);
    static void hello_timeout_cb(int, short, void *arg);
    static void frame_timeout_cb(int, short, void *arg);
    void on_readable();

    std::uint64_t id_;
    ConnectionLimits limits_;
    FrameSink &sink_;
    std::unique_ptr<bufferevent, void (*)(bufferevent *)> bev_;
    EventPtr hello_timer_;
    EventPtr frame_timer_;
    bool hello_done_ = false;
    bool closed_ = false;
    const char *close_reason_ = nullptr; // set by close_when_flushed
};

} // namespace levee
