#include "probe.hpp"

#include <memory>

#include "cluster_client.hpp"
#include "crc16.hpp"
#include "document_store.hpp"
#include "keys.hpp"
#include "log.hpp"

namespace levee {
namespace {

// Collects both halves of a probe; replies once both have answered.
struct ProbeState {
    std::uint64_t request_id;
    std::string key;
    std::string value;
    Reply reply;
    int pending = 0;
    std::string error;
    std::string redis_node;
    std::uint32_t redis_slot = 0;
    std::string redis_value;
    std::string document_json;

    void fail(const std::string &why) {
        if (!error.empty()) {
            error += "; ";
        }
        error += why;
    }

    void finish_one() {
        if (--pending > 0) {
            return;
        }
        Levee__Frame frame = LEVEE__FRAME__INIT;
        Levee__ProbeReply out = LEVEE__PROBE_REPLY__INIT;
        frame.request_id = request_id;
        frame.body_case = LEVEE__FRAME__BODY_PROBE_REPLY;
        frame.probe_reply = &out;
        out.ok = error.empty();
        out.error = const_cast<char *>(error.c_str());
        out.redis_node = const_cast<char *>(redis_node.c_str());
        out.redis_slot = redis_slot;
        out.redis_value = const_cast<char *>(redis_value.c_str());
        out.document_json = const_cast<char *>(document_json.c_str());
        log::info("probe_done", {{"key", key}, {"ok", out.ok ? 1 : 0}, {"redis_node", redis_node}, {"error", error}});
        reply(frame);
    }
};

std::string json_escape(const std::string &s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(c);
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", c);
            out += buf;
        } else {
            out.push_back(c);
        }
    }
    return out;
}

void probe_redis(redis::ClusterClient &redis, const std::shared_ptr<ProbeState> &st) {
    const std::string key = redis::keys::probe(st->key);
    st->redis_slot = redis::key_slot(key);
    for (const auto &m : redis.masters()) {
        for (const auto &[lo, hi] : m.slot_ranges) {
            if (static_cast<int>(st->redis_slot) >= lo && static_cast<int>(st->redis_slot) <= hi) {
                st->redis_node = m.addr.str();
            }
        }
    }
    const bool queued = redis.command(key, {"SET", key, st->value}, [&redis, key, st](const redis::Reply &r) {
        if (r.type == redis::Reply::Type::Error) {
            st->fail("redis SET: " + r.str);
            st->finish_one();
            return;
        }
        const bool again = redis.command(key, {"GET", key}, [st](const redis::Reply &g) {
            if (g.type == redis::Reply::Type::String) {
                st->redis_value = g.str;
            } else {
                st->fail("redis GET: " + (g.str.empty() ? std::string("no value") : g.str));
            }
            st->finish_one();
        });
        if (!again) {
            st->fail("redis: too many commands in flight");
            st->finish_one();
        }
    });
    if (!queued) {
        st->fail("redis: too many commands in flight");
        st->finish_one();
    }
}

void probe_mongo(DocumentStore &mongo, const std::shared_ptr<ProbeState> &st) {
    const std::string fields = "{\"value\": \"" + json_escape(st->value) + "\"}";
    mongo.put("probes", st->key, fields, [&mongo, st](bool ok, const std::string &error) {
        if (!ok) {
            st->fail("mongo write: " + error);
            st->finish_one();
            return;
        }
        mongo.get("probes", st->key, [st](bool found_ok, const std::string &json, const std::string &err) {
            if (!found_ok) {
                st->fail("mongo read: " + err);
            } else if (json.empty()) {
                st->fail("mongo read: document not found");
            }
            st->document_json = json;
            st->finish_one();
        });
    });
}

} // namespace

void ProbeService::run(std::uint64_t request_id, const Levee__ProbeRequest &request, Reply reply) {
    auto st = std::make_shared<ProbeState>();
    st->request_id = request_id;
    st->key = request.key;
    st->value = request.value;
    st->reply = std::move(reply);
    st->pending = 2;

    if (redis_ != nullptr) {
        probe_redis(*redis_, st);
    } else {
        st->fail("no Redis Cluster configured");
        st->finish_one();
    }
    if (mongo_ != nullptr) {
        probe_mongo(*mongo_, st);
    } else {
        st->fail("no database configured");
        st->finish_one();
    }
}

} // namespace levee
