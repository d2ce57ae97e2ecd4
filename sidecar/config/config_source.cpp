#include "config/config_source.hpp"

#include <cerrno>
#include <cstdlib>

#include <sys/stat.h>

namespace levee {

ConfigSource ConfigSource::from_command_line(const std::string &config_flag) {
    ConfigSource source;
    if (!config_flag.empty()) {
        source.path = config_flag;
        return source;
    }
    const char *env = std::getenv(kConfigPathEnv);
    source.path = env != nullptr && env[0] != '\0' ? env : kDefaultConfigPath;
    source.optional = true;
    return source;
}

std::string ConfigSource::label() const { return path.empty() ? "leveed" : path; }

std::vector<ConfigError> load_config(const ConfigSource &source, Config &config, bool *used_file) {
    config = Config{};
    std::vector<ConfigError> errors;
    struct stat st;
    // Only a missing default file means "defaults": one that exists but
    // cannot be read is an error, as a given --config FILE always is.
    const bool read_file =
        !source.path.empty() && !(source.optional && ::stat(source.path.c_str(), &st) != 0 && errno == ENOENT);
    if (read_file) {
        errors = load_config_file(source.path, config);
    }
    if (used_file != nullptr) {
        *used_file = read_file;
    }
    for (const auto &[key, value] : source.overrides) {
        const std::string err = apply_setting(key, value, config);
        if (!err.empty()) {
            errors.push_back({0, "--" + key + ": " + err});
        }
    }
    const auto env_errors = apply_environment(config);
    errors.insert(errors.end(), env_errors.begin(), env_errors.end());
    const auto relation_errors = validate_config(config);
    errors.insert(errors.end(), relation_errors.begin(), relation_errors.end());
    return errors;
}

} // namespace levee
