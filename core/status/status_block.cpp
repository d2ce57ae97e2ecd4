#include "core/status/status_block.hpp"

namespace levee::status {

void count_batch(Block &b, uint64_t records) {
    std::size_t i = 0;
    while (i<kBatchBuckets &&static_cast<double>(records)> kBatchBounds[i]) {
        i++;
    }
    if (i < kBatchBuckets) {
        add(b.batch_buckets[i]);
    }
    add(b.batch_count);
    add(b.batch_records, records);
}

} // namespace levee::status
