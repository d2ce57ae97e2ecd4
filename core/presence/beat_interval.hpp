// What the heartbeat module tells a client about its next beat: the interval
// in Levee-Heartbeat-Interval after a 204, the Retry-After of a 503, and the
// backlog bound that both depend on.
#pragma once

#include <cstddef>
#include <cstdint>

namespace levee::presence {

// The bound on users waiting for leveed's ack: the configured one, else
// about what a zone of `table_bytes` holds with 16-byte keys.
uint64_t backlog_limit(uint64_t configured, size_t table_bytes);

// The interval until the next beat, in ms: `interval_ms` while the table is
// under half the backlog bound, growing linearly to `interval_max_ms` as it
// fills from half to full, and `interval_max_ms` while the worker has no
// link to leveed: fewer beats for the same presence when leveed falls behind.
uint64_t beat_interval_ms(uint64_t interval_ms, uint64_t interval_max_ms, uint64_t waiting, uint64_t backlog,
                          bool link_ready);

// Whole seconds for a header, rounded up so that a client never beats early.
uint64_t header_seconds(uint64_t ms);

// Retry-After of a refused beat: four flush periods, at least one second.
uint64_t retry_after_seconds(uint64_t flush_ms);

} // namespace levee::presence
