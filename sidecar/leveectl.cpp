// leveectl: talks to a running leveed over its socket, as an nginx worker
// would. For operators checking a deployment, and for the tests.

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <thread>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "frame_codec.hpp"

namespace {

constexpr const char *kUsage =
    "usage: leveectl --socket PATH [--protocol-version N] COMMAND\n"
    "  hello              say hello and print leveed's answer\n"
    "  probe KEY VALUE    write KEY into Redis and a document into the database,\n"
    "                     read both back through leveed, print what came back\n"
    "  beat USER [ROOM] [--at MS] [--ttl MS]\n"
    "                     send one presence record (last_seen = MS since the epoch,\n"
    "                     default now; ttl default 180000) and wait for the ack\n"
    "  bench-presence SECONDS BATCH IN_FLIGHT USERS\n"
    "                     send presence batches for SECONDS with IN_FLIGHT batches\n"
    "                     unacknowledged at most; print acknowledged records/s\n"
    "  presence-stream SECONDS USERS BATCH OUT_FILE\n"
    "                     beat USERS users round-robin with ever larger last_seen,\n"
    "                     resending a batch until it is acknowledged (as nginx does);\n"
    "                     then write \"user last_seen\" of every acknowledged beat to OUT_FILE\n"
    "exit: 0 ok, 1 refused or failed, 2 usage, 3 cannot reach leveed\n";

class Client {
  public:
    ~Client() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    bool connect(const std::string &path) {
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (path.size() >= sizeof(addr.sun_path)) {
            error_ = "socket path too long";
            return false;
        }
        std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0) {
            error_ = "connect(" + path + "): " + std::strerror(errno);
            return false;
        }
        timeval tv{30, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        return true;
    }
    bool send(const Levee__Frame &frame) {
        std::vector<std::uint8_t> out;
        if (!levee::encode_frame(frame, out)) {
            error_ = "frame too large";
            return false;
        }
        std::size_t off = 0;
        while (off < out.size()) {
            const ssize_t n = ::send(fd_, out.data() + off, out.size() - off, MSG_NOSIGNAL);
            if (n <= 0) {
                error_ = std::string("send: ") + std::strerror(errno);
                return false;
            }
            off += static_cast<std::size_t>(n);
        }
        return true;
    }
    levee::FramePtr receive() {
        for (;;) {
            levee::DecodeResult r = levee::decode_frame(in_.data(), in_.size(), levee::kDefaultMaxFrameBytes);
            if (r.status == levee::DecodeStatus::kFrame) {
                in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(r.consumed));
                return std::move(r.frame);
            }
            if (r.status != levee::DecodeStatus::kNeedMore) {
                error_ = std::string("bad frame from leveed: ") + levee::decode_status_name(r.status);
                return nullptr;
            }
            std::uint8_t buf[65536];
            const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
            if (n <= 0) {
                error_ = n == 0 ? "leveed closed the connection" : std::string("recv: ") + std::strerror(errno);
                return nullptr;
            }
            in_.insert(in_.end(), buf, buf + n);
        }
    }
    const std::string &error() const { return error_; }

  private:
    int fd_ = -1;
    std::vector<std::uint8_t> in_;
    std::string error_;
};

// Returns 0 when leveed accepted the hello.
int hello(Client &client, std::uint32_t version, bool quiet) {
    Levee__Frame frame = LEVEE__FRAME__INIT;
    Levee__Hello h = LEVEE__HELLO__INIT;
    h.protocol_version = version;
    h.client = const_cast<char *>("leveectl/0.1.0");
    h.pid = static_cast<std::uint32_t>(::getpid());
    frame.request_id = 1;
    frame.body_case = LEVEE__FRAME__BODY_HELLO;
    frame.hello = &h;
    if (!client.send(frame)) {
        std::fprintf(stderr, "leveectl: %s\n", client.error().c_str());
        return 3;
    }
    levee::FramePtr reply = client.receive();
    if (!reply || reply->body_case != LEVEE__FRAME__BODY_HELLO_REPLY) {
        std::fprintf(stderr, "leveectl: no hello reply: %s\n", client.error().c_str());
        return 3;
    }
    const Levee__HelloReply &r = *reply->hello_reply;
    if (!quiet || !r.accepted) {
        std::printf("accepted=%s server=%s protocol_version=%u standalone=%s reason=\"%s\"\n",
                    r.accepted ? "yes" : "no", r.server, r.protocol_version, r.standalone ? "yes" : "no", r.reason);
    }
    return r.accepted ? 0 : 1;
}

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
    std::printf("ok=%s\nredis_node=%s\nredis_slot=%u\nredis_value=%s\ndocument=%s\nerror=%s\n",
                r.ok ? "yes" : "no", r.redis_node, r.redis_slot, r.redis_value, r.document_json, r.error);
    return r.ok ? 0 : 1;
}

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// A PresenceBatch frame of one record per name.
struct BatchFrame {
    std::vector<std::string> names;
    std::vector<Levee__PresenceRecord> records;
    std::vector<Levee__PresenceRecord *> pointers;
    Levee__PresenceBatch batch = LEVEE__PRESENCE_BATCH__INIT;
    Levee__Frame frame = LEVEE__FRAME__INIT;

    BatchFrame(std::vector<std::string> users, const char *room, std::int64_t seen) : names(std::move(users)) {
        records.resize(names.size());
        pointers.resize(names.size());
        for (std::size_t i = 0; i < names.size(); i++) {
            levee__presence_record__init(&records[i]);
            records[i].user = const_cast<char *>(names[i].c_str());
            records[i].room = const_cast<char *>(room);
            records[i].last_seen_ms = seen;
            pointers[i] = &records[i];
        }
        batch.ttl_ms = 180000;
        batch.n_records = names.size();
        batch.records = pointers.data();
        frame.body_case = LEVEE__FRAME__BODY_PRESENCE_BATCH;
        frame.presence_batch = &batch;
    }
};

int beat(Client &client, const std::string &user, const std::string &room, std::int64_t at, std::int64_t ttl) {
    BatchFrame b({user}, room.c_str(), at > 0 ? at : now_ms());
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

int bench_presence(Client &client, int seconds, int batch, int in_flight, int users) {
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
            BatchFrame b(names, "", now_ms());
            b.frame.request_id = ++request;
            if (!client.send(b.frame)) {
                std::fprintf(stderr, "leveectl: %s\n", client.error().c_str());
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
            std::fprintf(stderr, "leveectl: no presence ack: %s\n", client.error().c_str());
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
    std::int64_t seen = now_ms();
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
        BatchFrame b(names, "", seen);
        for (;;) {
            if (!client) {
                client = std::make_unique<Client>();
                if (!client->connect(socket_path) || hello(*client, version, true) != 0) {
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
        std::fprintf(stderr, "leveectl: cannot write %s\n", out_file.c_str());
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
    std::int64_t at = 0, ttl = 0;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        if (a == "--socket" && i + 1 < argc) {
            socket_path = argv[++i];
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
    if (args[0] == "presence-stream" && args.size() == 5) {
        return presence_stream(socket_path, version, std::atoi(args[1].c_str()), std::atoi(args[2].c_str()),
                               std::atoi(args[3].c_str()), args[4]);
    }
    Client client;
    if (!client.connect(socket_path)) {
        std::fprintf(stderr, "leveectl: %s\n", client.error().c_str());
        return 3;
    }
    if (args[0] == "hello" && args.size() == 1) {
        return hello(client, version, false);
    }
    if (args[0] == "beat" && (args.size() == 2 || args.size() == 3)) {
        const int rc = hello(client, version, true);
        return rc != 0 ? rc : beat(client, args[1], args.size() == 3 ? args[2] : "", at, ttl);
    }
    if (args[0] == "bench-presence" && args.size() == 5) {
        const int rc = hello(client, version, true);
        return rc != 0 ? rc
                       : bench_presence(client, std::atoi(args[1].c_str()), std::atoi(args[2].c_str()),
                                        std::atoi(args[3].c_str()), std::atoi(args[4].c_str()));
    }
    if (args[0] == "probe" && args.size() == 3) {
        const int rc = hello(client, version, true);
        return rc != 0 ? rc : probe(client, args[1], args[2]);
    }
    std::fputs(kUsage, stderr);
    return 2;
}
