// The loopback HTTP endpoint for Prometheus (/metrics) and health checks
// (/health), served from leveed's own event loop.
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
    // `health` returns "" when healthy, else why not (served as 503).
    MetricsHttp(event_base *base, Metrics &metrics, std::function<std::string()> health);
    ~MetricsHttp();
    bool listen(const std::string &host_port, std::string &error);

  private:
    static void handle(evhttp_request *req, void *arg);

    Metrics &metrics_;
    std::function<std::string()> health_;
    std::unique_ptr<evhttp, void (*)(evhttp *)> http_;
};

} // namespace levee
