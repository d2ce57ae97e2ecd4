#include "config/config_diff.hpp"

#include <cstdio>
#include <functional>

#include "mongo_uri.hpp"

namespace levee {
namespace {

enum class Mask { kNone, kSecret, kUriPassword };

struct Setting {
    const char *key;
    std::function<std::string(const Config &)> raw;
    Mask mask;
    // Copies the setting between configs; null: it needs a restart.
    std::function<void(const Config &from, Config &to)> apply_live;
};

template <typename T> std::string str(const T &v) {
    return std::to_string(v);
}
std::string str(const std::string &v) {
    return v;
}
std::string str(bool on) {
    return on ? "on" : "off";
}
std::string str(log::Level level) {
    return log::level_name(level);
}

std::string octal(unsigned mode) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "%04o", mode);
    return buf;
}

template <typename T> Setting restart(const char *key, T Config::*field) {
    return {key, [field](const Config &c) { return str(c.*field); }, Mask::kNone, nullptr};
}

template <typename T> Setting live(const char *key, T Config::*field) {
    return {key, [field](const Config &c) { return str(c.*field); }, Mask::kNone,
            [field](const Config &from, Config &to) { to.*field = from.*field; }};
}

Setting masked(Setting s, Mask mask) {
    s.mask = mask;
    return s;
}

// The live ones are those the running parts re-read (log, timers, limits)
// or take through a setter; the rest are bound into sockets, files, the
// store clients or the data layout when leveed starts.
const std::vector<Setting> &settings() {
    static const std::vector<Setting> table = {
        restart("socket", &Config::socket_path),
        {"socket_mode", [](const Config &c) { return octal(c.socket_mode); }, Mask::kNone, nullptr},
        restart("socket_group", &Config::socket_group),
        live("allow_users", &Config::allow_users),
        live("allow_groups", &Config::allow_groups),
        {"admin_socket", [](const Config &c) { return c.admin_socket_path(); }, Mask::kNone, nullptr},
        restart("redis", &Config::redis_seeds),
        live("redis_user", &Config::redis_user),
        masked(live("redis_password", &Config::redis_password), Mask::kSecret),
        restart("redis_tls", &Config::redis_tls),
        restart("redis_tls_ca_file", &Config::redis_tls_ca_file),
        restart("redis_tls_cert_file", &Config::redis_tls_cert_file),
        restart("redis_tls_key_file", &Config::redis_tls_key_file),
        restart("redis_tls_server_name", &Config::redis_tls_server_name),
        live("redis_wait_replicas", &Config::redis_wait_replicas),
        live("redis_wait_timeout_ms", &Config::redis_wait_timeout_ms),
        restart("presence_buckets", &Config::presence_buckets),
        masked(restart("mongo", &Config::mongo_uri), Mask::kUriPassword),
        restart("mongo_database", &Config::mongo_database),
        live("mongo_flush_ms", &Config::mongo_flush_ms),
        restart("mongo_ttl_s", &Config::mongo_ttl_s),
        restart("spool_dir", &Config::spool_dir),
        restart("spool_fsync", &Config::spool_fsync),
        live("spool_fsync_interval_ms", &Config::spool_fsync_interval_ms),
        live("spool_max_bytes", &Config::spool_max_bytes),
        restart("metrics_listen", &Config::metrics_listen),
        live("log_file", &Config::log_file),
        live("log_level", &Config::log_level),
        restart("pid_file", &Config::pid_file),
        restart("max_frame_bytes", &Config::max_frame_bytes),
        live("max_connections", &Config::max_connections),
        live("hello_timeout_ms", &Config::hello_timeout_ms),
        live("frame_timeout_ms", &Config::frame_timeout_ms),
        live("max_output_bytes", &Config::max_output_bytes),
        live("max_connection_in_flight", &Config::max_connection_in_flight),
        live("drain_timeout_ms", &Config::drain_timeout_ms),
    };
    return table;
}

std::string shown(const Setting &s, const Config &c) {
    const std::string raw = s.raw(c);
    if (raw.empty()) {
        return "-";
    }
    switch (s.mask) {
    case Mask::kSecret: return "********";
    case Mask::kUriPassword: return redact_mongo_uri(raw);
    case Mask::kNone: break;
    }
    return raw;
}

} // namespace

std::vector<ShownSetting> effective_settings(const Config &config) {
    static const Config defaults;
    std::vector<ShownSetting> out;
    for (const Setting &s : settings()) {
        out.push_back({s.key, shown(s, config), s.raw(config) == s.raw(defaults)});
    }
    return out;
}

std::string format_effective_settings(const Config &config) {
    std::string text;
    for (const ShownSetting &s : effective_settings(config)) {
        text += s.key + std::string(s.key.size() < 24 ? 24 - s.key.size() : 0, ' ') + ' ' + s.value +
                (s.is_default ? "    # default\n" : "\n");
    }
    return text;
}

ConfigChanges diff_config(const Config &running, const Config &next) {
    ConfigChanges changes;
    for (const Setting &s : settings()) {
        if (s.raw(running) != s.raw(next)) {
            (s.apply_live ? changes.live : changes.restart).push_back(s.key);
        }
    }
    return changes;
}

Config merge_live(const Config &running, const Config &next) {
    Config merged = running;
    for (const Setting &s : settings()) {
        if (s.apply_live) {
            s.apply_live(next, merged);
        }
    }
    return merged;
}

std::vector<std::string> shown_setting_names() {
    std::vector<std::string> names;
    for (const Setting &s : settings()) {
        names.emplace_back(s.key);
    }
    return names;
}

} // namespace levee
