#include "frame_connection.hpp"

#include <vector>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

namespace levee {
namespace {

timeval ms_to_tv(std::uint32_t ms) {
    return {static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
}

} // namespace

FrameConnection::FrameConnection(event_base *base, int fd, std::uint64_t id, const ConnectionLimits &limits,
                                 FrameSink &sink)
    : id_(id), limits_(limits), sink_(sink),
      bev_(bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE), bufferevent_free),
      hello_timer_(evtimer_new(base, hello_timeout_cb, this)), frame_timer_(evtimer_new(base, frame_timeout_cb, this)) {
}

FrameConnection::~FrameConnection() = default;

bool FrameConnection::start() {
    if (!bev_ || !hello_timer_ || !frame_timer_) {
        return false;
    }
    bufferevent_setcb(bev_.get(), read_cb, nullptr, event_cb, this);
    // libevent arms the write timeout only while replies wait to be written:
    // it measures a peer that does not read, never an idle one.
    const timeval write_tv = ms_to_tv(limits_.frame_timeout_ms);
    bufferevent_set_timeouts(bev_.get(), nullptr, &write_tv);
    const timeval hello_tv = ms_to_tv(limits_.hello_timeout_ms);
    return evtimer_add(hello_timer_.get(), &hello_tv) == 0 && bufferevent_enable(bev_.get(), EV_READ | EV_WRITE) == 0;
}

void FrameConnection::hello_accepted() {
    hello_done_ = true;
    evtimer_del(hello_timer_.get());
}

std::size_t FrameConnection::output_pending() const {
    return bev_ ? evbuffer_get_length(bufferevent_get_output(bev_.get())) : 0;
}

bool FrameConnection::send(const Levee__Frame &frame) {
    if (closed_) {
        return false;
    }
    thread_local std::vector<std::uint8_t> scratch;
    scratch.clear();
    if (!encode_frame(frame, scratch, limits_.max_frame_bytes)) {
        return false;
    }
    // A peer that stops reading must not make leveed hold its replies.
    if (output_pending() + scratch.size() > limits_.max_output_bytes) {
        close("slow_reader");
        return false;
    }
    return bufferevent_write(bev_.get(), scratch.data(), scratch.size()) == 0;
}

void FrameConnection::close(const char *reason) {
    if (closed_) {
        return;
    }
    closed_ = true;
    bufferevent_disable(bev_.get(), EV_READ | EV_WRITE);
    evtimer_del(hello_timer_.get());
    evtimer_del(frame_timer_.get());
    sink_.on_closed(*this, reason);
}

void FrameConnection::close_when_flushed(const char *reason) {
    if (closed_ || close_reason_ != nullptr) {
        return;
    }
    close_reason_ = reason;
    bufferevent_disable(bev_.get(), EV_READ);
    evtimer_del(frame_timer_.get());
    if (output_pending() == 0) {
        close(reason);
        return;
    }
    bufferevent_setcb(bev_.get(), read_cb, write_cb, event_cb, this);
}

void FrameConnection::write_cb(bufferevent *, void *arg) {
    auto *self = static_cast<FrameConnection *>(arg);
    if (self->close_reason_ != nullptr && self->output_pending() == 0) {
        self->close(self->close_reason_);
    }
}

void FrameConnection::read_cb(bufferevent *, void *arg) {
    static_cast<FrameConnection *>(arg)->on_readable();
}

void FrameConnection::event_cb(bufferevent *, short what, void *arg) {
    auto *self = static_cast<FrameConnection *>(arg);
    if (what & BEV_EVENT_EOF) {
        // Bytes of an unfinished frame left in the buffer: the peer truncated it.
        const bool partial = evbuffer_get_length(bufferevent_get_input(self->bev_.get())) > 0;
        self->close(partial ? "truncated" : "eof");
    } else if (what & BEV_EVENT_ERROR) {
        self->close("error");
    } else if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_WRITING)) {
        self->close("slow_reader");
    }
}

void FrameConnection::hello_timeout_cb(int, short, void *arg) {
    auto *self = static_cast<FrameConnection *>(arg);
    if (!self->hello_done_) {
        self->close("hello_timeout");
    }
}

void FrameConnection::frame_timeout_cb(int, short, void *arg) {
    static_cast<FrameConnection *>(arg)->close("frame_timeout");
}

void FrameConnection::on_readable() {
    evbuffer *in = bufferevent_get_input(bev_.get());
    bool completed = false;
    while (!closed_ && close_reason_ == nullptr) {
        const std::size_t avail = evbuffer_get_length(in);
        if (avail < kFrameHeaderBytes) {
            break;
        }
        std::uint8_t header[kFrameHeaderBytes];
        evbuffer_copyout(in, header, sizeof(header));
        DecodeResult peek = decode_frame(header, sizeof(header), limits_.max_frame_bytes);
        // Replies already queued still go out: the peer learns what it got right.
        if (peek.status == DecodeStatus::kOversize || peek.status == DecodeStatus::kMalformed) {
            close_when_flushed(decode_status_name(peek.status));
            return;
        }
        const std::size_t need = kFrameHeaderBytes + ((std::size_t{header[0]} << 24) | (std::size_t{header[1]} << 16) |
                                                      (std::size_t{header[2]} << 8) | std::size_t{header[3]});
        if (avail < need) {
            break;
        }
        const auto *data = evbuffer_pullup(in, static_cast<ev_ssize_t>(need));
        DecodeResult r = decode_frame(data, need, limits_.max_frame_bytes);
        evbuffer_drain(in, need);
        if (r.status != DecodeStatus::kFrame) {
            close_when_flushed(decode_status_name(r.status));
            return;
        }
        completed = true;
        sink_.on_frame(*this, std::move(r.frame));
    }
    if (closed_ || close_reason_ != nullptr) {
        return;
    }
    // The clock of a frame starts at its first byte: bytes that trickle in
    // must not keep a half-sent frame (slowloris) alive.
    if (evbuffer_get_length(in) == 0) {
        evtimer_del(frame_timer_.get());
    } else if (completed || !evtimer_pending(frame_timer_.get(), nullptr)) {
        const timeval tv = ms_to_tv(limits_.frame_timeout_ms);
        evtimer_add(frame_timer_.get(), &tv);
    }
}

} // namespace levee
