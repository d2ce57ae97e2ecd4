#include "frame_codec.hpp"

namespace levee {

const char *decode_status_name(DecodeStatus status) {
    switch (status) {
    case DecodeStatus::kNeedMore: return "need_more";
    case DecodeStatus::kFrame: return "frame";
    case DecodeStatus::kOversize: return "oversize";
    case DecodeStatus::kMalformed: return "malformed";
    case DecodeStatus::kUnknownType: return "unknown_type";
    }
    return "invalid";
}

DecodeResult decode_frame(const std::uint8_t *data, std::size_t len, std::uint32_t max_frame_bytes) {
    if (len < kFrameHeaderBytes) {
        return {DecodeStatus::kNeedMore, 0, nullptr};
    }
    const std::uint32_t payload = (std::uint32_t{data[0]} << 24) | (std::uint32_t{data[1]} << 16) |
                                  (std::uint32_t{data[2]} << 8) | std::uint32_t{data[3]};
    if (payload > max_frame_bytes) {
        return {DecodeStatus::kOversize, 0, nullptr};
    }
    if (payload == 0) {
        return {DecodeStatus::kMalformed, kFrameHeaderBytes, nullptr};
    }
    if (len - kFrameHeaderBytes < payload) {
        return {DecodeStatus::kNeedMore, 0, nullptr};
    }
    const std::size_t consumed = kFrameHeaderBytes + payload;
    FramePtr frame(levee__frame__unpack(nullptr, payload, data + kFrameHeaderBytes));
    if (!frame) {
        return {DecodeStatus::kMalformed, consumed, nullptr};
    }
    if (frame->body_case == LEVEE__FRAME__BODY__NOT_SET) {
        return {DecodeStatus::kUnknownType, consumed, nullptr};
    }
    return {DecodeStatus::kFrame, consumed, std::move(frame)};
}

std::size_t encoded_frame_size(const Levee__Frame &frame) {
    return kFrameHeaderBytes + levee__frame__get_packed_size(&frame);
}

bool encode_frame(const Levee__Frame &frame, std::vector<std::uint8_t> &out, std::uint32_t max_frame_bytes) {
    const std::size_t payload = levee__frame__get_packed_size(&frame);
    if (payload > max_frame_bytes) {
        return false;
    }
    const std::size_t start = out.size();
    out.resize(start + kFrameHeaderBytes + payload);
    std::uint8_t *p = out.data() + start;
    p[0] = static_cast<std::uint8_t>(payload >> 24);
    p[1] = static_cast<std::uint8_t>(payload >> 16);
    p[2] = static_cast<std::uint8_t>(payload >> 8);
    p[3] = static_cast<std::uint8_t>(payload);
    levee__frame__pack(&frame, p + kFrameHeaderBytes);
    return true;
}

} // namespace levee
