#include "keys.hpp"

namespace levee::redis::keys {
namespace {

std::string tagged(std::string_view prefix, std::string_view tag) {
    std::string out;
    out.reserve(prefix.size() + tag.size() + 2);
    out.append(prefix).append(1, '{').append(tag).append(1, '}');
    return out;
}

} // namespace

std::string limit_bucket(std::string_view zone, std::string_view key, std::uint64_t period_us, std::uint32_t capacity) {
    std::string tag;
    tag.append(zone).append(1, ':').append(key);
    return tagged(kLimitPrefix, tag) + ":" + std::to_string(period_us) + ":" + std::to_string(capacity);
}

std::string limit_leases(std::string_view bucket) {
    return std::string(bucket) + ":leases";
}

std::string presence_bucket(std::uint16_t bucket, std::int64_t ttl_ms) {
    return tagged(kPresencePrefix, "b" + std::to_string(bucket)) + ":" + std::to_string(ttl_ms);
}

std::string room(std::string_view room) {
    return tagged(kRoomPrefix, room);
}

std::string registry(std::string_view key) {
    return tagged(kRegistryPrefix, key);
}

std::string probe(std::string_view key) {
    return tagged(kProbePrefix, key);
}

} // namespace levee::redis::keys
