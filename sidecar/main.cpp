// leveed: the Levee sidecar. Parses the command line and the config file,
// then hands over to Daemon.

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <event2/thread.h>
#include <mongoc/mongoc.h>

#include "levee_version.h"
#include "config/config.hpp"
#include "config/config_diff.hpp"
#include "config/config_source.hpp"
#include "daemon.hpp"
#include "log.hpp"

namespace {

constexpr const char *kUsage =
    "usage: leveed [--config FILE] [--socket PATH] [--redis HOST:PORT[,HOST:PORT...]] [--mongo URI]\n"
    "       leveed --check-config FILE [--socket PATH] [--redis ...] [--mongo URI]\n"
    "       leveed --version\n"
    "\n"
    "  --config FILE        settings file (see conf/leveed.conf); default /etc/levee/leveed.conf\n"
    "                       if it exists, else the built-in defaults (socket /run/levee/leveed.sock)\n"
    "  --socket PATH        Unix socket nginx connects to (overrides 'socket')\n"
    "  --redis SEEDS        Redis Cluster seed nodes (overrides 'redis')\n"
    "  --mongo URI          MongoDB URI, a mongos in production (overrides 'mongo')\n"
    "  --check-config FILE  check FILE as leveed would start with it: each error with\n"
    "                       its line, exit 1 on any; else print every setting, exit 0\n"
    "\n"
    "Without redis, leveed runs standalone: limits, presence and the registry in\n"
    "its memory, for one nginx host (each host counts global limits alone).\n"
    "SIGHUP re-reads the settings and reopens the log file.\n"
    "\n"
    "Environment:\n"
    "  LEVEE_CONFIG          the default settings file instead of /etc/levee/leveed.conf\n"
    "  LEVEE_REDIS_PASSWORD  overrides redis_password (keeps the secret out of the file)\n";

int print_errors(const std::string &file, const std::vector<levee::ConfigError> &errors) {
    for (const auto &e : errors) {
        if (e.line > 0) {
            std::fprintf(stderr, "%s:%d: %s\n", file.c_str(), e.line, e.message.c_str());
        } else {
            std::fprintf(stderr, "%s: %s\n", file.c_str(), e.message.c_str());
        }
    }
    return errors.empty() ? 0 : 1;
}

// libmongoc parses the mongo URI when the settings are checked, not only at start.
struct MongocLibrary {
    MongocLibrary() { mongoc_init(); }
    ~MongocLibrary() { mongoc_cleanup(); }
    MongocLibrary(const MongocLibrary &) = delete;
    MongocLibrary &operator=(const MongocLibrary &) = delete;
};

} // namespace

int main(int argc, char **argv) {
    std::string config_file;
    std::string check_file;
    std::vector<std::pair<std::string, std::string>> overrides;

    for (int i = 1; i < argc; i++) {
        const std::string arg = argv[i];
        auto value = [&](const char *flag) -> const char * {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "leveed: %s needs a value\n%s", flag, kUsage);
                std::exit(2);
            }
            return argv[++i];
        };
        if (arg == "--config") {
            config_file = value("--config");
        } else if (arg == "--check-config") {
            check_file = value("--check-config");
        } else if (arg == "--socket") {
            overrides.emplace_back("socket", value("--socket"));
        } else if (arg == "--redis") {
            overrides.emplace_back("redis", value("--redis"));
        } else if (arg == "--mongo") {
            overrides.emplace_back("mongo", value("--mongo"));
        } else if (arg == "--version") {
            std::printf("leveed %s (protocol 1)\n", LEVEE_VERSION);
            return 0;
        } else if (arg == "--help" || arg == "-h") {
            std::fputs(kUsage, stdout);
            return 0;
        } else {
            std::fprintf(stderr, "leveed: unknown option %s\n%s", arg.c_str(), kUsage);
            return 2;
        }
    }

    const MongocLibrary mongoc;
    levee::ConfigSource source = levee::ConfigSource::from_command_line(check_file.empty() ? config_file : check_file);
    source.overrides = overrides;
    levee::Config config;
    bool used_file = false;
    const auto errors = levee::load_config(source, config, &used_file);
    if (!check_file.empty()) {
        // Checked as leveed would start with it: flags and the environment's
        // overrides included (systemd's ExecStartPre= sees the same Environment=).
        if (print_errors(source.label(), errors) != 0) {
            return 1;
        }
        if (const std::string error = levee::check_config_files(config); !error.empty()) {
            std::fprintf(stderr, "%s: %s\n", source.label().c_str(), error.c_str());
            return 1;
        }
        std::printf("%s: ok\n%s", check_file.c_str(), levee::format_effective_settings(config).c_str());
        return 0;
    }
    if (print_errors(source.label(), errors) != 0) {
        return 1;
    }

    std::string error;
    if (!levee::log::open_file(config.log_file, error)) {
        std::fprintf(stderr, "leveed: %s\n", error.c_str());
        return 1;
    }
    levee::log::set_level(config.log_level);
    if (used_file) {
        // SIGHUP re-reads this file: gone by then is an error, not "defaults".
        source.optional = false;
    } else {
        levee::log::info("no_config_file", {{"path", source.path}, {"using", "built-in defaults"}});
        source.path.clear(); // a file created later is picked up at the next start, not by SIGHUP
    }

    // The MongoDB writer thread wakes the event loop: libevent must be thread-aware.
    evthread_use_pthreads();
    levee::Daemon daemon(config, source);
    return daemon.run();
}
