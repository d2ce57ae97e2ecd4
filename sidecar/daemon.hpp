// leveed as a whole: owns the event loop and every part, starts them in
// order, re-reads its settings on SIGHUP, and drains them on SIGTERM.
#pragma once

#include <memory>

#include "config/config.hpp"
#include "config/config_source.hpp"

namespace levee {

class Daemon {
  public:
    // `source` is read again on SIGHUP; `config` is what it gave at start.
    Daemon(Config config, ConfigSource source);
    ~Daemon();
    Daemon(const Daemon &) = delete;
    Daemon &operator=(const Daemon &) = delete;

    // Runs until SIGTERM/SIGINT and the drain that follows. Returns the exit code.
    int run();

  private:
    struct Parts;
    std::unique_ptr<Parts> parts_;
};

// Loads what the settings name beyond their text, as starting would (the
// Redis TLS certificates and key); "" or why not, naming the file.
std::string check_config_files(const Config &config);

} // namespace levee
