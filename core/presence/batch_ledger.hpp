// One worker's batches of beats sent to leveed and not answered yet, and how
// each is settled in the presence table by what became of it.
//
// The table decides per entry (Table::settle): an acknowledged batch frees
// what it carried unless a newer beat came meanwhile; every other outcome
// sends it all again. An entry no longer carried by the batch (swept after a
// timeout, re-sent in another batch, by this worker or another) is left as
// it is, so a late answer changes nothing. The ledger decides which batch an
// answer is for, and which batches a lost link leaves unanswered.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/presence/presence_table.hpp"

namespace levee::presence {

// What became of a batch.
enum class BatchOutcome {
    kAcknowledged, // PresenceAck ok: in leveed's spool and in Redis
    kRefused,      // PresenceAck not ok
    kLinkLost,     // the link carrying it closed before its ack
    kNotSent,      // the write failed or closed the link: no ack will come
};

// Whether the outcome frees what the batch carried (else it is sent again).
constexpr bool outcome_frees(BatchOutcome o) {
    return o == BatchOutcome::kAcknowledged;
}

// A batch waiting for its ack. The records and key bytes belong to the
// caller, who frees them after settling.
struct PendingBatch {
    uint64_t request_id; // of the frame that carried it
    uint32_t batch;      // Table::next_batch
    size_t n;
    Taken *recs;
    unsigned char *keys;
};

// Settles `b` in `t` by its outcome; returns how many entries it still carried.
size_t settle_batch(Table &t, const PendingBatch &b, BatchOutcome outcome);

class BatchLedger {
  public:
    static constexpr size_t kCapacity = 32; // batches one worker may have waiting

    size_t size() const { return n_; }
    bool full() const { return n_ == kCapacity; }

    // false when full.
    bool add(const PendingBatch &b);
    // Removes the batch that `request_id` carried into *out; false when none
    // waits (an answer after the link that carried it was lost).
    bool take(uint64_t request_id, PendingBatch *out);
    // Removes any one batch into *out; false when none is left. The link is
    // lost: none of them will be answered.
    bool take_any(PendingBatch *out);

  private:
    PendingBatch batches_[kCapacity] = {};
    size_t n_ = 0;
};

} // namespace levee::presence
