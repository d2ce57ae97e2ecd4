// leveectl: talks to a running leveed over its socket, as an nginx worker
// would, and over its admin socket for administrative frames (probe). For
// operators checking a deployment, and for the tests. Load generators live
// apart, in tests/bench/leveed_load.cpp.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ctl/client.hpp"
#include "ctl/presence_batch.hpp"
#include "net/admin_socket.hpp"

namespace {

using levee::ctl::Client;

constexpr const char *kProgram = "leveectl";

constexpr const char *kUsage = "usage: leveectl [--socket PATH] [--admin-socket PATH] [--protocol-version N] COMMAND\n"
                               "  --socket PATH        nginx's socket (default /run/levee/leveed.sock)\n"
                               "  --admin-socket PATH  leveed's admin socket, root only (default: beside --socket,\n"
                               "                       \"-admin\" added to its name)\n"
                               "  hello              say hello on nginx's socket and print leveed's answer\n"
                               "  probe KEY VALUE    write KEY into Redis and a document into the database,\n"
                               "                     read both back through leveed (admin socket), print\n"
                               "                     what came back\n"
                               "  beat USER [ROOM] [--at MS] [--ttl MS]\n"
                               "                     send one presence record (last_seen = MS since the epoch,\n"
                               "                     default now; ttl default 180000) and wait for the ack\n"
                               "exit: 0 ok, 1 refused or failed, 2 usage, 3 cannot reach leveed\n";

int probe(Client &client, const std::string &key, const std::string &value) {
    Levee__Frame frame = LEVEE__FRAME__INIT;
    Levee__ProbeRequest p = LEVEE__PROBE_REQUEST__INIT;
    p.key = const_cast<char *>(key.c_str());
    p.value = const_cast<char *>(value.c_str());
    frame.request_id = 2;
    frame.body_case = LEVEE__FRAME__BODY_PROBE;
    frame.probe = &p;
    if (!client.send(frame)) {
        std::fprintf(stderr, "leveectl: %s\n", client.error().c_str());
        return 3;
    }
    levee::FramePtr reply = client.receive();
    if (!reply || reply->body_case != LEVEE__FRAME__BODY_PROBE_REPLY) {
        std::fprintf(stderr, "leveectl: no probe reply: %s\n", client.error().c_str());
        return 3;
    }
    const Levee__ProbeReply &r = *reply->probe_reply;
    std::printf("ok=%s\nredis_node=%s\nredis_slot=%u\nredis_value=%s\ndocument=%s\nerror=%s\n", r.ok ? "yes" : "no",
                r.redis_node, r.redis_slot, r.redis_value, r.document_json, r.error);
    return r.ok ? 0 : 1;
}

int beat(Client &client, const std::string &user, const std::string &room, std::int64_t at, std::int64_t ttl) {
    levee::ctl::PresenceBatchFrame b({user}, room.c_str(), at > 0 ? at : levee::ctl::now_ms());
    if (ttl > 0) {
        b.batch.ttl_ms = static_cast<std::uint32_t>(ttl);
    }
    b.frame.request_id = 3;
    if (!client.send(b.frame)) {
        std::fprintf(stderr, "leveectl: %s\n", client.error().c_str());
        return 3;
    }
    levee::FramePtr reply = client.receive();
    if (!reply || reply->body_case != LEVEE__FRAME__BODY_PRESENCE_ACK) {
        std::fprintf(stderr, "leveectl: no presence ack: %s\n", client.error().c_str());
        return 3;
    }
    std::printf("ok=%s records=%u error=%s\n", reply->presence_ack->ok ? "yes" : "no", reply->presence_ack->records,
                reply->presence_ack->error);
    return reply->presence_ack->ok ? 0 : 1;
}

} // namespace

int main(int argc, char **argv) {
    std::string socket_path = "/run/levee/leveed.sock";
    std::string admin_socket_path;
    std::uint32_t version = LEVEE__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
    std::vector<std::string> args;
    std::int64_t at = 0, ttl = 0;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        if (a == "--socket" && i + 1 < argc) {
            socket_path = argv[++i];
        } else if (a == "--admin-socket" && i + 1 < argc) {
            admin_socket_path = argv[++i];
        } else if (a == "--at" && i + 1 < argc) {
            at = std::strtoll(argv[++i], nullptr, 10);
        } else if (a == "--ttl" && i + 1 < argc) {
            ttl = std::strtoll(argv[++i], nullptr, 10);
        } else if (a == "--protocol-version" && i + 1 < argc) {
            version = static_cast<std::uint32_t>(std::strtoul(argv[++i], nullptr, 10));
        } else if (a == "--help" || a == "-h") {
            std::fputs(kUsage, stdout);
            return 0;
        } else {
            args.push_back(a);
        }
    }
    if (socket_path.empty() || args.empty()) {
        std::fputs(kUsage, stderr);
        return 2;
    }
    if (admin_socket_path.empty()) {
        admin_socket_path = levee::default_admin_socket(socket_path);
    }
    const bool administrative = args[0] == "probe";
    Client client;
    if (!client.connect(administrative ? admin_socket_path : socket_path)) {
        std::fprintf(stderr, "leveectl: %s\n", client.error().c_str());
        return 3;
    }
    if (args[0] == "hello" && args.size() == 1) {
        return levee::ctl::hello(client, version, kProgram, false);
    }
    if (args[0] == "beat" && (args.size() == 2 || args.size() == 3)) {
        const int rc = levee::ctl::hello(client, version, kProgram, true);
        return rc != 0 ? rc : beat(client, args[1], args.size() == 3 ? args[2] : "", at, ttl);
    }
    if (args[0] == "probe" && args.size() == 3) {
        const int rc = levee::ctl::hello(client, version, kProgram, true);
        return rc != 0 ? rc : probe(client, args[1], args[2]);
    }
    std::fputs(kUsage, stderr);
    return 2;
}
