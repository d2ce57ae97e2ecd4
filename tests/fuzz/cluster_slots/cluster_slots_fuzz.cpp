// libFuzzer target: what a Redis node may answer leveed, read by hiredis's
// own reply parser as on the wire (RESP), bounded as leveed's connections
// bound it (new_reply_reader). A reply is taken as the answer to
// CLUSTER SLOTS; an error reply also as a MOVED/ASK redirect. A map that
// parses routes every slot to one of its nodes or to none, and a redirect
// that parses points its slot where it says.
#include <cstddef>
#include <cstdint>
#include <string>

#include <hiredis/hiredis.h>

#include "reply.hpp"
#include "slot_map.hpp"

namespace {

using levee::redis::HostPort;
using levee::redis::Reply;
using levee::redis::SlotMap;

void check_map(const SlotMap &map) {
    std::size_t routed = 0;
    for (int slot = 0; slot < levee::redis::kSlotCount; ++slot) {
        const std::uint16_t i = map.node_index(static_cast<std::uint16_t>(slot));
        if (i != SlotMap::kNoNode) {
            if (i >= map.nodes().size() || map.nodes()[i].port < 1 || map.nodes()[i].port > 65535) {
                __builtin_trap();
            }
            ++routed;
        }
    }
    std::size_t in_ranges = 0;
    for (std::size_t i = 0; i < map.nodes().size(); ++i) {
        for (const auto &[first, last] : map.ranges_of(static_cast<std::uint16_t>(i))) {
            in_ranges += static_cast<std::size_t>(last - first + 1);
        }
    }
    if (routed != map.covered_slots() || routed != in_ranges || !map.routes_equal(map)) {
        __builtin_trap();
    }
}

void check_redirect(const Reply &reply, SlotMap &map) {
    if (!reply.error_is("MOVED") && !reply.error_is("ASK")) {
        return;
    }
    const HostPort from{"10.0.0.9", 7000};
    std::uint16_t slot = 0;
    HostPort to;
    if (!levee::redis::parse_redirect(reply.str, from, slot, to)) {
        return;
    }
    if (slot >= levee::redis::kSlotCount || to.port < 1 || to.port > 65535) {
        __builtin_trap();
    }
    map.assign(slot, to);
    const HostPort *now = map.node_for(slot);
    if (now == nullptr || *now != to) {
        __builtin_trap();
    }
    check_map(map);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    redisReader *reader = levee::redis::new_reply_reader();
    if (redisReaderFeed(reader, reinterpret_cast<const char *>(data), size) != REDIS_OK) {
        redisReaderFree(reader);
        return 0;
    }
    SlotMap map;
    for (int n = 0; n < 64; ++n) {
        void *raw = nullptr;
        if (redisReaderGetReply(reader, &raw) != REDIS_OK || raw == nullptr) {
            break;
        }
        const Reply reply = Reply::from_hiredis(*static_cast<redisReply *>(raw));
        freeReplyObject(raw);
        SlotMap parsed;
        std::string error;
        if (SlotMap::from_cluster_slots(reply, HostPort{"10.0.0.9", 7000}, parsed, error)) {
            check_map(parsed);
            map = parsed;
        }
        check_redirect(reply, map);
    }
    redisReaderFree(reader);
    return 0;
}
