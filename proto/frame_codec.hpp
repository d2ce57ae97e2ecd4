// Length-prefixed framing of levee.Frame messages, shared by the nginx module
// and leveed. No nginx or libevent types: unit-tested on its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "levee.pb-c.h"

namespace levee {

constexpr std::size_t kFrameHeaderBytes = 4;
constexpr std::uint32_t kDefaultMaxFrameBytes = 1u << 20;

struct FrameDeleter {
    void operator()(Levee__Frame *frame) const { levee__frame__free_unpacked(frame, nullptr); }
};
using FramePtr = std::unique_ptr<Levee__Frame, FrameDeleter>;

enum class DecodeStatus {
    kNeedMore,   // not a whole frame yet: read more bytes
    kFrame,      // one frame decoded, `consumed` bytes used
    kOversize,   // the header announces more than the maximum frame size
    kMalformed,  // the payload is not a levee.Frame
    kUnknownType // a valid Frame whose body this build does not know
};

struct DecodeResult {
    DecodeStatus status;
    std::size_t consumed;
    FramePtr frame;
};

const char *decode_status_name(DecodeStatus status);

// Decodes the first frame in [data, data + len). A zero-length payload is
// malformed: every frame carries a body.
DecodeResult decode_frame(const std::uint8_t *data, std::size_t len, std::uint32_t max_frame_bytes);

// Appends the header and the packed frame to `out`. Returns false, leaving
// `out` unchanged, if the frame would exceed `max_frame_bytes`.
bool encode_frame(const Levee__Frame &frame, std::vector<std::uint8_t> &out,
                  std::uint32_t max_frame_bytes = kDefaultMaxFrameBytes);

// Bytes encode_frame would append.
std::size_t encoded_frame_size(const Levee__Frame &frame);

} // namespace levee
