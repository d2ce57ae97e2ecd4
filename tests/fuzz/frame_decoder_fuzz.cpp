// libFuzzer target: the bytes a peer can put on leveed's socket, decoded the
// way FrameConnection does (frame after frame), plus the spool's record
// decoder that reads leveed's own files back after a crash.
#include <cstddef>
#include <cstdint>

#include "frame_codec.hpp"
#include "spool.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    std::size_t at = 0;
    while (at < size) {
        levee::DecodeResult r = levee::decode_frame(data + at, size - at, 64 * 1024);
        if (r.status != levee::DecodeStatus::kFrame) {
            break;
        }
        // A decoded frame must re-encode within the limit it was read under.
        std::vector<std::uint8_t> out;
        levee::encode_frame(*r.frame, out, 1u << 20);
        at += r.consumed;
    }
    levee::SpoolRecord record;
    if (levee::decode_spool_payload(data, size, record)) {
        const std::string again = levee::encode_spool_payload(record);
        if (again.size() != size) {
            __builtin_trap();
        }
    }
    return 0;
}
