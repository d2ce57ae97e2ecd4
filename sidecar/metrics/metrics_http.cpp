#include "metrics_http.hpp"

#include <cstring>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "metrics.hpp"

namespace levee {

MetricsHttp::MetricsHttp(event_base *base, Metrics &metrics, std::function<std::string()> health)
    : metrics_(metrics), health_(std::move(health)), http_(evhttp_new(base), evhttp_free) {
    evhttp_set_gencb(http_.get(), handle, this);
    evhttp_set_allowed_methods(http_.get(), EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
}

MetricsHttp::~MetricsHttp() = default;

bool MetricsHttp::listen(const std::string &host_port, std::string &error) {
    const auto colon = host_port.rfind(':');
    const std::string host = host_port.substr(0, colon);
    const int port = std::stoi(host_port.substr(colon + 1));
    if (evhttp_bind_socket(http_.get(), host.c_str(), static_cast<ev_uint16_t>(port)) != 0) {
        error = "cannot listen for metrics on " + host_port;
        return false;
    }
    return true;
}

void MetricsHttp::handle(evhttp_request *req, void *arg) {
    auto *self = static_cast<MetricsHttp *>(arg);
    const char *uri = evhttp_request_get_uri(req);
    std::unique_ptr<evbuffer, void (*)(evbuffer *)> body(evbuffer_new(), evbuffer_free);
    evkeyvalq *headers = evhttp_request_get_output_headers(req);

    if (std::strncmp(uri, "/metrics", 8) == 0) {
        const std::string text = self->metrics_.render();
        evhttp_add_header(headers, "Content-Type", "text/plain; version=0.0.4");
        evbuffer_add(body.get(), text.data(), text.size());
        evhttp_send_reply(req, HTTP_OK, "OK", body.get());
        return;
    }
    if (std::strncmp(uri, "/health", 7) == 0) {
        const std::string problem = self->health_ ? self->health_() : "";
        evhttp_add_header(headers, "Content-Type", "text/plain");
        evbuffer_add_printf(body.get(), "%s\n", problem.empty() ? "ok" : problem.c_str());
        evhttp_send_reply(req, problem.empty() ? HTTP_OK : 503, problem.empty() ? "OK" : "Unavailable", body.get());
        return;
    }
    evhttp_send_reply(req, HTTP_NOTFOUND, "Not Found", body.get());
}

} // namespace levee
