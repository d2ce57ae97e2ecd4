// An owned copy of a hiredis reply: callbacks never see hiredis memory, so a
// reply may be kept after the callback returns and hiredis frees its own.
#pragma once

#include <string>
#include <string_view>
#include <vector>

struct redisReply;
struct redisReader;

namespace levee::redis {

struct Reply {
    enum class Type { String, Array, Integer, Nil, Status, Error };

    Type type = Type::Nil;
    long long integer = 0;
    std::string str; // String, Status and Error
    std::vector<Reply> elements;
    // Set by the cluster client on a reply that a WAIT followed and that
    // fewer replicas than `wait_replicas` confirmed (or the WAIT failed):
    // Redis ran the command, but its master may still take it along if it
    // dies before replicating. Callers that promise durability treat it as
    // not done; the reply itself is Redis's.
    bool unreplicated = false;

    static Reply from_hiredis(const redisReply &r);
    static Reply error(std::string message);
    static Reply status(std::string message);

    bool is_error() const { return type == Type::Error; }
    // True for an Error whose message starts with `prefix` followed by a
    // space or the end (Redis error codes: "MOVED", "ASK", "CLUSTERDOWN"...).
    bool error_is(std::string_view prefix) const;
};

// Elements an array reply may declare. hiredis 0.14 allocates the array as
// soon as it reads the header, so one line from a broken or hostile peer
// ("*2147483647") would ask for 16 GiB; the largest real reply (CLUSTER
// SLOTS of a fragmented cluster, a big room's members) is far below this.
constexpr int kMaxReplyElements = 1 << 20;

// A hiredis reply parser that fails with a protocol error on an array
// header above kMaxReplyElements. Free it with redisReaderFree().
redisReader *new_reply_reader();

} // namespace levee::redis
