// Hands completions from a worker thread back to the libevent loop thread, so
// that callbacks into the rest of leveed always run on the loop.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <mutex>

#include "event_ptr.hpp"

namespace levee {

class LoopPoster {
  public:
    explicit LoopPoster(event_base *base);
    ~LoopPoster();
    LoopPoster(const LoopPoster &) = delete;
    LoopPoster &operator=(const LoopPoster &) = delete;

    // Thread-safe. `fn` runs on the loop thread, or never if the poster is
    // destroyed first.
    void post(std::function<void()> fn);

  private:
    static void wake_cb(int, short, void *arg);

    std::mutex mutex_;
    std::deque<std::function<void()>> pending_;
    EventPtr wake_;
};

} // namespace levee
