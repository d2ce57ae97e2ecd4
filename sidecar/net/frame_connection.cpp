#include "frame_connection.hpp"

#include <vector>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

namespace levee {

FrameConnection::FrameConnection(event_base *base, int fd, std::uint64_t id, std::uint32_t max_frame_bytes,
                                 FrameSink &sink)
    : id_(id), max_frame_bytes_(max_frame_bytes), sink_(sink),
      bev_(bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE), bufferevent_free) {}

FrameConnection::~FrameConnection() = default;

bool FrameConnection::start() {
    if (!bev_) {
        return false;
    }
    bufferevent_setcb(bev_.get(), read_cb, nullptr, event_cb, this);
    return bufferevent_enable(bev_.get(), EV_READ | EV_WRITE) == 0;
}

std::size_t FrameConnection::output_pending() const {
    return bev_ ? evbuffer_get_length(bufferevent_get_output(bev_.get())) : 0;
}

bool FrameConnection::send(const Levee__Frame &frame) {
    if (closed_) {
        return false;
    }
    // A peer that stops reading must not make leveed hold replies without end.
    if (output_pending() > kMaxOutputBytes) {
        close("output_full");
        return false;
    }
    thread_local std::vector<std::uint8_t> scratch;
    scratch.clear();
    if (!encode_frame(frame, scratch, max_frame_bytes_)) {
        return false;
    }
    return bufferevent_write(bev_.get(), scratch.data(), scratch.size()) == 0;
}

void FrameConnection::close(const char *reason) {
    if (closed_) {
        return;
    }
    closed_ = true;
    bufferevent_disable(bev_.get(), EV_READ);
    sink_.on_closed(*this, reason);
}

void FrameConnection::close_when_flushed(const char *reason) {
    if (closed_ || close_reason_ != nullptr) {
        return;
    }
    close_reason_ = reason;
    bufferevent_disable(bev_.get(), EV_READ);
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
    }
}

void FrameConnection::on_readable() {
    evbuffer *in = bufferevent_get_input(bev_.get());
    while (!closed_ && close_reason_ == nullptr) {
        const std::size_t avail = evbuffer_get_length(in);
        if (avail < kFrameHeaderBytes) {
            return;
        }
        std::uint8_t header[kFrameHeaderBytes];
        evbuffer_copyout(in, header, sizeof(header));
        DecodeResult peek = decode_frame(header, sizeof(header), max_frame_bytes_);
        // Replies already queued still go out: the peer learns what it got right.
        if (peek.status == DecodeStatus::kOversize || peek.status == DecodeStatus::kMalformed) {
            close_when_flushed(decode_status_name(peek.status));
            return;
        }
        const std::size_t need = kFrameHeaderBytes + ((std::size_t{header[0]} << 24) | (std::size_t{header[1]} << 16) |
                                                      (std::size_t{header[2]} << 8) | std::size_t{header[3]});
        if (avail < need) {
            return;
        }
        const auto *data = evbuffer_pullup(in, static_cast<ev_ssize_t>(need));
        DecodeResult r = decode_frame(data, need, max_frame_bytes_);
        evbuffer_drain(in, need);
        if (r.status != DecodeStatus::kFrame) {
            close_when_flushed(decode_status_name(r.status));
            return;
        }
        sink_.on_frame(*this, std::move(r.frame));
    }
}

} // namespace levee
