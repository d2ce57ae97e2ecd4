// redis_cluster_stress: a write stream through ClusterClient that checks no
// acknowledged write is lost while the cluster fails over or migrates slots.
//
//   redis_cluster_stress --seeds h:p,... --seconds N --keys K [--verify]
//                        [--wait-replicas N] [--wait-timeout-ms MS] [--prefix P]
//                        [--user NAME]
//
// A cluster with a password: LEVEE_REDIS_PASSWORD, as for leveed (not a
// flag: command lines are visible to every user of the machine).
//
// Each key gets `SET key <n>` with n = 1, 2, 3, ...; one write per key is in
// flight at a time, so a key's writes are ordered and "the key holds >= the
// last acknowledged n" is the exact no-loss condition. Many keys keep the
// pipeline full. With --verify every key is read back at the end.
//
// Prints one progress line per second and a final "RESULT k=v ..." line.
// Exit: 0 no loss, 1 lost acknowledged writes, 2 could not run or verify.
#include <event2/event.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "cluster_client.hpp"

using levee::redis::ClusterClient;
using levee::redis::ClusterOptions;
using levee::redis::HostPort;
using levee::redis::now_ms;
using levee::redis::Reply;

namespace {

struct Args {
    std::vector<HostPort> seeds;
    int seconds = 10;
    int keys = 1000;
    bool verify = false;
    int wait_replicas = 0;
    int wait_timeout_ms = 200;
    std::string prefix;
    std::string user;
    std::string password;
};

void usage() {
    std::fprintf(stderr, "usage: redis_cluster_stress --seeds h:p,... --seconds N --keys K [--verify]\n"
                         "         [--wait-replicas N] [--wait-timeout-ms MS] [--prefix P] [--user NAME]\n"
                         "  LEVEE_REDIS_PASSWORD: AUTH with this password\n");
}

bool parse_args(int argc, char **argv, Args &a) {
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> const char * { return i + 1 < argc ? argv[++i] : nullptr; };
        if (arg == "--verify") {
            a.verify = true;
            continue;
        }
        const char *v = value();
        if (v == nullptr) {
            std::fprintf(stderr, "missing value for %s\n", arg.c_str());
            return false;
        }
        if (arg == "--seeds") {
            std::string error;
            if (!levee::redis::parse_host_ports(v, a.seeds, error)) {
                std::fprintf(stderr, "--seeds: %s\n", error.c_str());
                return false;
            }
        } else if (arg == "--seconds") {
            a.seconds = std::atoi(v);
        } else if (arg == "--keys") {
            a.keys = std::atoi(v);
        } else if (arg == "--wait-replicas") {
            a.wait_replicas = std::atoi(v);
        } else if (arg == "--wait-timeout-ms") {
            a.wait_timeout_ms = std::atoi(v);
        } else if (arg == "--prefix") {
            a.prefix = v;
        } else if (arg == "--user") {
            a.user = v;
        } else {
            std::fprintf(stderr, "unknown option %s\n", arg.c_str());
            return false;
        }
    }
    if (a.seeds.empty() || a.seconds <= 0 || a.keys <= 0) {
        return false;
    }
    if (const char *password = std::getenv("LEVEE_REDIS_PASSWORD")) {
        a.password = password;
    }
    if (a.prefix.empty()) {
        // No braces: the keys must spread over every slot.
        a.prefix = "levee-stress-" + std::to_string(getpid()) + "-";
    }
    return true;
}

class Stress {
public:
    Stress(event_base *base, const Args &args) : base_(base), args_(args), keys_(args.keys) {
        ClusterOptions opts;
        opts.max_in_flight = std::max<std::size_t>(100000, static_cast<std::size_t>(args.keys) * 2);
        opts.wait_replicas = args.wait_replicas;
        opts.wait_timeout_ms = args.wait_timeout_ms;
        opts.user = args.user;
        opts.password = args.password;
        client_ = std::make_unique<ClusterClient>(base, args.seeds, opts);
        for (int i = 0; i < args.keys; ++i) {
            keys_[i].name = args.prefix + std::to_string(i);
        }
        tick_ = event_new(base, -1, EV_PERSIST, &Stress::on_tick, this);
    }
    ~Stress() {
        event_free(tick_);
        client_.reset();
    }

    void start() {
        client_->start([this](bool ok, const std::string &error) {
            if (!ok) {
                std::fprintf(stderr, "start failed: %s\n", error.c_str());
                exit_code_ = 2;
                event_base_loopbreak(base_);
                return;
            }
            for (const auto &m : client_->masters()) {
                std::printf("master %s ranges=%zu\n", m.addr.str().c_str(), m.slot_ranges.size());
            }
            started_ms_ = last_tick_ms_ = last_ack_ms_ = now_ms();
            end_ms_ = started_ms_ + args_.seconds * 1000LL;
            const timeval second{1, 0};
            event_add(tick_, &second);
            for (std::size_t i = 0; i < keys_.size(); ++i) {
                write(i);
            }
        });
    }

    int exit_code() const { return exit_code_; }

private:
    struct Key {
        std::string name;
        unsigned long long next = 1;
        unsigned long long acked = 0;
    };

    void write(std::size_t i) {
        Key &k = keys_[i];
        const unsigned long long value = k.next++;
        ++writes_;
        const bool accepted = client_->command(
            k.name, {"SET", k.name, std::to_string(value)}, [this, i, value](const Reply &r) {
                const int64_t now = now_ms();
                if (r.type == Reply::Type::Status && r.str == "OK") {
                    keys_[i].acked = value;
                    ++acked_;
                    ++acked_this_tick_;
                    max_stall_ms_ = std::max(max_stall_ms_, now - last_ack_ms_);
                    last_ack_ms_ = now;
                } else {
                    if (write_errors_++ < 5) {
                        std::printf("write error %s: %s\n", keys_[i].name.c_str(), r.str.c_str());
                    }
                }
                if (now < end_ms_) {
                    write(i);
                } else if (client_->in_flight() == 0) {
                    finish_writes();
                }
            });
        if (!accepted) {
            ++refused_;
        }
    }

    static void on_tick(int, short, void *arg) {
        auto *self = static_cast<Stress *>(arg);
        const int64_t now = now_ms();
        const auto &s = self->client_->stats();
        std::printf("t=%.1fs acked/s=%llu in_flight=%zu errors=%llu moved=%llu ask=%llu retries=%llu "
                    "timeouts=%llu refreshes=%llu wait_short=%llu\n",
                    (now - self->started_ms_) / 1000.0,
                    static_cast<unsigned long long>(self->acked_this_tick_ * 1000 /
                                                    std::max<int64_t>(1, now - self->last_tick_ms_)),
                    self->client_->in_flight(), self->write_errors_, static_cast<unsigned long long>(s.moved),
                    static_cast<unsigned long long>(s.ask), static_cast<unsigned long long>(s.retries),
                    static_cast<unsigned long long>(s.timeouts), static_cast<unsigned long long>(s.slot_refreshes),
                    static_cast<unsigned long long>(s.wait_short));
        std::fflush(stdout);
        self->acked_this_tick_ = 0;
        self->last_tick_ms_ = now;
        if (now >= self->end_ms_ + 60000) {
            std::printf("drain did not finish within 60 s after the end\n");
            self->exit_code_ = 2;
            event_base_loopbreak(self->base_);
        }
    }

    void finish_writes() {
        if (writes_finished_) {
            return;
        }
        writes_finished_ = true;
        write_seconds_ = (now_ms() - started_ms_) / 1000.0;
        if (!args_.verify) {
            report();
            return;
        }
        verify_pending_ = keys_.size();
        for (std::size_t i = 0; i < keys_.size(); ++i) {
            client_->command(keys_[i].name, {"GET", keys_[i].name}, [this, i](const Reply &r) {
                const Key &k = keys_[i];
                if (r.type == Reply::Type::String) {
                    const unsigned long long stored = std::strtoull(r.str.c_str(), nullptr, 10);
                    if (stored < k.acked) {
                        if (lost_++ < 10) {
                            std::printf("LOST %s: holds %llu, acknowledged %llu\n", k.name.c_str(), stored, k.acked);
                        }
                        lost_writes_ += k.acked - stored;
                    }
                } else if (r.type == Reply::Type::Nil) {
                    if (k.acked > 0) {
                        if (lost_++ < 10) {
                            std::printf("LOST %s: missing, acknowledged %llu\n", k.name.c_str(), k.acked);
                        }
                        lost_writes_ += k.acked;
                    }
                } else {
                    if (unverified_++ < 5) {
                        std::printf("verify error %s: %s\n", k.name.c_str(), r.str.c_str());
                    }
                }
                if (--verify_pending_ == 0) {
                    report();
                }
            });
        }
    }

    void report() {
        const auto &s = client_->stats();
        std::printf("RESULT seconds=%.1f keys=%zu writes=%llu acked=%llu write_errors=%llu refused=%llu "
                    "rate=%.0f/s verified=%s lost_keys=%llu lost_writes=%llu unverified=%llu max_stall_ms=%lld "
                    "moved=%llu ask=%llu retries=%llu timeouts=%llu conn_errors=%llu refreshes=%llu "
                    "wait_short=%llu\n",
                    write_seconds_, keys_.size(), writes_, acked_, write_errors_, refused_,
                    acked_ / std::max(0.001, write_seconds_), args_.verify ? "yes" : "no", lost_, lost_writes_,
                    unverified_, static_cast<long long>(max_stall_ms_), static_cast<unsigned long long>(s.moved),
                    static_cast<unsigned long long>(s.ask), static_cast<unsigned long long>(s.retries),
                    static_cast<unsigned long long>(s.timeouts),
                    static_cast<unsigned long long>(s.connection_errors),
                    static_cast<unsigned long long>(s.slot_refreshes),
                    static_cast<unsigned long long>(s.wait_short));
        std::fflush(stdout);
        exit_code_ = lost_ > 0 ? 1 : (unverified_ > 0 ? 2 : 0);
        event_base_loopbreak(base_);
    }

    event_base *base_;
    Args args_;
    std::vector<Key> keys_;
    std::unique_ptr<ClusterClient> client_;
    event *tick_ = nullptr;
    int64_t started_ms_ = 0, end_ms_ = 0, last_tick_ms_ = 0, last_ack_ms_ = 0, max_stall_ms_ = 0;
    unsigned long long writes_ = 0, acked_ = 0, acked_this_tick_ = 0, write_errors_ = 0, refused_ = 0;
    unsigned long long lost_ = 0, lost_writes_ = 0, unverified_ = 0;
    std::size_t verify_pending_ = 0;
    bool writes_finished_ = false;
    double write_seconds_ = 0;
    int exit_code_ = 2;
};

} // namespace

int main(int argc, char **argv) {
    Args args;
    if (!parse_args(argc, argv, args)) {
        usage();
        return 2;
    }
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    event_base *base = event_base_new();
    int code = 2;
    {
        Stress stress(base, args);
        stress.start();
        event_base_dispatch(base);
        code = stress.exit_code();
    }
    event_base_free(base);
    return code;
}
