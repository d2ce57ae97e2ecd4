#include "core/sticky/registry_flush.hpp"

namespace levee::sticky {

bool FlushSchedule::flush_now(RegistryBuffer::Put put, size_t size, size_t max_keys) {
    if (early_ || put != RegistryBuffer::Put::kAdded || size < max_keys / 2) {
        return false;
    }
    early_ = true;
    return true;
}

FlushStep flush_step(size_t size, size_t max_keys, bool link_ready) {
    if (size == 0) {
        return FlushStep::kNothing;
    }
    if (link_ready) {
        return FlushStep::kSend;
    }
    return size == max_keys ? FlushStep::kDiscard : FlushStep::kHold;
}

} // namespace levee::sticky
