// Which master serves each of the 16384 slots. A plain array of node
// indices, as Redis keeps it: routing is one load. Pure: no I/O, built from
// a CLUSTER SLOTS reply and patched by MOVED.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "crc16.hpp"
#include "host_port.hpp"
#include "reply.hpp"

namespace levee::redis {

class SlotMap {
  public:
    static constexpr uint16_t kNoNode = 0xffff;

    SlotMap(); // every slot unassigned

    // Parses a CLUSTER SLOTS reply. `queried` replaces an empty or "?" host,
    // which Redis sends when it does not know the address clients reach it
    // by. On error `out` is left unchanged.
    static bool from_cluster_slots(const Reply &reply, const HostPort &queried, SlotMap &out, std::string &error);

    uint16_t node_index(uint16_t slot) const { return slots_[slot]; }
    const HostPort *node_for(uint16_t slot) const {
        const uint16_t i = slots_[slot];
        return i == kNoNode ? nullptr : &nodes_[i];
    }
    // Masters, indexed by node_index(); may hold nodes that own no slot
    // anymore after assign().
    const std::vector<HostPort> &nodes() const { return nodes_; }

    // Points one slot at `node` (a MOVED reply), adding the node if new.
    // Returns the node's index.
    uint16_t assign(uint16_t slot, const HostPort &node);
    void assign_range(int first, int last, uint16_t node_index);

    // Contiguous inclusive slot ranges served by `node_index`, ascending.
    std::vector<std::pair<int, int>> ranges_of(uint16_t node_index) const;
    std::size_t covered_slots() const;
    // True when every slot routes to the same address in both maps (node
    // indices may differ).
    bool routes_equal(const SlotMap &other) const;

  private:
    uint16_t index_of(const HostPort &node);

    std::array<uint16_t, kSlotCount> slots_;
    std::vector<HostPort> nodes_;
};

// A MOVED or ASK error's message: "MOVED 3999 127.0.0.1:6381". Redis 7 may
// send ":6381" when it does not know the host clients use: that is the host
// of `from`, the node that answered. False when the message is not one.
bool parse_redirect(const std::string &msg, const HostPort &from, uint16_t &slot, HostPort &to);

} // namespace levee::redis
