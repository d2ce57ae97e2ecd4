// One peer on leveed's socket: reads length-prefixed frames, writes replies.
// A malformed, truncated, oversize or unknown frame closes this connection
// only; the server counts why.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

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

class FrameConnection {
  public:
    // Replies queued for a peer beyond this close its connection (counted as "output_full").
    static constexpr std::size_t kMaxOutputBytes = 64u << 20;

    FrameConnection(event_base *base, int fd, std::uint64_t id, std::uint32_t max_frame_bytes, FrameSink &sink);
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

    // Filled by the service once the peer said hello.
    bool hello_done = false;
    std::string peer;

  private:
    static void read_cb(bufferevent *bev, void *arg);
    static void event_cb(bufferevent *bev, short what, void *arg);
    static void write_cb(bufferevent *bev, void *arg);
    void on_readable();

    std::uint64_t id_;
    std::uint32_t max_frame_bytes_;
    FrameSink &sink_;
    std::unique_ptr<bufferevent, void (*)(bufferevent *)> bev_;
    bool closed_ = false;
    const char *close_reason_ = nullptr; // set by close_when_flushed
};

} // namespace levee
