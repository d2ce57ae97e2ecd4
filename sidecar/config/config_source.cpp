#include "config/config_source.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

namespace levee {
namespace {

// What start would trip over on this host, beyond the file's own syntax:
// a group that does not exist, a log file leveed's user cannot open.
std::vector<ConfigError> check_host(const Config &config) {
    std::vector<ConfigError> errors;
    if (!config.socket_group.empty() && ::getgrnam(config.socket_group.c_str()) == nullptr) {
        errors.push_back({0, "socket_group \"" + config.socket_group + "\": no such group"});
    }
    if (!config.log_file.empty()) {
        const std::string &path = config.log_file;
        const auto slash = path.rfind('/');
        const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
        struct stat st;
        const bool exists = ::stat(path.c_str(), &st) == 0;
        if (exists ? ::access(path.c_str(), W_OK) != 0 : ::access(dir.c_str(), W_OK | X_OK) != 0) {
            errors.push_back({0, "log_file " + path + " cannot be opened for writing: " + std::strerror(errno)});
        }
    }
    return errors;
}

} // namespace

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

std::string ConfigSource::label() const {
    return path.empty() ? "leveed" : path;
}

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
    const auto host_errors = check_host(config);
    errors.insert(errors.end(), host_errors.begin(), host_errors.end());
    return errors;
}

} // namespace levee
