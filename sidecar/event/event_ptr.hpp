// Owning handles for libevent events, one way for every part of leveed:
// freeing the handle takes a pending event off its loop (event_free).
#pragma once

#include <memory>

#include <event2/event.h>

namespace levee {

struct EventFree {
    void operator()(event *ev) const { event_free(ev); }
};

using EventPtr = std::unique_ptr<event, EventFree>;

// A one-shot timer that calls cb(-1, EV_TIMEOUT, arg) after `ms`; empty when
// it could not be armed (the caller then goes without its deadline).
inline EventPtr start_timer(event_base *base, int ms, event_callback_fn cb, void *arg) {
    EventPtr ev(evtimer_new(base, cb, arg));
    const timeval tv{ms / 1000, (ms % 1000) * 1000};
    if (ev && evtimer_add(ev.get(), &tv) != 0) {
        ev.reset();
    }
    return ev;
}

} // namespace levee
