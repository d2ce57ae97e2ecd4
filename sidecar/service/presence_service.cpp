#include "presence_service.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <vector>

#include "cluster_client.hpp"
#include "crc16.hpp"
#include "document_store.hpp"
#include "event_ptr.hpp"
#include "keys.hpp"
#include "log.hpp"
#include "metrics.hpp"
#include "presence_writer.hpp"
#include "script.hpp"
#include "spool.hpp"

namespace levee {
namespace {

std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

void send_ack(const Reply &reply, std::uint64_t request_id, bool ok, std::uint32_t records, const std::string &error) {
    Levee__Frame frame = LEVEE__FRAME__INIT;
    Levee__PresenceAck ack = LEVEE__PRESENCE_ACK__INIT;
    frame.request_id = request_id;
    frame.body_case = LEVEE__FRAME__BODY_PRESENCE_ACK;
    frame.presence_ack = &ack;
    ack.ok = ok;
    ack.records = records;
    ack.error = const_cast<char *>(error.c_str());
    reply(frame);
}

// Counts the Redis answers of one batch and acknowledges when all are in.
struct BatchState {
    std::uint64_t request_id;
    std::uint32_t records;
    std::size_t pending;
    Reply reply;
    std::string error;         // the first error worth sending the batch again for
    bool unreplicated = false; // that error is a WAIT that saw too few replicas
    std::string lost_error;    // the first permanent one (is_permanent)
    std::uint64_t lost_users = 0;
    std::uint64_t lost_members = 0;
};

} // namespace

std::uint16_t presence_bucket(const std::string &user, std::uint16_t buckets) {
    return static_cast<std::uint16_t>(redis::crc16(user) % buckets);
}

PresenceService::PresenceService(redis::ClusterClient *redis, Spool *spool, DocumentStore *mongo, event_base *base,
                                 Metrics &metrics, std::uint16_t buckets, SpoolFeed::ToLoop to_loop)
    : redis_(redis), mongo_(mongo), base_(base), buckets_(buckets == 0 ? kDefaultPresenceBuckets : buckets),
      metrics_(metrics), spool_feed_(spool, metrics, std::move(to_loop)), loss_(metrics) {
    if (redis_ != nullptr) {
        room_beat_ = std::make_unique<redis::Script>(*redis_, lua::presence_room());
        room_query_ = std::make_unique<redis::Script>(*redis_, lua::presence_room_query());
    }
    metrics_.describe("leveed_presence_records_total", "counter", "Presence records received, by result.");
    metrics_.describe("leveed_presence_batches_total", "counter",
                      "Presence batches answered, by result (ok; partial: acknowledged although Redis refused some "
                      "of it for good, see leveed_presence_lost_total; error: failed, the module sends it again; "
                      "unreplicated: failed because WAIT saw fewer replicas than redis_wait_replicas, sent again "
                      "too; invalid).");
    metrics_.describe("leveed_presence_queries_total", "counter", "Presence queries answered, by kind and result.");
    metrics_.describe("leveed_presence_offline_lookups_total", "counter",
                      "Database lookups of offline users' last_seen, by result (ok, error, timeout, skipped: "
                      "too many waiting).");
}

PresenceService::~PresenceService() = default;

void PresenceService::handle(std::uint64_t request_id, const Levee__PresenceBatch &batch, Reply reply) {
    const std::uint32_t n = static_cast<std::uint32_t>(batch.n_records);
    const std::int64_t ttl_ms = batch.ttl_ms == 0 ? 180000 : batch.ttl_ms;

    std::vector<SpoolRecord> records;
    records.reserve(n);
    for (std::size_t i = 0; i < batch.n_records; i++) {
        const Levee__PresenceRecord &r = *batch.records[i];
        const std::size_t user_len = std::strlen(r.user);
        // last_seen + ttl must not overflow, and stays exact in the doubles
        // of Lua and JSON
        if (r.last_seen_ms < 0 || r.last_seen_ms > kMaxLastSeenMs) {
            metrics_.inc("leveed_presence_batches_total", {{"result", "invalid"}});
            send_ack(reply, request_id, false, n, "record " + std::to_string(i) + ": invalid last_seen_ms");
            return;
        }
        if (user_len == 0 || user_len > kMaxPresenceUserBytes || std::strlen(r.room) > kMaxPresenceUserBytes) {
            metrics_.inc("leveed_presence_batches_total", {{"result", "invalid"}});
            send_ack(reply, request_id, false, n, "record " + std::to_string(i) + ": invalid user or room");
            return;
        }
        records.push_back({r.user, r.room, r.last_seen_ms});
    }

    // Pending: this call, the spool, and (added below) each Redis command.
    auto st = std::make_shared<BatchState>(BatchState{request_id, n, 2, std::move(reply), "", false, "", 0, 0});
    auto finish_one = [this, st] {
        if (--st->pending > 0) {
            return;
        }
        // Only a batch that is acknowledged counts its losses: one failed is
        // sent again whole, and would count them twice.
        const bool ok = st->error.empty();
        const bool lost = !st->lost_error.empty();
        if (ok) {
            loss_.settle(st->lost_users, st->lost_members, st->lost_error, wall_ms());
        }
        const char *result = !ok ? (st->unreplicated ? "unreplicated" : "error") : lost ? "partial" : "ok";
        metrics_.inc("leveed_presence_records_total", {{"result", result}}, st->records);
        metrics_.inc("leveed_presence_batches_total", {{"result", result}});
        send_ack(st->reply, st->request_id, ok, st->records, st->error);
    };
    // The spool first: once the batch is there, the database gets it even if
    // leveed dies before Redis answers (the module resends; $max makes that harmless).
    // With spool_fsync always the ack also waits until the sync thread made
    // it durable. A spool that cannot take it costs the database's copy only,
    // never the ack.
    spool_feed_.append(records, finish_one);

    if (redis_ == nullptr) {
        const std::int64_t now = wall_ms();
        for (const auto &r : records) {
            Local &l = local_[r.user];
            l.last_seen_ms = std::max(l.last_seen_ms, r.last_seen_ms);
            l.expires_ms = std::max(l.expires_ms, std::max(now, r.last_seen_ms) + ttl_ms);
            if (!r.room.empty()) {
                std::int64_t &exp = local_rooms_[r.room][r.user];
                exp = std::max(exp, r.last_seen_ms + ttl_ms);
            }
        }
        finish_one();
        return;
    }

    // Members of each room go in one command per kRoomMembersPerCall members
    // of that room, users in one command per bucket: a batch of 1,000 users in
    // 3 rooms costs at most 67 commands (and one ZREMRANGEBYSCORE per bucket),
    // pipelined per node by the client.
    std::map<std::string, std::vector<std::vector<std::string>>> rooms; // room -> script ARGV per call
    for (const auto &r : records) {
        if (!r.room.empty()) {
            auto &calls = rooms[r.room];
            if (calls.empty() || calls.back().size() == 2 * kRoomMembersPerCall) {
                calls.emplace_back();
            }
            calls.back().push_back(std::to_string(r.last_seen_ms + ttl_ms));
            calls.back().push_back(r.user);
        }
    }
    std::size_t room_calls = 0;
    for (const auto &[room, calls] : rooms) {
        room_calls += calls.size();
    }
    // Sized before they are filled: a batch carries thousands of records.
    std::vector<std::uint16_t> bucket_of(records.size());
    std::vector<std::uint32_t> per_bucket(buckets_, 0);
    for (std::size_t i = 0; i < records.size(); i++) {
        bucket_of[i] = presence_bucket(records[i].user, buckets_);
        per_bucket[bucket_of[i]]++;
    }
    std::map<std::uint16_t, std::vector<std::string>> buckets; // bucket -> ZADD argv
    for (std::size_t i = 0; i < records.size(); i++) {
        std::vector<std::string> &zadd = buckets[bucket_of[i]];
        if (zadd.empty()) {
            zadd.reserve(3 + 2 * std::size_t{per_bucket[bucket_of[i]]});
            zadd = {"ZADD", redis::keys::presence_bucket(bucket_of[i], ttl_ms), "GT"};
        }
        zadd.push_back(std::to_string(records[i].last_seen_ms + ttl_ms));
        zadd.push_back(std::move(records[i].user)); // the spool has its copy already
    }
    const std::int64_t now = wall_ms();
    std::vector<std::vector<std::string>> upkeep = maintenance(buckets, ttl_ms, now);

    st->pending += 2 * buckets.size() + upkeep.size() + room_calls;
    // The answer to a command carrying `users` users' presence or `members`
    // room members.
    auto answered_for = [st, finish_one](std::uint64_t users, std::uint64_t members) {
        return [st, finish_one, users, members](const redis::Reply &answer) {
            if (answer.is_error() && is_permanent(answer)) {
                st->lost_users += users;
                st->lost_members += members;
                if (st->lost_error.empty()) {
                    st->lost_error = "redis: " + answer.str;
                }
            } else if (answer.is_error() && st->error.empty()) {
                st->error = "redis: " + answer.str;
            } else if (answer.unreplicated && st->error.empty()) {
                // Acknowledged, a master killed now could take these beats
                // with it: the module keeps them and sends them again.
                st->error = "redis: not replicated: WAIT saw fewer replicas than redis_wait_replicas";
                st->unreplicated = true;
            }
            finish_one();
        };
    };
    const auto answered = answered_for(0, 0);
    auto refused = [this, &st, &finish_one] {
        metrics_.inc("leveed_presence_refused_total");
        if (st->error.empty()) {
            st->error = "redis: too many commands in flight";
        }
        finish_one();
    };
    auto send = [this, &refused](std::vector<std::string> argv, redis::ClusterClient::Callback then) {
        const std::string key = argv[1];
        if (!redis_->command(key, std::move(argv), std::move(then))) {
            refused();
        }
    };
    for (auto &[bucket, zadd] : buckets) {
        const std::string key = zadd[1];
        const std::uint64_t users = (zadd.size() - 3) / 2;
        send(std::move(zadd), answered_for(users, 0));
        // Expired members go lazily: nearly free when there are none.
        send({"ZREMRANGEBYSCORE", key, "-inf", "(" + std::to_string(now)}, answered);
    }
    for (auto &argv : upkeep) {
        const std::string key = argv[1];
        const std::string mark = argv[0] == "SADD" ? "ttl:" + argv[2] : key;
        if (!redis_->command(key, std::move(argv), [this, mark, answered](const redis::Reply &answer) {
                if (answer.is_error()) {
                    maintained_.erase(mark); // the next batch tries again
                }
                answered(answer);
            })) {
            maintained_.erase(mark);
            refused();
        }
    }
    for (auto &[room, calls] : rooms) {
        for (auto &args : calls) {
            const std::uint64_t members = args.size() / 2;
            if (!room_beat_->run({redis::keys::room(room)}, std::move(args), answered_for(0, members))) {
                refused();
            }
        }
    }
    finish_one();
}

std::vector<std::vector<std::string>>
PresenceService::maintenance(const std::map<std::uint16_t, std::vector<std::string>> &buckets, std::int64_t ttl_ms,
                             std::int64_t now) {
    // A presence key outlives its latest member by a margin and is refreshed
    // every kUpkeepMs, so an abandoned bucket vanishes; a PEXPIRE per batch
    // and bucket cost more Redis CPU than the ZADD itself. The ttl is written
    // where queries look for it, again every kUpkeepMs in case a failover
    // lost it.
    constexpr std::int64_t kUpkeepMs = 10000;
    constexpr std::int64_t kMarginMs = 60000;
    std::vector<std::vector<std::string>> out;
    auto due = [this, now](const std::string &mark) {
        std::int64_t &last = maintained_[mark];
        if (now - last < kUpkeepMs) {
            return false;
        }
        last = now;
        return true;
    };
    const std::string ttl = std::to_string(ttl_ms);
    if (due("ttl:" + ttl)) {
        out.push_back({"SADD", std::string(redis::keys::kPresenceTtlsKey), ttl});
    }
    for (const auto &[bucket, zadd] : buckets) {
        if (due(zadd[1])) {
            out.push_back({"PEXPIRE", zadd[1], std::to_string(ttl_ms + kMarginMs)});
        }
    }
    return out;
}

namespace {

constexpr std::uint32_t kDefaultMembers = 100;
constexpr std::uint32_t kMaxMembers = 1000;
constexpr std::size_t kMaxQueryUsers = 1000;

// An offline lookup ends once: with the database's answer or at its deadline.
struct OfflineLookup {
    std::function<void()> then;
    bool finished = false;
    EventPtr deadline;

    void finish() {
        if (!finished) {
            finished = true;
            deadline.reset();
            then();
        }
    }
};

} // namespace

// Owns the strings a PresenceQueryReply points into until it is sent.
struct QueryAnswer {
    std::string error;
    std::vector<std::string> users;
    std::vector<bool> online;
    std::vector<std::int64_t> last_seen;
    std::string room;
    std::uint32_t count = 0;
    std::vector<std::string> members;

    void send(const Reply &reply, std::uint64_t request_id) const {
        Levee__Frame frame = LEVEE__FRAME__INIT;
        Levee__PresenceQueryReply r = LEVEE__PRESENCE_QUERY_REPLY__INIT;
        std::vector<Levee__PresenceUserState> states(users.size());
        std::vector<Levee__PresenceUserState *> state_ptrs(users.size());
        std::vector<char *> member_ptrs(members.size());
        for (std::size_t i = 0; i < users.size(); i++) {
            levee__presence_user_state__init(&states[i]);
            states[i].user = const_cast<char *>(users[i].c_str());
            states[i].online = online[i];
            states[i].last_seen_ms = last_seen[i];
            state_ptrs[i] = &states[i];
        }
        for (std::size_t i = 0; i < members.size(); i++) {
            member_ptrs[i] = const_cast<char *>(members[i].c_str());
        }
        r.ok = error.empty();
        r.error = const_cast<char *>(error.c_str());
        r.n_users = users.size();
        r.users = state_ptrs.data();
        r.room = const_cast<char *>(room.c_str());
        r.count = count;
        r.n_members = members.size();
        r.members = member_ptrs.data();
        frame.request_id = request_id;
        frame.body_case = LEVEE__FRAME__BODY_PRESENCE_QUERY_REPLY;
        frame.presence_query_reply = &r;
        reply(frame);
    }
};

void PresenceService::query(std::uint64_t request_id, const Levee__PresenceQuery &q, Reply reply) {
    auto a = std::make_shared<QueryAnswer>();
    const bool by_room = q.room != nullptr && q.room[0] != '\0';
    const char *kind = by_room ? "room" : "users";
    a->room = by_room ? q.room : "";
    const std::uint32_t limit = q.limit == 0 ? kDefaultMembers : std::min(q.limit, kMaxMembers);

    if ((by_room && q.n_users > 0) || (!by_room && q.n_users == 0) || q.n_users > kMaxQueryUsers) {
        a->error = "a query names a room or 1 to " + std::to_string(kMaxQueryUsers) + " users";
    }
    for (std::size_t i = 0; i < q.n_users && a->error.empty(); i++) {
        const std::size_t len = std::strlen(q.users[i]);
        if (len == 0 || len > kMaxPresenceUserBytes) {
            a->error = "invalid user";
        }
        a->users.emplace_back(q.users[i]);
    }
    if (!a->error.empty()) {
        a->users.clear();
        metrics_.inc("leveed_presence_queries_total", {{"kind", kind}, {"result", "invalid"}});
        a->send(reply, request_id);
        return;
    }
    a->online.assign(a->users.size(), false);
    a->last_seen.assign(a->users.size(), 0);
    const std::int64_t now = wall_ms();

    if (redis_ == nullptr) {
        for (std::size_t i = 0; i < a->users.size(); i++) {
            const auto it = local_.find(a->users[i]);
            if (it != local_.end()) {
                a->online[i] = it->second.expires_ms > now;
                a->last_seen[i] = it->second.last_seen_ms;
            }
        }
        if (by_room) {
            auto it = local_rooms_.find(a->room);
            if (it != local_rooms_.end()) {
                std::vector<std::pair<std::int64_t, std::string>> live;
                for (auto m = it->second.begin(); m != it->second.end();) {
                    if (m->second < now) {
                        m = it->second.erase(m);
                    } else {
                        live.emplace_back(m->second, m->first);
                        ++m;
                    }
                }
                if (it->second.empty()) {
                    local_rooms_.erase(it);
                }
                std::sort(live.rbegin(), live.rend());
                a->count = static_cast<std::uint32_t>(live.size());
                for (std::size_t i = 0; i < live.size() && i < limit; i++) {
                    a->members.push_back(live[i].second);
                }
            }
        }
        lookup_offline(a, [this, a, reply, request_id, kind] {
            metrics_.inc("leveed_presence_queries_total", {{"kind", kind}, {"result", "ok"}});
            a->send(reply, request_id);
        });
        return;
    }

    auto done = [this, a, request_id, kind](const Reply &reply) {
        metrics_.inc("leveed_presence_queries_total", {{"kind", kind}, {"result", a->error.empty() ? "ok" : "error"}});
        if (!a->error.empty()) {
            a->users.clear();
            a->members.clear();
        }
        a->send(reply, request_id);
    };
    const std::string too_many = "redis: too many commands in flight";

    if (by_room) {
        auto on_answer = [a, done, reply](const redis::Reply &r) {
            if (r.is_error()) {
                a->error = "redis: " + r.str;
            } else if (r.type == redis::Reply::Type::Array && !r.elements.empty()) {
                a->count = static_cast<std::uint32_t>(r.elements[0].integer);
                for (std::size_t i = 1; i < r.elements.size(); i++) {
                    a->members.push_back(r.elements[i].str);
                }
            }
            done(reply);
        };
        if (!room_query_->run({redis::keys::room(a->room)}, {std::to_string(now), std::to_string(limit)}, on_answer)) {
            a->error = too_many;
            done(reply);
        }
        return;
    }

    // Which ttls presence keys exist for, then one ZMSCORE per bucket and ttl.
    auto on_ttls = [this, a, done, reply, now, too_many](const redis::Reply &r) {
        if (r.is_error()) {
            a->error = "redis: " + r.str;
            done(reply);
            return;
        }
        std::vector<std::int64_t> ttls;
        for (const redis::Reply &e : r.elements) {
            const std::int64_t t = std::strtoll(e.str.c_str(), nullptr, 10);
            if (t > 0) {
                ttls.push_back(t);
            }
        }
        std::map<std::uint16_t, std::vector<std::size_t>> by_bucket; // bucket -> indexes into a->users
        for (std::size_t i = 0; i < a->users.size(); i++) {
            by_bucket[presence_bucket(a->users[i], buckets_)].push_back(i);
        }
        auto left = std::make_shared<std::size_t>(ttls.size() * by_bucket.size() + 1);
        auto finish_one = [this, a, left, done, reply] {
            if (--*left == 0) {
                lookup_offline(a, [done, reply] { done(reply); });
            }
        };
        for (const std::int64_t ttl : ttls) {
            for (const auto &[bucket, indexes] : by_bucket) {
                std::vector<std::string> argv = {"ZMSCORE", redis::keys::presence_bucket(bucket, ttl)};
                for (const std::size_t i : indexes) {
                    argv.push_back(a->users[i]);
                }
                const std::string key = argv[1];
                // (a copy by name: capturing a structured binding is C++20, clang 14 refuses it)
                auto on_scores = [a, indexes = indexes, ttl, now, finish_one](const redis::Reply &scores) {
                    if (scores.is_error()) {
                        if (a->error.empty()) {
                            a->error = "redis: " + scores.str;
                        }
                    } else {
                        for (std::size_t k = 0; k < scores.elements.size() && k < indexes.size(); k++) {
                            if (scores.elements[k].type != redis::Reply::Type::String) {
                                continue; // not in this key
                            }
                            // a score is printed as a double
                            const auto expires =
                                static_cast<std::int64_t>(std::strtod(scores.elements[k].str.c_str(), nullptr));
                            const std::size_t i = indexes[k];
                            // an expired member not yet removed still says when the user was seen
                            a->online[i] = a->online[i] || expires > now;
                            a->last_seen[i] = std::max(a->last_seen[i], expires - ttl);
                        }
                    }
                    finish_one();
                };
                if (!redis_->command(key, std::move(argv), on_scores)) {
                    if (a->error.empty()) {
                        a->error = too_many;
                    }
                    finish_one();
                }
            }
        }
        finish_one();
    };
    if (!redis_->command(redis::keys::kPresenceTtlsKey, {"SMEMBERS", std::string(redis::keys::kPresenceTtlsKey)},
                         on_ttls)) {
        a->error = too_many;
        done(reply);
    }
}

void PresenceService::lookup_offline(const std::shared_ptr<QueryAnswer> &a, std::function<void()> then) {
    std::vector<std::string> ids;
    std::vector<std::size_t> at;
    for (std::size_t i = 0; i < a->users.size(); i++) {
        if (a->last_seen[i] == 0) {
            ids.push_back(a->users[i]);
            at.push_back(i);
        }
    }
    if (mongo_ == nullptr || base_ == nullptr || !a->error.empty() || ids.empty()) {
        then();
        return;
    }
    // A database that is away holds each lookup for its server selection
    // timeout: past a few waiting, answer without it rather than queue more.
    if (mongo_->queued() >= kMaxOfflineLookups) {
        metrics_.inc("leveed_presence_offline_lookups_total", {{"result", "skipped"}});
        then();
        return;
    }
    auto lookup = std::make_shared<OfflineLookup>();
    lookup->then = std::move(then);
    lookup->deadline = start_timer(
        base_, kOfflineLookupMs, [](evutil_socket_t, short, void *arg) { static_cast<OfflineLookup *>(arg)->finish(); },
        lookup.get());
    mongo_->last_seen(kPresenceCollection, ids, kOfflineLookupMs,
                      [this, a, at, ids, lookup](bool ok, DocumentStore::LastSeen seen, const std::string &error) {
                          if (lookup->finished) {
                              metrics_.inc("leveed_presence_offline_lookups_total", {{"result", "timeout"}});
                              return;
                          }
                          metrics_.inc("leveed_presence_offline_lookups_total", {{"result", ok ? "ok" : "error"}});
                          if (!ok) {
                              log_throttle_.warn("presence_offline_lookup_failed", {{"error", error}});
                          }
                          for (std::size_t k = 0; k < ids.size(); k++) {
                              const auto it = seen.find(ids[k]);
                              if (it != seen.end()) {
                                  a->last_seen[at[k]] = it->second;
                              }
                          }
                          lookup->finish();
                      });
}

} // namespace levee
