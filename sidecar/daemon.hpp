// leveed as a whole: owns the event loop and every part, starts them in
// order, and drains them on SIGTERM.
#pragma once

#include <memory>

#include "config/config.hpp"

namespace levee {

class Daemon {
  public:
    explicit Daemon(Config config);
    ~Daemon();
    Daemon(const Daemon &) = delete;
    Daemon &operator=(const Daemon &) = delete;

    // Runs until SIGTERM/SIGINT and the drain that follows. Returns the exit code.
    int run();

  private:
    struct Parts;
    std::unique_ptr<Parts> parts_;
};

} // namespace levee
