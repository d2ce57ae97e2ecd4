// leveed's settings: a file of "key value" lines ('#' starts a comment),
// overridden by command-line flags. Every problem is reported with its line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "log.hpp"

namespace levee {

struct Config {
    std::string socket_path = "/run/levee/leveed.sock";
    unsigned socket_mode = 0660;
    std::string socket_group; // empty: keep the process's group
    // Whom the socket serves beyond root and leveed's own user, checked
    // with SO_PEERCRED at accept: user names or uids, group names or gids
    // (a peer's primary or supplementary group). Both empty: the socket's
    // group, whom socket_mode 0660 lets connect.
    std::string allow_users;
    std::string allow_groups;
    // The root-only socket of administrative frames (probe); empty: beside
    // `socket` (see admin_socket_path), "off": none.
    std::string admin_socket;
    std::string redis_seeds; // "host:port,..." of a Redis Cluster; empty: standalone
    // AUTH on every connection to every node: `AUTH password`, or `AUTH user
    // password` for a Redis 6+ ACL user. Empty password: no AUTH. Never logged.
    std::string redis_user;
    std::string redis_password;
    // TLS to every node (redis/tls_context.hpp), the peer always verified:
    // against the CA file (empty: the system's trust store) and the server
    // name (empty: each node's address). Client certificate and key for
    // Redis's tls-auth-clients.
    bool redis_tls = false;
    std::string redis_tls_ca_file;
    std::string redis_tls_cert_file;
    std::string redis_tls_key_file;
    std::string redis_tls_server_name;
    std::string mongo_uri; // empty: no database
    std::string mongo_database = "levee";
    std::string log_file; // empty: stderr
    log::Level log_level = log::Level::kInfo;
    std::string metrics_listen; // "127.0.0.1:9465"; empty: off
    std::string pid_file;
    std::uint32_t max_frame_bytes = 1u << 20;
    std::uint32_t max_connections = 1024;
    // What one connection may hold (see ConnectionLimits, net/frame_connection.hpp).
    std::uint32_t hello_timeout_ms = 5000;
    std::uint32_t frame_timeout_ms = 10000;
    std::uint32_t max_output_bytes = 8u << 20;
    // Work items (about Redis commands, see request_cost) of one
    // connection's unanswered requests; half the Redis client's budget of
    // 100000 commands.
    std::uint32_t max_connection_in_flight = 50000;
    std::uint32_t drain_timeout_ms = 10000;
    // The write-ahead spool that feeds the MongoDB write-behind.
    std::string spool_dir = "/var/lib/levee/spool";
    std::string spool_fsync = "interval"; // always | interval | never
    std::uint32_t spool_fsync_interval_ms = 100;
    // Bound on the spool's bytes not yet in the database; past it presence
    // batches are still acknowledged, without their MongoDB copy.
    std::uint64_t spool_max_bytes = std::uint64_t{1} << 30;
    std::uint32_t mongo_flush_ms = 1000;    // write-behind interval
    std::uint32_t mongo_ttl_s = 30 * 86400; // presence documents expire after this
    // Redis replicates asynchronously: WAIT for this many replicas after each
    // pipelined batch before acknowledging, so a killed master loses nothing
    // we acknowledged.
    std::uint32_t redis_wait_replicas = 1;
    std::uint32_t redis_wait_timeout_ms = 100;
    // Hash-tag buckets of presence keys (levee:presence:{bN}:TTL, N = CRC16(USER) mod this).
    // Every leveed writing to one cluster must use the same value.
    std::uint32_t presence_buckets = 64;

    // No Redis Cluster: limits, presence and the registry live in this
    // process, so every nginx host pointed at its own leveed counts alone.
    bool standalone() const { return redis_seeds.empty(); }
    // The admin socket's path, "" when off.
    std::string admin_socket_path() const;
};

struct ConfigError {
    int line; // 0: not tied to a line
    std::string message;
};

// Parses `text` onto `config` (keys absent from the text keep their values).
// Returns every error found, not just the first.
std::vector<ConfigError> parse_config(const std::string &text, Config &config);

// Applies one setting, as a line of the file would; returns an error or "".
// Command-line overrides go through here so they are checked the same way.
std::string apply_setting(const std::string &key, const std::string &value, Config &config);

// Every key a file may set, in alphabetical order.
std::vector<std::string> setting_names();

// Reads and parses a file; an unreadable file is one error at line 0.
std::vector<ConfigError> load_config_file(const std::string &path, Config &config);

// Operators keep secrets out of config files: a non-empty
// LEVEE_REDIS_PASSWORD overrides redis_password (an empty one counts as unset).
constexpr const char *kRedisPasswordEnv = "LEVEE_REDIS_PASSWORD";

// Applies the environment's overrides, after the file and the flags.
// Errors are at line 0 and name the variable.
std::vector<ConfigError> apply_environment(Config &config);

// Checks relations between settings, after flags and the environment were applied.
std::vector<ConfigError> validate_config(const Config &config);

} // namespace levee
