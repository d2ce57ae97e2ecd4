#include <gtest/gtest.h>

#include "frame_codec.hpp"

namespace {

std::vector<std::uint8_t> hello_frame(std::uint64_t id, std::uint32_t version) {
    Levee__Frame frame = LEVEE__FRAME__INIT;
    Levee__Hello hello = LEVEE__HELLO__INIT;
    hello.protocol_version = version;
    hello.client = const_cast<char *>("test");
    hello.pid = 42;
    frame.request_id = id;
    frame.body_case = LEVEE__FRAME__BODY_HELLO;
    frame.hello = &hello;
    std::vector<std::uint8_t> out;
    EXPECT_TRUE(levee::encode_frame(frame, out));
    return out;
}

TEST(FrameCodec, RoundTripsAHello) {
    const auto bytes = hello_frame(7, 1);
    auto r = levee::decode_frame(bytes.data(), bytes.size(), levee::kDefaultMaxFrameBytes);
    ASSERT_EQ(r.status, levee::DecodeStatus::kFrame);
    EXPECT_EQ(r.consumed, bytes.size());
    EXPECT_EQ(r.frame->request_id, 7u);
    ASSERT_EQ(r.frame->body_case, LEVEE__FRAME__BODY_HELLO);
    EXPECT_EQ(r.frame->hello->protocol_version, 1u);
    EXPECT_STREQ(r.frame->hello->client, "test");
    EXPECT_EQ(r.frame->hello->pid, 42u);
}

TEST(FrameCodec, HeaderIsBigEndianPayloadLength) {
    const auto bytes = hello_frame(1, 1);
    const std::size_t payload = bytes.size() - levee::kFrameHeaderBytes;
    EXPECT_EQ(bytes[0], 0);
    EXPECT_EQ(bytes[1], 0);
    EXPECT_EQ(bytes[2], (payload >> 8) & 0xff);
    EXPECT_EQ(bytes[3], payload & 0xff);
}

TEST(FrameCodec, NeedsMoreUntilTheWholeFrameArrived) {
    const auto bytes = hello_frame(1, 1);
    for (std::size_t n = 0; n < bytes.size(); n++) {
        auto r = levee::decode_frame(bytes.data(), n, levee::kDefaultMaxFrameBytes);
        EXPECT_EQ(r.status, levee::DecodeStatus::kNeedMore) << "at " << n << " bytes";
        EXPECT_EQ(r.consumed, 0u);
    }
}

TEST(FrameCodec, DecodesTwoFramesBackToBack) {
    auto bytes = hello_frame(1, 1);
    const auto second = hello_frame(2, 1);
    const std::size_t first_len = bytes.size();
    bytes.insert(bytes.end(), second.begin(), second.end());
    auto r1 = levee::decode_frame(bytes.data(), bytes.size(), levee::kDefaultMaxFrameBytes);
    ASSERT_EQ(r1.status, levee::DecodeStatus::kFrame);
    EXPECT_EQ(r1.consumed, first_len);
    auto r2 = levee::decode_frame(bytes.data() + r1.consumed, bytes.size() - r1.consumed,
                                  levee::kDefaultMaxFrameBytes);
    ASSERT_EQ(r2.status, levee::DecodeStatus::kFrame);
    EXPECT_EQ(r2.frame->request_id, 2u);
}

TEST(FrameCodec, RefusesOversizeFromTheHeaderAlone) {
    const std::uint8_t header[4] = {0x00, 0x20, 0x00, 0x01}; // 2 MiB + 1
    auto r = levee::decode_frame(header, sizeof(header), levee::kDefaultMaxFrameBytes);
    EXPECT_EQ(r.status, levee::DecodeStatus::kOversize);
}

TEST(FrameCodec, EmptyPayloadIsMalformed) {
    const std::uint8_t header[4] = {0, 0, 0, 0};
    EXPECT_EQ(levee::decode_frame(header, 4, 1024).status, levee::DecodeStatus::kMalformed);
}

TEST(FrameCodec, GarbagePayloadIsMalformed) {
    const std::uint8_t bytes[] = {0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff};
    auto r = levee::decode_frame(bytes, sizeof(bytes), 1024);
    EXPECT_EQ(r.status, levee::DecodeStatus::kMalformed);
    EXPECT_EQ(r.consumed, sizeof(bytes));
}

TEST(FrameCodec, FrameWithoutKnownBodyIsUnknownType) {
    // field 99 (varint) = 1: a body from a future protocol
    const std::uint8_t bytes[] = {0, 0, 0, 3, 0x98, 0x06, 0x01};
    auto r = levee::decode_frame(bytes, sizeof(bytes), 1024);
    EXPECT_EQ(r.status, levee::DecodeStatus::kUnknownType);
}

TEST(FrameCodec, EncodeRefusesFramesOverTheLimit) {
    Levee__Frame frame = LEVEE__FRAME__INIT;
    Levee__ProbeRequest probe = LEVEE__PROBE_REQUEST__INIT;
    std::string big(4096, 'x');
    probe.key = const_cast<char *>("k");
    probe.value = big.data();
    frame.body_case = LEVEE__FRAME__BODY_PROBE;
    frame.probe = &probe;
    std::vector<std::uint8_t> out{1, 2, 3};
    EXPECT_FALSE(levee::encode_frame(frame, out, 1024));
    EXPECT_EQ(out.size(), 3u);
    EXPECT_TRUE(levee::encode_frame(frame, out, 8192));
    EXPECT_EQ(out.size(), 3 + levee::encoded_frame_size(frame));
}

} // namespace
