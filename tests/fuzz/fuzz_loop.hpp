// What the fuzz targets that drive leveed's own event loop share: one
// libevent base for the process, pumped by the target itself (no threads).
#pragma once

#include <memory>

#include <event2/event.h>

namespace levee::fuzz {

struct BaseFree {
    void operator()(event_base *b) const { event_base_free(b); }
};
using BasePtr = std::unique_ptr<event_base, BaseFree>;

// Runs what is ready, `rounds` times or until `done()`: a count, never a
// clock, so a slow machine changes nothing.
template <typename Pred> bool pump(event_base *base, int rounds, Pred done) {
    for (int i = 0; i < rounds && !done(); ++i) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    return done();
}

} // namespace levee::fuzz
