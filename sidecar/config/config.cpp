#include "config.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include <sys/un.h>

#include "core/link/frame_bounds.hpp"
#include "host_port.hpp"
#include "mongo_uri.hpp"
#include "net/admin_socket.hpp"
#include "net/peer_credentials.hpp"

namespace levee {
namespace {

std::string trim(const std::string &s) {
    const char *ws = " \t\r";
    const auto b = s.find_first_not_of(ws);
    if (b == std::string::npos) {
        return "";
    }
    const auto e = s.find_last_not_of(ws);
    return s.substr(b, e - b + 1);
}

bool parse_u32(const std::string &v, std::uint32_t min, std::uint32_t max, std::uint32_t &out) {
    if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos || v.size() > 10) {
        return false;
    }
    const unsigned long long n = std::stoull(v);
    if (n < min || n > max) {
        return false;
    }
    out = static_cast<std::uint32_t>(n);
    return true;
}

// Sizes accept k/m/g suffixes (binary), as nginx does.
bool parse_size64(const std::string &v, std::uint64_t min, std::uint64_t max, std::uint64_t &out) {
    if (v.empty()) {
        return false;
    }
    std::uint64_t mult = 1;
    std::string digits = v;
    const char last = static_cast<char>(std::tolower(static_cast<unsigned char>(v.back())));
    if (last == 'k' || last == 'm' || last == 'g') {
        mult = last == 'k' ? 1024 : last == 'm' ? 1024 * 1024 : 1024 * 1024 * 1024;
        digits.pop_back();
    }
    std::uint32_t n;
    if (!parse_u32(digits, 0, UINT32_MAX, n)) {
        return false;
    }
    const std::uint64_t total = std::uint64_t{n} * mult;
    if (total < min || total > max) {
        return false;
    }
    out = total;
    return true;
}

bool parse_size(const std::string &v, std::uint32_t min, std::uint32_t max, std::uint32_t &out) {
    std::uint64_t n;
    if (!parse_size64(v, min, max, n)) {
        return false;
    }
    out = static_cast<std::uint32_t>(n);
    return true;
}

std::string check_socket_path(const char *key, const std::string &v) {
    if (v.empty() || v[0] != '/') {
        return std::string(key) + " must be an absolute path";
    }
    if (v.size() >= sizeof(sockaddr_un{}.sun_path)) {
        return std::string(key) + " path is longer than 107 bytes";
    }
    return "";
}

// A certificate or key file: absolute, so that it means the same to
// --check-config, to leveed started by systemd and after a SIGHUP.
std::function<std::string(const std::string &, Config &)> tls_file(const char *key, std::string Config::*field) {
    return [key, field](const std::string &v, Config &c) -> std::string {
        if (v.empty() || v[0] != '/') {
            return std::string(key) + " must be an absolute path";
        }
        c.*field = v;
        return "";
    };
}

bool valid_host_port(const std::string &v) {
    const auto colon = v.rfind(':');
    if (colon == std::string::npos || colon == 0) {
        return false;
    }
    std::uint32_t port;
    return parse_u32(v.substr(colon + 1), 1, 65535, port);
}

using Setter = std::function<std::string(const std::string &value, Config &config)>;

const std::map<std::string, Setter> &setters() {
    static const std::map<std::string, Setter> table = {
        {"socket",
         [](const std::string &v, Config &c) -> std::string {
             const std::string err = check_socket_path("socket", v);
             if (err.empty()) {
                 c.socket_path = v;
             }
             return err;
         }},
        {"admin_socket",
         [](const std::string &v, Config &c) -> std::string {
             const std::string err = v == "off" ? "" : check_socket_path("admin_socket", v);
             if (err.empty()) {
                 c.admin_socket = v;
             }
             return err;
         }},
        {"allow_users",
         [](const std::string &v, Config &c) -> std::string {
             std::vector<uid_t> ids;
             std::string error;
             if (!resolve_users(v, ids, error)) {
                 return "allow_users: " + error + " (give user names or uids)";
             }
             c.allow_users = v;
             return "";
         }},
        {"allow_groups",
         [](const std::string &v, Config &c) -> std::string {
             std::vector<gid_t> ids;
             std::string error;
             if (!resolve_groups(v, ids, error)) {
                 return "allow_groups: " + error + " (give group names or gids)";
             }
             c.allow_groups = v;
             return "";
         }},
        {"socket_mode",
         [](const std::string &v, Config &c) -> std::string {
             if (v.empty() || v.size() > 4 || v.find_first_not_of("01234567") != std::string::npos) {
                 return "socket_mode must be an octal mode such as 0660";
             }
             const auto mode = static_cast<unsigned>(std::stoul(v, nullptr, 8));
             if (mode & ~0777u) {
                 return "socket_mode " + v + " has setuid, setgid or sticky bits, which mean nothing on a socket";
             }
             if (mode & 0002u) {
                 return "socket_mode " + v +
                        " is world-writable: any local user could send leveed frames; use 0660 and socket_group";
             }
             c.socket_mode = mode;
             return "";
         }},
        {"socket_group",
         [](const std::string &v, Config &c) -> std::string {
             c.socket_group = v;
             return "";
         }},
        {"redis",
         [](const std::string &v, Config &c) -> std::string {
             // The parser the client starts with: what passes here starts.
             std::vector<redis::HostPort> seeds;
             std::string error;
             if (!redis::parse_host_ports(v, seeds, error)) {
                 return "invalid redis seeds: " + error + ", expected HOST:PORT[,HOST:PORT...]";
             }
             c.redis_seeds = v;
             return "";
         }},
        {"redis_user",
         [](const std::string &v, Config &c) -> std::string {
             // AUTH takes the name as one argument: "a b" would be a user
             // nobody created, found out only when every AUTH fails.
             if (v.find_first_of(" \t") != std::string::npos) {
                 return "redis_user must be one word (a Redis ACL user name)";
             }
             c.redis_user = v;
             return "";
         }},
        {"redis_password",
         [](const std::string &v, Config &c) -> std::string {
             // The message never quotes the value: it is a secret.
             if (v.empty()) {
                 return "redis_password must not be empty (leave it out to send no AUTH)";
             }
             c.redis_password = v;
             return "";
         }},
        {"redis_tls",
         [](const std::string &v, Config &c) -> std::string {
             if (v != "on" && v != "off") {
                 return "redis_tls must be on or off";
             }
             c.redis_tls = v == "on";
             return "";
         }},
        {"redis_tls_ca_file", tls_file("redis_tls_ca_file", &Config::redis_tls_ca_file)},
        {"redis_tls_cert_file", tls_file("redis_tls_cert_file", &Config::redis_tls_cert_file)},
        {"redis_tls_key_file", tls_file("redis_tls_key_file", &Config::redis_tls_key_file)},
        {"redis_tls_server_name",
         [](const std::string &v, Config &c) -> std::string {
             if (v.find_first_of(" \t/") != std::string::npos) {
                 return "redis_tls_server_name must be a host name or address";
             }
             c.redis_tls_server_name = v;
             return "";
         }},
        {"mongo",
         [](const std::string &v, Config &c) -> std::string {
             if (v.rfind("mongodb://", 0) != 0 && v.rfind("mongodb+srv://", 0) != 0) {
                 return "mongo must be a mongodb:// URI";
             }
             std::string error;
             if (!valid_mongo_uri(v, error)) {
                 return "invalid mongo URI " + redact_mongo_uri(v) + ": " + error;
             }
             c.mongo_uri = v;
             return "";
         }},
        {"mongo_database",
         [](const std::string &v, Config &c) -> std::string {
             c.mongo_database = v;
             return "";
         }},
        {"log_file",
         [](const std::string &v, Config &c) -> std::string {
             c.log_file = v;
             return "";
         }},
        {"log_level",
         [](const std::string &v, Config &c) -> std::string {
             return log::parse_level(v, c.log_level) ? "" : "log_level must be debug, info, warn or error";
         }},
        {"metrics_listen",
         [](const std::string &v, Config &c) -> std::string {
             if (!valid_host_port(v)) {
                 return "metrics_listen must be HOST:PORT";
             }
             c.metrics_listen = v;
             return "";
         }},
        {"pid_file",
         [](const std::string &v, Config &c) -> std::string {
             c.pid_file = v;
             return "";
         }},
        {"max_frame_bytes",
         [](const std::string &v, Config &c) -> std::string {
             // The module reads frames of at most 1m: a larger limit here would
             // let leveed send replies nginx refuses. A limit below the module's
             // largest batch frame would refuse that batch, which the module
             // then sends again, forever.
             static const std::string kRange = "max_frame_bytes must be a size between " +
                                               std::to_string(link::kMinMaxFrameBytes / 1024) +
                                               "k (the module's largest batch frame) and 1m";
             return parse_size(v, static_cast<std::uint32_t>(link::kMinMaxFrameBytes), 1u << 20, c.max_frame_bytes)
                        ? ""
                        : kRange;
         }},
        {"max_connections",
         [](const std::string &v, Config &c) -> std::string {
             return parse_u32(v, 1, 1000000, c.max_connections) ? "" : "max_connections must be 1..1000000";
         }},
        {"hello_timeout_ms",
         [](const std::string &v, Config &c) -> std::string {
             return parse_u32(v, 100, 600000, c.hello_timeout_ms) ? "" : "hello_timeout_ms must be 100..600000";
         }},
        {"frame_timeout_ms",
         [](const std::string &v, Config &c) -> std::string {
             return parse_u32(v, 100, 600000, c.frame_timeout_ms) ? "" : "frame_timeout_ms must be 100..600000";
         }},
        {"max_output_bytes",
         [](const std::string &v, Config &c) -> std::string {
             // At least one reply of the largest size must fit.
             return parse_size(v, 1u << 20, 256u << 20, c.max_output_bytes)
                        ? ""
                        : "max_output_bytes must be a size between 1m and 256m";
         }},
        {"max_connection_in_flight",
         [](const std::string &v, Config &c) -> std::string {
             return parse_u32(v, 1, 100000, c.max_connection_in_flight) ? ""
                                                                        : "max_connection_in_flight must be 1..100000";
         }},
        {"drain_timeout_ms",
         [](const std::string &v, Config &c) -> std::string {
             return parse_u32(v, 0, 600000, c.drain_timeout_ms) ? "" : "drain_timeout_ms must be 0..600000";
         }},
        {"spool_dir",
         [](const std::string &v, Config &c) -> std::string {
             if (v.empty() || v[0] != '/') {
                 return "spool_dir must be an absolute path";
             }
             c.spool_dir = v;
             return "";
         }},
        {"spool_fsync",
         [](const std::string &v, Config &c) -> std::string {
             if (v != "always" && v != "interval" && v != "never") {
                 return "spool_fsync must be always, interval or never";
             }
             c.spool_fsync = v;
             return "";
         }},
        {"spool_max_bytes",
         [](const std::string &v, Config &c) -> std::string {
             // At least one largest frame's worth of records, or no batch would ever fit.
             return parse_size64(v, 1u << 20, std::uint64_t{1} << 50, c.spool_max_bytes)
                        ? ""
                        : "spool_max_bytes must be a size from 1m to 1048576g (k, m, g suffixes)";
         }},
        {"spool_fsync_interval_ms",
         [](const std::string &v, Config &c) -> std::string {
             return parse_u32(v, 1, 60000, c.spool_fsync_interval_ms) ? "" : "spool_fsync_interval_ms must be 1..60000";
         }},
        {"mongo_flush_ms",
         [](const std::string &v, Config &c) -> std::string {
             return parse_u32(v, 10, 3600000, c.mongo_flush_ms) ? "" : "mongo_flush_ms must be 10..3600000";
         }},
        {"mongo_ttl_s",
         [](const std::string &v, Config &c) -> std::
                                                 string {
                                                     return parse_u32(v, 1, 2000000000, c.mongo_ttl_s)
                                                                ? ""
                                                                : "mongo_ttl_s must be a positive number";
                                                 }},
        {"redis_wait_replicas",
         [](const std::string &v, Config &c) -> std::
                                                 string {
                                                     return parse_u32(v, 0, 16, c.redis_wait_replicas)
                                                                ? ""
                                                                : "redis_wait_replicas must be 0..16";
                                                 }},
        {"presence_buckets",
         [](const std::string &v, Config &c) -> std::
                                                 string {
                                                     return parse_u32(v, 1, 16384, c.presence_buckets)
                                                                ? ""
                                                                : "presence_buckets must be 1..16384";
                                                 }},
        {"redis_wait_timeout_ms",
         [](const std::string &v, Config &c) -> std::
                                                 string {
                                                     return parse_u32(v, 1, 10000, c.redis_wait_timeout_ms)
                                                                ? ""
                                                                : "redis_wait_timeout_ms must be 1..10000";
                                                 }},
    };
    return table;
}

} // namespace

std::string Config::admin_socket_path() const {
    if (admin_socket == "off") {
        return "";
    }
    return admin_socket.empty() ? default_admin_socket(socket_path) : admin_socket;
}

std::vector<ConfigError> parse_config(const std::string &text, Config &config) {
    std::vector<ConfigError> errors;
    std::map<std::string, int> seen;
    std::istringstream in(text);
    std::string raw;
    int line_no = 0;
    while (std::getline(in, raw)) {
        line_no++;
        const auto hash = raw.find('#');
        const std::string line = trim(hash == std::string::npos ? raw : raw.substr(0, hash));
        if (line.empty()) {
            continue;
        }
        const auto sp = line.find_first_of(" \t");
        const std::string key = line.substr(0, sp);
        const std::string value = sp == std::string::npos ? "" : trim(line.substr(sp));
        const auto it = setters().find(key);
        if (it == setters().end()) {
            errors.push_back({line_no, "unknown setting \"" + key + "\""});
            continue;
        }
        // '#' would cut the password short without a word: a wrong password,
        // noticed only when every AUTH fails. Refuse the line instead.
        if (key == "redis_password" && hash != std::string::npos) {
            errors.push_back({line_no, "redis_password cannot contain '#' nor be followed by a comment; "
                                       "give such a password in " +
                                           std::string(kRedisPasswordEnv)});
            continue;
        }
        if (value.empty()) {
            errors.push_back({line_no, "\"" + key + "\" needs a value"});
            continue;
        }
        const auto dup = seen.find(key);
        if (dup != seen.end()) {
            errors.push_back({line_no, "\"" + key + "\" is already set on line " + std::to_string(dup->second)});
            continue;
        }
        seen[key] = line_no;
        const std::string err = it->second(value, config);
        if (!err.empty()) {
            errors.push_back({line_no, err});
        }
    }
    return errors;
}

std::vector<std::string> setting_names() {
    std::vector<std::string> names;
    for (const auto &entry : setters()) {
        names.push_back(entry.first);
    }
    return names;
}

std::string apply_setting(const std::string &key, const std::string &value, Config &config) {
    const auto it = setters().find(key);
    if (it == setters().end()) {
        return "unknown setting \"" + key + "\"";
    }
    return it->second(value, config);
}

std::vector<ConfigError> load_config_file(const std::string &path, Config &config) {
    std::ifstream f(path);
    if (!f) {
        return {{0, "cannot read " + path + ": " + std::strerror(errno)}};
    }
    std::stringstream ss;
    ss << f.rdbuf();
    return parse_config(ss.str(), config);
}

std::vector<ConfigError> apply_environment(Config &config) {
    std::vector<ConfigError> errors;
    // Empty counts as unset: `Environment=LEVEE_REDIS_PASSWORD=` or an unset
    // compose variable must not turn AUTH off behind the file's back.
    const char *password = std::getenv(kRedisPasswordEnv);
    if (password != nullptr && password[0] != '\0') {
        const std::string err = apply_setting("redis_password", password, config);
        if (!err.empty()) {
            errors.push_back({0, std::string(kRedisPasswordEnv) + ": " + err});
        }
    }
    return errors;
}

std::vector<ConfigError> validate_config(const Config &config) {
    std::vector<ConfigError> errors;
    if (config.socket_path.empty()) {
        errors.push_back({0, "no socket path"});
    }
    const std::string admin = config.admin_socket_path();
    if (admin == config.socket_path) {
        errors.push_back({0, "admin_socket must not be the socket nginx connects to"});
    } else if (!admin.empty() && admin.size() >= sizeof(sockaddr_un{}.sun_path)) {
        errors.push_back({0, "the admin socket's path " + admin +
                                 " is longer than 107 bytes: set admin_socket (or admin_socket off)"});
    }
    if (!config.redis_tls) {
        for (const auto &[key, value] : {std::pair{"redis_tls_ca_file", &config.redis_tls_ca_file},
                                         std::pair{"redis_tls_cert_file", &config.redis_tls_cert_file},
                                         std::pair{"redis_tls_key_file", &config.redis_tls_key_file},
                                         std::pair{"redis_tls_server_name", &config.redis_tls_server_name}}) {
            if (!value->empty()) {
                // Not silently plain text: the operator meant TLS.
                errors.push_back({0, std::string(key) + " is set but redis_tls is off: set redis_tls on"});
            }
        }
    } else if (config.redis_tls_cert_file.empty() != config.redis_tls_key_file.empty()) {
        errors.push_back({0, "redis_tls_cert_file and redis_tls_key_file go together: set both or neither"});
    }
    if (!config.redis_user.empty() && config.redis_password.empty()) {
        errors.push_back(
            {0, "redis_user is set but no password is: set redis_password or " + std::string(kRedisPasswordEnv)});
    }
    return errors;
}

} // namespace levee
