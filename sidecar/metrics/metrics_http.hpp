// The loopback HTTP endpoint for Prometheus (/metrics), liveness (/health)
// and readiness (/ready), served from leveed's own event loop: an answer at
// all proves the loop is turning.
#pragma once

#include <functional>
#include <memory>
#include <string>

struct event_base;
struct evhttp;
struct evhttp_request;

namespace levee {

class Metrics;

class MetricsHttp {
  public:
    // `not_ready` returns "" when leveed can serve nginx, else why not
    // (served as 503 on /ready). Redis, MongoDB and the spool are not reasons:
    // leveed serves nginx through their faults (fail modes, the spool), and a
    // load balancer taking the edge out for them would turn a degraded store
    // into an outage. They are metrics with alerts.
    MetricsHttp(event_base *base, Metrics &metrics, std::function<std::string()> not_ready);
    ~MetricsHttp();
    bool listen(const std::string &host_port, std::string &error);

  private:
    static void handle(evhttp_request *req, void *arg);

    Metrics &metrics_;
    std::function<std::string()> not_ready_;
    std::unique_ptr<evhttp, void (*)(evhttp *)> http_;
};

} // namespace levee
