// Where leveed's settings come from, read the same way at start, by
// --check-config and on SIGHUP: the file (or the defaults when the default
// file is absent), then the command-line flags, then the environment.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "config/config.hpp"

namespace levee {

constexpr const char *kDefaultConfigPath = "/etc/levee/leveed.conf";
// Moves the default file (tests, packagers); --config still wins.
constexpr const char *kConfigPathEnv = "LEVEE_CONFIG";

struct ConfigSource {
    std::string path;                                           // empty: built-in defaults only
    bool optional = false;                                      // the default file: absent means "run on the defaults"
    std::vector<std::pair<std::string, std::string>> overrides; // (key, value) from flags

    // `--config FILE` when given, else LEVEE_CONFIG or /etc/levee/leveed.conf if present.
    static ConfigSource from_command_line(const std::string &config_flag);
    // What error lines are prefixed with: the file, or "leveed" with no file.
    std::string label() const;
};

// Builds `config` from defaults and the source; every error found, not the
// first, including what start would meet on this host (socket_group exists,
// log_file can be opened).
// `used_file` says whether a file was read (false: running on the defaults).
std::vector<ConfigError> load_config(const ConfigSource &source, Config &config, bool *used_file = nullptr);

} // namespace levee
