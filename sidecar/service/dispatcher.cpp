#include "dispatcher.hpp"

#include <algorithm>
#include <chrono>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "log.hpp"
#include "metrics.hpp"
#include "levee_version.h"

namespace levee {

namespace {
constexpr const char *kServerName = "leveed/" LEVEE_VERSION;
}

const char *frame_type_name(Levee__Frame__BodyCase body) {
    switch (body) {
    case LEVEE__FRAME__BODY_HELLO: return "hello";
    case LEVEE__FRAME__BODY_HELLO_REPLY: return "hello_reply";
    case LEVEE__FRAME__BODY_PROBE: return "probe";
    case LEVEE__FRAME__BODY_PROBE_REPLY: return "probe_reply";
    case LEVEE__FRAME__BODY_PRESENCE_BATCH: return "presence_batch";
    case LEVEE__FRAME__BODY_PRESENCE_ACK: return "presence_ack";
    case LEVEE__FRAME__BODY_PRESENCE_QUERY: return "presence_query";
    case LEVEE__FRAME__BODY_PRESENCE_QUERY_REPLY: return "presence_query_reply";
    case LEVEE__FRAME__BODY_LIMIT_LEASE: return "limit_lease";
    case LEVEE__FRAME__BODY_LIMIT_LEASE_REPLY: return "limit_lease_reply";
    case LEVEE__FRAME__BODY_REGISTRY_BATCH: return "registry_batch";
    case LEVEE__FRAME__BODY_REGISTRY_ACK: return "registry_ack";
    case LEVEE__FRAME__BODY__NOT_SET: break;
    case _LEVEE__FRAME__BODY__CASE_IS_INT_SIZE: break;
    }
    return "unknown";
}

std::uint64_t request_cost(const Levee__Frame &frame, std::uint32_t presence_buckets) {
    switch (frame.body_case) {
    case LEVEE__FRAME__BODY_PRESENCE_BATCH: {
        // Records are grouped: a ZADD and now and then a PEXPIRE per bucket,
        // one SADD, one script per kRoomMembersPerCall members of a room. The
        // module keeps up to 32 batches of 4000 records in flight: counting
        // records would refuse it.
        const Levee__PresenceBatch &b = *frame.presence_batch;
        std::unordered_map<std::string_view, std::size_t> rooms; // room -> members
        for (std::size_t i = 0; i < b.n_records; i++) {
            if (b.records[i]->room != nullptr && b.records[i]->room[0] != '\0') {
                rooms[b.records[i]->room]++;
            }
        }
        std::uint64_t room_calls = 0;
        for (const auto &[room, members] : rooms) {
            room_calls += (members + kRoomMembersPerCall - 1) / kRoomMembersPerCall;
        }
        return std::min<std::uint64_t>(b.n_records, 2 * std::uint64_t{presence_buckets} + 1) + room_calls;
    }
    case LEVEE__FRAME__BODY_PRESENCE_QUERY: return std::max<std::uint64_t>(1, frame.presence_query->n_users);
    case LEVEE__FRAME__BODY_LIMIT_LEASE: return frame.limit_lease->n_entries;
    case LEVEE__FRAME__BODY_REGISTRY_BATCH: return frame.registry_batch->n_entries;
    case LEVEE__FRAME__BODY_PROBE: return 1;
    default: return 0;
    }
}

Dispatcher::Dispatcher(Metrics &metrics, ProbeService &probe, PresenceService &presence, LimitService &limit,
                       RegistryService &registry, bool standalone)
    : metrics_(metrics), probe_(probe), presence_(presence), limit_(limit), registry_(registry),
      standalone_(standalone) {
    metrics_.describe("leveed_frames_in_total", "counter", "Frames received, by message type.");
    metrics_.describe("leveed_frames_out_total", "counter", "Frames sent, by message type.");
    metrics_.describe("leveed_replies_dropped_total", "counter", "Replies whose connection closed first.");
    metrics_.describe("leveed_hello_total", "counter", "Hellos by result (accepted, refused).");
    metrics_.describe_histogram("leveed_frame_duration_seconds",
                                "From a request frame's arrival to its reply, by reply type.",
                                {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 5});
    metrics_.describe("leveed_requests_refused_total", "counter",
                      "Requests answered with an error unstarted, by reason (connection_in_flight; admin_only: a "
                      "probe on nginx's socket; undeclared_registry: a registry batch whose TTL the hello did not "
                      "declare).");
}

void Dispatcher::send(FrameConnection &conn, const Levee__Frame &frame) {
    if (conn.send(frame)) {
        metrics_.inc("leveed_frames_out_total", {{"type", frame_type_name(frame.body_case)}});
    }
}

Reply Dispatcher::replier(const FrameConnection &conn, std::uint64_t cost) {
    const std::uint64_t id = conn.id();
    const bool admin = conn.admin;
    const auto received = std::chrono::steady_clock::now();
    return [this, id, admin, cost, received](const Levee__Frame &frame) {
        const std::chrono::duration<double> took = std::chrono::steady_clock::now() - received;
        metrics_.observe("leveed_frame_duration_seconds", {{"type", frame_type_name(frame.body_case)}}, took.count());
        FrameServer *server = admin ? admin_server_ : server_;
        FrameConnection *c = server ? server->find(id) : nullptr;
        if (c == nullptr) {
            metrics_.inc("leveed_replies_dropped_total");
            return;
        }
        c->in_flight -= std::min(cost, c->in_flight);
        send(*c, frame);
    };
}

void Dispatcher::refuse(FrameConnection &conn, const Levee__Frame &frame, const std::string &error) {
    Levee__Frame out = LEVEE__FRAME__INIT;
    out.request_id = frame.request_id;
    char *text = const_cast<char *>(error.c_str());
    Levee__ProbeReply probe = LEVEE__PROBE_REPLY__INIT;
    Levee__PresenceAck ack = LEVEE__PRESENCE_ACK__INIT;
    Levee__PresenceQueryReply query = LEVEE__PRESENCE_QUERY_REPLY__INIT;
    Levee__LimitLeaseReply lease = LEVEE__LIMIT_LEASE_REPLY__INIT;
    Levee__RegistryAck registry = LEVEE__REGISTRY_ACK__INIT;
    std::vector<Levee__LimitLeaseGrant> grants;
    std::vector<Levee__LimitLeaseGrant *> grant_ptrs;
    switch (frame.body_case) {
    case LEVEE__FRAME__BODY_PROBE:
        probe.error = text;
        out.body_case = LEVEE__FRAME__BODY_PROBE_REPLY;
        out.probe_reply = &probe;
        break;
    case LEVEE__FRAME__BODY_PRESENCE_BATCH:
        ack.error = text;
        out.body_case = LEVEE__FRAME__BODY_PRESENCE_ACK;
        out.presence_ack = &ack;
        break;
    case LEVEE__FRAME__BODY_PRESENCE_QUERY:
        query.error = text;
        out.body_case = LEVEE__FRAME__BODY_PRESENCE_QUERY_REPLY;
        out.presence_query_reply = &query;
        break;
    case LEVEE__FRAME__BODY_LIMIT_LEASE:
        // Each key failed, as when Redis does not answer: the module lets
        // levee_limit_fail decide for them until a lease succeeds.
        grants.resize(frame.limit_lease->n_entries);
        for (std::size_t i = 0; i < grants.size(); i++) {
            const Levee__LimitLeaseEntry &e = *frame.limit_lease->entries[i];
            levee__limit_lease_grant__init(&grants[i]);
            grants[i].zone = e.zone;
            grants[i].key = e.key;
            grants[i].failed = true;
            grant_ptrs.push_back(&grants[i]);
        }
        lease.n_grants = grant_ptrs.size();
        lease.grants = grant_ptrs.data();
        lease.error = text;
        out.body_case = LEVEE__FRAME__BODY_LIMIT_LEASE_REPLY;
        out.limit_lease_reply = &lease;
        break;
    case LEVEE__FRAME__BODY_REGISTRY_BATCH:
        registry.error = text;
        out.body_case = LEVEE__FRAME__BODY_REGISTRY_ACK;
        out.registry_ack = &registry;
        break;
    default: return;
    }
    send(conn, out);
}

bool Dispatcher::forbidden(FrameConnection &conn, const Levee__Frame &frame) {
    const char *reason = nullptr;
    std::string error;
    if (frame.body_case == LEVEE__FRAME__BODY_PROBE && !conn.admin) {
        reason = "admin_only";
        error = "leveed: probe is administrative, served on the admin socket only (leveectl --admin-socket)";
    } else if (frame.body_case == LEVEE__FRAME__BODY_REGISTRY_BATCH &&
               std::find(conn.registry_ttl_ms.begin(), conn.registry_ttl_ms.end(), frame.registry_batch->ttl_ms) ==
                   conn.registry_ttl_ms.end()) {
        reason = "undeclared_registry";
        error = "leveed: no registry with ttl " + std::to_string(frame.registry_batch->ttl_ms) +
                " ms was declared at hello";
    } else {
        return false;
    }
    metrics_.inc("leveed_requests_refused_total", {{"reason", reason}});
    log_throttle_.warn(std::string("request_refused/") + reason, "request_refused",
                       {{"conn", conn.id()}, {"peer", conn.peer}, {"reason", reason}, {"error", error}});
    refuse(conn, frame, error);
    return true;
}

void Dispatcher::handle(FrameConnection &conn, FramePtr frame) {
    metrics_.inc("leveed_frames_in_total", {{"type", frame_type_name(frame->body_case)}});

    if (frame->body_case == LEVEE__FRAME__BODY_HELLO) {
        on_hello(conn, *frame);
        return;
    }
    if (!conn.hello_done()) {
        log::warn("protocol_error", {{"conn", conn.id()}, {"reason", "request before hello"}});
        conn.close_when_flushed("no_hello");
        return;
    }
    if (forbidden(conn, *frame)) {
        return;
    }
    // The Redis client's budget of commands in flight is shared by every
    // connection: one that sends without waiting for its replies gets
    // errors for the surplus, the others still get their work done.
    const std::uint64_t cost = request_cost(*frame, presence_buckets_);
    if (cost > 0 && conn.in_flight + cost > max_connection_in_flight_) {
        metrics_.inc("leveed_requests_refused_total", {{"reason", "connection_in_flight"}});
        log::debug("request_refused", {{"conn", conn.id()},
                                       {"type", frame_type_name(frame->body_case)},
                                       {"items", cost},
                                       {"in_flight", conn.in_flight},
                                       {"max_connection_in_flight", max_connection_in_flight_}});
        refuse(conn, *frame,
               "leveed: " + std::to_string(conn.in_flight) + " work items of this connection in flight, " +
                   std::to_string(cost) + " more would pass max_connection_in_flight " +
                   std::to_string(max_connection_in_flight_) + "; retry later");
        return;
    }
    conn.in_flight += cost;
    switch (frame->body_case) {
    case LEVEE__FRAME__BODY_PROBE: probe_.run(frame->request_id, *frame->probe, replier(conn, cost)); return;
    case LEVEE__FRAME__BODY_PRESENCE_BATCH:
        presence_.handle(frame->request_id, *frame->presence_batch, replier(conn, cost));
        return;
    case LEVEE__FRAME__BODY_PRESENCE_QUERY:
        presence_.query(frame->request_id, *frame->presence_query, replier(conn, cost));
        return;
    case LEVEE__FRAME__BODY_LIMIT_LEASE:
        limit_.handle(frame->request_id, *frame->limit_lease, replier(conn, cost), &conn.zones);
        return;
    case LEVEE__FRAME__BODY_REGISTRY_BATCH:
        registry_.handle(frame->request_id, *frame->registry_batch, replier(conn, cost));
        return;
    default:
        // Replies are never sent to leveed.
        log::warn("protocol_error",
                  {{"conn", conn.id()}, {"reason", "unexpected message"}, {"type", frame_type_name(frame->body_case)}});
        conn.close_when_flushed("unexpected_type");
        return;
    }
}

void Dispatcher::on_hello(FrameConnection &conn, const Levee__Frame &frame) {
    const Levee__Hello &hello = *frame.hello;
    Levee__Frame out = LEVEE__FRAME__INIT;
    Levee__HelloReply reply = LEVEE__HELLO_REPLY__INIT;
    out.request_id = frame.request_id;
    out.body_case = LEVEE__FRAME__BODY_HELLO_REPLY;
    out.hello_reply = &reply;
    reply.protocol_version = LEVEE__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
    reply.server = const_cast<char *>(kServerName);
    reply.standalone = standalone_;

    conn.peer = std::string(hello.client) + " pid=" + std::to_string(hello.pid);

    if (hello.protocol_version != LEVEE__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT) {
        const std::string reason = "protocol version " + std::to_string(hello.protocol_version) +
                                   " is not supported; leveed speaks version " +
                                   std::to_string(LEVEE__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT);
        reply.accepted = false;
        reply.reason = const_cast<char *>(reason.c_str());
        metrics_.inc("leveed_hello_total", {{"result", "refused"}});
        log::warn("hello_refused", {{"conn", conn.id()},
                                    {"client", hello.client},
                                    {"pid", hello.pid},
                                    {"protocol_version", hello.protocol_version},
                                    {"reason", reason}});
        send(conn, out);
        conn.close_when_flushed("protocol_version");
        return;
    }

    // Each hello replaces what the connection declared before.
    conn.zones.clear();
    for (std::size_t i = 0; i < hello.n_limit_zones; i++) {
        const Levee__LimitZone &z = *hello.limit_zones[i];
        conn.zones[z.name] = DeclaredZone{z.period_us, z.capacity};
    }
    conn.registry_ttl_ms.assign(hello.registry_ttl_ms, hello.registry_ttl_ms + hello.n_registry_ttl_ms);

    conn.hello_accepted();
    reply.accepted = true;
    reply.reason = const_cast<char *>("");
    metrics_.inc("leveed_hello_total", {{"result", "accepted"}});
    log::info("hello_accepted", {{"conn", conn.id()},
                                 {"client", hello.client},
                                 {"pid", hello.pid},
                                 {"worker", hello.worker},
                                 {"protocol_version", hello.protocol_version},
                                 {"limit_zones", conn.zones.size()},
                                 {"registries", conn.registry_ttl_ms.size()},
                                 {"socket", conn.admin ? "admin" : "nginx"}});
    send(conn, out);
}

} // namespace levee
