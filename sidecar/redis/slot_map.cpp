#include "slot_map.hpp"

#include <algorithm>

namespace levee::redis {
namespace {

bool parse_endpoint(const Reply &r, const HostPort &queried, HostPort &out, std::string &error) {
    // [host, port, node-id, {metadata}] since Redis 7; [host, port, id] before.
    if (r.type != Reply::Type::Array || r.elements.size() < 2 || r.elements[0].type != Reply::Type::String ||
        r.elements[1].type != Reply::Type::Integer) {
        error = "malformed node entry in CLUSTER SLOTS";
        return false;
    }
    const std::string &host = r.elements[0].str;
    const long long port = r.elements[1].integer;
    if (port < 1 || port > 65535) {
        error = "invalid port in CLUSTER SLOTS";
        return false;
    }
    out.host = (host.empty() || host == "?") ? queried.host : host;
    out.port = static_cast<int>(port);
    return true;
}

} // namespace

SlotMap::SlotMap() {
    slots_.fill(kNoNode);
}

bool SlotMap::from_cluster_slots(const Reply &reply, const HostPort &queried, SlotMap &out, std::string &error) {
    if (reply.type != Reply::Type::Array) {
        error = reply.is_error() ? "CLUSTER SLOTS failed: " + reply.str : "CLUSTER SLOTS reply is not an array";
        return false;
    }
    SlotMap map;
    for (const Reply &range : reply.elements) {
        if (range.type != Reply::Type::Array || range.elements.size() < 3 ||
            range.elements[0].type != Reply::Type::Integer || range.elements[1].type != Reply::Type::Integer) {
            error = "malformed slot range in CLUSTER SLOTS";
            return false;
        }
        const long long first = range.elements[0].integer;
        const long long last = range.elements[1].integer;
        if (first < 0 || last >= kSlotCount || first > last) {
            error = "slot range out of bounds in CLUSTER SLOTS";
            return false;
        }
        HostPort master;
        if (!parse_endpoint(range.elements[2], queried, master, error)) {
            return false;
        }
        map.assign_range(static_cast<int>(first), static_cast<int>(last), map.index_of(master));
    }
    if (map.nodes_.empty()) {
        error = "CLUSTER SLOTS lists no slots (cluster not configured?)";
        return false;
    }
    out = std::move(map);
    return true;
}

uint16_t SlotMap::index_of(const HostPort &node) {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
        if (nodes_[i] == node) {
            return static_cast<uint16_t>(i);
        }
    }
    nodes_.push_back(node);
    return static_cast<uint16_t>(nodes_.size() - 1);
}

uint16_t SlotMap::assign(uint16_t slot, const HostPort &node) {
    const uint16_t i = index_of(node);
    slots_[slot & (kSlotCount - 1)] = i;
    return i;
}

void SlotMap::assign_range(int first, int last, uint16_t node_index) {
    for (int s = first; s <= last; ++s) {
        slots_[s] = node_index;
    }
}

std::vector<std::pair<int, int>> SlotMap::ranges_of(uint16_t node_index) const {
    std::vector<std::pair<int, int>> ranges;
    int s = 0;
    while (s < kSlotCount) {
        if (slots_[s] != node_index) {
            ++s;
            continue;
        }
        const int first = s;
        while (s < kSlotCount && slots_[s] == node_index) {
            ++s;
        }
        ranges.emplace_back(first, s - 1);
    }
    return ranges;
}

std::size_t SlotMap::covered_slots() const {
    std::size_t n = 0;
    for (uint16_t i : slots_) {
        n += (i != kNoNode);
    }
    return n;
}

bool SlotMap::routes_equal(const SlotMap &other) const {
    for (int s = 0; s < kSlotCount; ++s) {
        const HostPort *a = node_for(static_cast<uint16_t>(s));
        const HostPort *b = other.node_for(static_cast<uint16_t>(s));
        if ((a == nullptr) != (b == nullptr) || (a != nullptr && *a != *b)) {
            return false;
        }
    }
    return true;
}

bool parse_redirect(const std::string &msg, const HostPort &from, uint16_t &slot, HostPort &to) {
    const auto sp1 = msg.find(' ');
    const auto sp2 = sp1 == std::string::npos ? std::string::npos : msg.find(' ', sp1 + 1);
    if (sp2 == std::string::npos) {
        return false;
    }
    const std::string slot_text = msg.substr(sp1 + 1, sp2 - sp1 - 1);
    if (slot_text.empty() || slot_text.size() > 5 ||
        !std::all_of(slot_text.begin(), slot_text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return false;
    }
    const int s = std::stoi(slot_text);
    if (s >= kSlotCount) {
        return false;
    }
    std::string addr = msg.substr(sp2 + 1);
    if (!addr.empty() && addr.front() == ':') {
        addr = from.host + addr;
    }
    std::string error;
    if (!parse_host_port(addr, to, error)) {
        return false;
    }
    slot = static_cast<uint16_t>(s);
    return true;
}

} // namespace levee::redis
