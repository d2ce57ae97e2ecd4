// leveed_load: bounded load against a running leveed over its socket, sent
// as nginx workers send it. For tests/bench/sidecar_bench.py and the presence
// stream e2e tests; operators use leveectl.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ctl/client.hpp"
#include "ctl/presence_batch.hpp"

namespace {

using levee::ctl::Client;
using levee::ctl::PresenceBatchFrame;

constexpr const char *kProgram = "leveed_load";

constexpr const char *kUsage =
    "usage: leveed_load --socket PATH [--protocol-version N] COMMAND\n"
    "  presence SECONDS BATCH IN_FLIGHT USERS\n"
    "                     send presence batches for SECONDS with IN_FLIGHT batches\n"
    "                     unacknowledged at most; print acknowledged records/s\n"
    "  presence-stream SECONDS USERS BATCH OUT_FILE\n"
    "                     beat USERS users round-robin with ever larger last_seen,\n"
    "                     resending a batch until it is acknowledged (as nginx does);\n"
    "                     then write \"user last_seen\" of every acknowledged beat to OUT_FILE\n"
    "exit: 0 ok, 1 a batch failed, 2 usage, 3 cannot reach leveed\n";

int presence(Client &client, int seconds, int batch, int in_flight, int users) {
    std::vector<std::string> pool;
    pool.reserve(static_cast<std::size_t>(users));
    for (int i = 0; i < users; i++) {
        pool.push_back("bench-user-" + std::to_string(i));
    }
    std::uint64_t next_user = 0, sent_batches = 0, acked_records = 0, failed_batches = 0, request = 10;
    int outstanding = 0;
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + std::chrono::seconds(seconds);
    std::vector<std::string> names(static_cast<std::size_t>(batch));
    for (;;) {
        const bool sending = std::chrono::steady_clock::now() < deadline;
        while (sending && outstanding < in_flight) {
            for (auto &n : names) {
                n = pool[next_user++ % pool.size()];
            }
            PresenceBatchFrame b(names, "", levee::ctl::now_ms());
            b.frame.request_id = ++request;
            if (!client.send(b.frame)) {
                std::fprintf(stderr, "leveed_load: %s\n", client.error().c_str());
                return 3;
            }
            outstanding++;
            sent_batches++;
        }
        if (outstanding == 0) {
            break;
        }
        levee::FramePtr reply = client.receive();
        if (!reply || reply->body_case != LEVEE__FRAME__BODY_PRESENCE_ACK) {
            std::fprintf(stderr, "leveed_load: no presence ack: %s\n", client.error().c_str());
            return 3;
        }
        outstanding--;
        if (reply->presence_ack->ok) {
            acked_records += reply->presence_ack->records;
        } else {
            failed_batches++;
        }
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("RESULT seconds=%.2f batches=%llu acked_records=%llu failed_batches=%llu records_per_s=%.0f\n", secs,
                static_cast<unsigned long long>(sent_batches), static_cast<unsigned long long>(acked_records),
                static_cast<unsigned long long>(failed_batches), static_cast<double>(acked_records) / secs);
    return failed_batches == 0 ? 0 : 1;
}

// Like the module: a batch is resent until leveed acknowledges it, so the
// last acknowledged last_seen of each user is what the stores must hold.
int presence_stream(const std::string &socket_path, std::uint32_t version, int seconds, int users, int batch,
                    const std::string &out_file) {
    std::vector<std::int64_t> acked(static_cast<std::size_t>(users), 0);
    std::int64_t seen = levee::ctl::now_ms();
    std::uint64_t next_user = 0, batches = 0, resends = 0, reconnects = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    std::unique_ptr<Client> client;
    while (std::chrono::steady_clock::now() < deadline) {
        std::vector<std::string> names;
        std::vector<std::size_t> ids;
        for (int i = 0; i < batch; i++) {
            const std::size_t id = next_user++ % static_cast<std::size_t>(users);
            ids.push_back(id);
            names.push_back("stream-user-" + std::to_string(id));
        }
        seen++;
        PresenceBatchFrame b(names, "", seen);
        for (;;) {
            if (!client) {
                client = std::make_unique<Client>();
                if (!client->connect(socket_path) || levee::ctl::hello(*client, version, kProgram, true) != 0) {
                    client.reset();
                    reconnects++;
                    std::this_thread::sleep_for(std::chrono::milliseconds(100));
                    continue;
                }
            }
            b.frame.request_id = ++batches;
            levee::FramePtr reply;
            if (client->send(b.frame)) {
                reply = client->receive();
            }
            if (reply && reply->body_case == LEVEE__FRAME__BODY_PRESENCE_ACK && reply->presence_ack->ok) {
                break;
            }
            if (!reply) {
                client.reset();
            }
            resends++;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        for (std::size_t id : ids) {
            acked[id] = seen;
        }
    }
    std::FILE *f = std::fopen(out_file.c_str(), "w");
    if (f == nullptr) {
        std::fprintf(stderr, "leveed_load: cannot write %s\n", out_file.c_str());
        return 2;
    }
    for (std::size_t i = 0; i < acked.size(); i++) {
        if (acked[i] != 0) {
            std::fprintf(f, "stream-user-%zu %lld\n", i, static_cast<long long>(acked[i]));
        }
    }
    std::fclose(f);
    std::printf("RESULT batches=%llu resends=%llu reconnects=%llu\n", static_cast<unsigned long long>(batches),
                static_cast<unsigned long long>(resends), static_cast<unsigned long long>(reconnects));
    return 0;
}

} // namespace

int main(int argc, char **argv) {
    std::string socket_path;
    std::uint32_t version = LEVEE__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
    std::vector<std::string> args;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        if (a == "--socket" && i + 1 < argc) {
            socket_path = argv[++i];
        } else if (a == "--protocol-version" && i + 1 < argc) {
            version = static_cast<std::uint32_t>(std::strtoul(argv[++i], nullptr, 10));
        } else if (a == "--help" || a == "-h") {
            std::fputs(kUsage, stdout);
            return 0;
        } else {
            args.push_back(a);
        }
    }
    if (socket_path.empty() || args.size() != 5) {
        std::fputs(kUsage, stderr);
        return 2;
    }
    if (args[0] == "presence-stream") {
        return presence_stream(socket_path, version, std::atoi(args[1].c_str()), std::atoi(args[2].c_str()),
                               std::atoi(args[3].c_str()), args[4]);
    }
    if (args[0] != "presence") {
        std::fputs(kUsage, stderr);
        return 2;
    }
    Client client;
    if (!client.connect(socket_path)) {
        std::fprintf(stderr, "leveed_load: %s\n", client.error().c_str());
        return 3;
    }
    const int rc = levee::ctl::hello(client, version, kProgram, true);
    return rc != 0 ? rc
                   : presence(client, std::atoi(args[1].c_str()), std::atoi(args[2].c_str()),
                              std::atoi(args[3].c_str()), std::atoi(args[4].c_str()));
}
