#include "core/presence/batch_ledger.hpp"

namespace levee::presence {

size_t settle_batch(Table &t, const PendingBatch &b, BatchOutcome outcome) {
    return t.settle(b.batch, b.recs, b.n, b.keys, outcome_frees(outcome));
}

bool BatchLedger::add(const PendingBatch &b) {
    if (full()) {
        return false;
    }
    batches_[n_++] = b;
    return true;
}

bool BatchLedger::take(uint64_t request_id, PendingBatch *out) {
    for (size_t i = 0; i < n_; i++) {
        if (batches_[i].request_id == request_id) {
            *out = batches_[i];
            batches_[i] = batches_[--n_];
            return true;
        }
    }
    return false;
}

bool BatchLedger::take_any(PendingBatch *out) {
    if (n_ == 0) {
        return false;
    }
    *out = batches_[--n_];
    return true;
}

} // namespace levee::presence
