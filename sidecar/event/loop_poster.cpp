#include "loop_poster.hpp"

#include <event2/event.h>

namespace levee {

LoopPoster::LoopPoster(event_base *base) : wake_(event_new(base, -1, 0, wake_cb, this)) {}

LoopPoster::~LoopPoster() = default;

void LoopPoster::post(std::function<void()> fn) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        pending_.push_back(std::move(fn));
    }
    // Needs evthread_use_pthreads() (leveed's main calls it): wakes the loop.
    event_active(wake_.get(), 0, 0);
}

void LoopPoster::wake_cb(int, short, void *arg) {
    auto *self = static_cast<LoopPoster *>(arg);
    std::deque<std::function<void()>> ready;
    {
        std::lock_guard<std::mutex> lock(self->mutex_);
        ready.swap(self->pending_);
    }
    for (auto &fn : ready) {
        fn();
    }
}

} // namespace levee
