// leveed: the Levee sidecar. Parses the command line and the config file,
// then hands over to Daemon.

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <event2/thread.h>
#include <mongoc/mongoc.h>

#include "config/config.hpp"
#include "daemon.hpp"
#include "log.hpp"

namespace {

constexpr const char *kUsage =
    "usage: leveed --config FILE [--socket PATH] [--redis HOST:PORT[,HOST:PORT...]] [--mongo URI]\n"
    "       leveed --check-config FILE\n"
    "       leveed --version\n"
    "\n"
    "  --config FILE        settings file (see conf/leveed.conf)\n"
    "  --socket PATH        Unix socket nginx connects to (overrides 'socket')\n"
    "  --redis SEEDS        Redis Cluster seed nodes (overrides 'redis')\n"
    "  --mongo URI          MongoDB URI, a mongos in production (overrides 'mongo')\n"
    "  --check-config FILE  check FILE, print each error with its line, exit 1 on any\n"
    "\n"
    "With neither redis nor mongo set, leveed runs standalone: state in memory,\n"
    "for one nginx host.\n"
    "\n"
    "Environment:\n"
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
            std::printf("leveed 0.1.0 (protocol 1)\n");
            return 0;
        } else if (arg == "--help" || arg == "-h") {
            std::fputs(kUsage, stdout);
            return 0;
        } else {
            std::fprintf(stderr, "leveed: unknown option %s\n%s", arg.c_str(), kUsage);
            return 2;
        }
    }

    levee::Config config;
    if (!check_file.empty()) {
        // Checked as leveed would start with it: the environment's overrides
        // included (systemd's ExecStartPre= sees the same Environment=).
        auto errors = levee::load_config_file(check_file, config);
        const auto env_errors = levee::apply_environment(config);
        errors.insert(errors.end(), env_errors.begin(), env_errors.end());
        const auto relation_errors = levee::validate_config(config);
        errors.insert(errors.end(), relation_errors.begin(), relation_errors.end());
        const int rc = print_errors(check_file, errors);
        if (rc == 0) {
            std::printf("%s: ok\n", check_file.c_str());
        }
        return rc;
    }
    if (config_file.empty()) {
        std::fprintf(stderr, "leveed: --config FILE is required\n%s", kUsage);
        return 2;
    }
    if (print_errors(config_file, levee::load_config_file(config_file, config)) != 0) {
        return 1;
    }
    for (const auto &[key, val] : overrides) {
        const std::string err = levee::apply_setting(key, val, config);
        if (!err.empty()) {
            std::fprintf(stderr, "leveed: --%s: %s\n", key.c_str(), err.c_str());
            return 1;
        }
    }
    if (print_errors(config_file, levee::apply_environment(config)) != 0 ||
        print_errors(config_file, levee::validate_config(config)) != 0) {
        return 1;
    }

    std::string error;
    if (!levee::log::open_file(config.log_file, error)) {
        std::fprintf(stderr, "leveed: %s\n", error.c_str());
        return 1;
    }
    levee::log::set_level(config.log_level);

    // The MongoDB writer thread wakes the event loop: libevent must be thread-aware.
    evthread_use_pthreads();
    mongoc_init();
    int rc;
    {
        levee::Daemon daemon(config);
        rc = daemon.run();
    }
    mongoc_cleanup();
    return rc;
}
