// One PresenceBatch frame, one record per user, as the module sends a flush
// window's beats. Used by `leveectl beat` and the presence load generators.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "levee.pb-c.h"

namespace levee::ctl {

inline std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// The frame points into this object's vectors: keep it alive and unmoved
// until the frame is sent.
struct PresenceBatchFrame {
    std::vector<std::string> names;
    std::vector<Levee__PresenceRecord> records;
    std::vector<Levee__PresenceRecord *> pointers;
    Levee__PresenceBatch batch = LEVEE__PRESENCE_BATCH__INIT;
    Levee__Frame frame = LEVEE__FRAME__INIT;

    PresenceBatchFrame(std::vector<std::string> users, const char *room, std::int64_t seen) : names(std::move(users)) {
        records.resize(names.size());
        pointers.resize(names.size());
        for (std::size_t i = 0; i < names.size(); i++) {
            levee__presence_record__init(&records[i]);
            records[i].user = const_cast<char *>(names[i].c_str());
            records[i].room = const_cast<char *>(room);
            records[i].last_seen_ms = seen;
            pointers[i] = &records[i];
        }
        batch.ttl_ms = 180000;
        batch.n_records = names.size();
        batch.records = pointers.data();
        frame.body_case = LEVEE__FRAME__BODY_PRESENCE_BATCH;
        frame.presence_batch = &batch;
    }
    PresenceBatchFrame(const PresenceBatchFrame &) = delete;
    PresenceBatchFrame &operator=(const PresenceBatchFrame &) = delete;
};

} // namespace levee::ctl
