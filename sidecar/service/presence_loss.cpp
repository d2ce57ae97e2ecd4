#include "service/presence_loss.hpp"

#include "log.hpp"
#include "metrics.hpp"
#include "reply.hpp"

namespace levee {

bool is_permanent(const redis::Reply &answer) {
    return answer.error_is("WRONGTYPE") || answer.error_is("ERR");
}

PresenceLoss::PresenceLoss(Metrics &metrics) : metrics_(metrics) {
    metrics_.describe("leveed_presence_lost_total", "counter",
                      "Presence records acknowledged although Redis refused them for good (a script error, a key of "
                      "the wrong type), by kind (user: the user's presence, room: the room membership).");
}

void PresenceLoss::settle(std::uint64_t users, std::uint64_t members, const std::string &error, std::int64_t now_ms) {
    if (users == 0 && members == 0 && error.empty()) {
        // Batches without the poison may come between batches with it: the
        // episode ends only after a quiet while, so it is said once.
        if (losing_ && now_ms - last_loss_ms_ >= kQuietMs) {
            log::info("presence_loss_ended", {{"lost_records", lost_}});
            losing_ = false;
            lost_ = 0;
        }
        return;
    }
    metrics_.inc("leveed_presence_lost_total", {{"kind", "user"}}, static_cast<double>(users));
    metrics_.inc("leveed_presence_lost_total", {{"kind", "room"}}, static_cast<double>(members));
    if (!losing_) {
        log::warn("presence_lost", {{"error", error},
                                    {"users", users},
                                    {"room_members", members},
                                    {"kept", "the batch is acknowledged; MongoDB still gets it from the spool"}});
        losing_ = true;
    }
    last_loss_ms_ = now_ms;
    lost_ += users + members;
}

} // namespace levee
