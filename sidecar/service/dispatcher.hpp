// What leveed does with each frame: checks that a connection said hello in a
// protocol version we speak, then routes requests to the services.
#pragma once

#include <functional>
#include <string>

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
    void handle(FrameConnection &conn, FramePtr frame) override;

  private:
    void on_hello(FrameConnection &conn, const Levee__Frame &frame);
    // A reply to slow work: dropped (and counted) if the connection is gone.
    Reply replier(const FrameConnection &conn);
    void send(FrameConnection &conn, const Levee__Frame &frame);

    Metrics &metrics_;
    ProbeService &probe_;
    PresenceService &presence_;
    LimitService &limit_;
    RegistryService &registry_;
    FrameServer *server_ = nullptr;
    bool standalone_;
};

const char *frame_type_name(Levee__Frame__BodyCase body);

} // namespace levee
