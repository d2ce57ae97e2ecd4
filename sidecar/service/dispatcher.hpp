// What leveed does with each frame: checks that a connection said hello in a
// protocol version we speak, then routes requests to the services, as long
// as the connection's share of the work in flight allows.
#pragma once

#include <functional>
#include <string>

#include "log_throttle.hpp"
#include "net/frame_server.hpp"
#include "service/limit_service.hpp"
#include "service/presence_service.hpp"
#include "service/probe.hpp"
#include "service/registry_service.hpp"

namespace levee {

class Metrics;

class Dispatcher : public FrameHandler {
  public:
    // `standalone`: no Redis behind this leveed, said to nginx in each hello reply.
    Dispatcher(Metrics &metrics, ProbeService &probe, PresenceService &presence, LimitService &limit,
               RegistryService &registry, bool standalone);
    void attach(FrameServer &server) { server_ = &server; }
    // The admin socket's server: its connections' ids are its own.
    void attach_admin(FrameServer &server) { admin_server_ = &server; }
    void handle(FrameConnection &conn, FramePtr frame) override;
    // A reload: applies to the next request.
    void set_max_connection_in_flight(std::uint32_t n) { max_connection_in_flight_ = n; }
    // The presence service's bucket count: bounds the commands of a batch.
    void set_presence_buckets(std::uint32_t n) { presence_buckets_ = n; }

  private:
    void on_hello(FrameConnection &conn, const Levee__Frame &frame);
    // A reply to slow work: dropped (and counted) if the connection is gone;
    // gives the connection's share of in-flight work back.
    Reply replier(const FrameConnection &conn, std::uint64_t cost);
    // Answers a request without doing it, in the reply type it expects.
    void refuse(FrameConnection &conn, const Levee__Frame &frame, const std::string &error);
    // A request the connection may not make (see the Hello message):
    // answered with `error`, counted under `reason`, the connection kept.
    bool forbidden(FrameConnection &conn, const Levee__Frame &frame);
    void send(FrameConnection &conn, const Levee__Frame &frame);

    Metrics &metrics_;
    ProbeService &probe_;
    PresenceService &presence_;
    LimitService &limit_;
    RegistryService &registry_;
    FrameServer *server_ = nullptr;
    FrameServer *admin_server_ = nullptr;
    bool standalone_;
    // Redis's client refuses commands beyond 100000 in flight, for every
    // connection at once: one connection gets at most this many work items.
    std::uint32_t max_connection_in_flight_ = 50000;
    std::uint32_t presence_buckets_ = kDefaultPresenceBuckets;
    // A peer may repeat a forbidden request in a loop.
    log::LogThrottle log_throttle_;
};

const char *frame_type_name(Levee__Frame__BodyCase body);

// The work items of a request, about the Redis commands it makes: a lease's
// or registry batch's entries, a query's users (a room query, a probe: one),
// a presence batch's buckets and rooms.
std::uint64_t request_cost(const Levee__Frame &frame, std::uint32_t presence_buckets);

} // namespace levee
