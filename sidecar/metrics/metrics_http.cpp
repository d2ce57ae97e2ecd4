#include "metrics_http.hpp"

#include <cstring>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "metrics.hpp"

namespace levee {
namespace {

// "/ready" and "/ready?x" are the page; "/readyz" is not.
bool path_is(const char *uri, const char *path) {
    const std::size_t n = std::strlen(path);
    return std::strncmp(uri, path, n) == 0 && (uri[n] == '\0' || uri[n] == '?');
}

} // namespace

MetricsHttp::MetricsHttp(event_base *base, Metrics &metrics, std::function<std::string()> not_ready)
    : metrics_(metrics), not_ready_(std::move(not_ready)), http_(evhttp_new(base), evhttp_free) {
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

    if (path_is(uri, "/metrics")) {
        const std::string text = self->metrics_.render();
        evhttp_add_header(headers, "Content-Type", "text/plain; version=0.0.4");
        evbuffer_add(body.get(), text.data(), text.size());
        evhttp_send_reply(req, HTTP_OK, "OK", body.get());
        return;
    }
    if (path_is(uri, "/health")) {
        evhttp_add_header(headers, "Content-Type", "text/plain");
        evbuffer_add_printf(body.get(), "ok\n");
        evhttp_send_reply(req, HTTP_OK, "OK", body.get());
        return;
    }
    if (path_is(uri, "/ready")) {
        const std::string problem = self->not_ready_ ? self->not_ready_() : "";
        evhttp_add_header(headers, "Content-Type", "text/plain");
        evbuffer_add_printf(body.get(), "%s\n", problem.empty() ? "ready" : problem.c_str());
        evhttp_send_reply(req, problem.empty() ? HTTP_OK : 503, problem.empty() ? "OK" : "Unavailable", body.get());
        return;
    }
    evhttp_send_reply(req, HTTP_NOTFOUND, "Not Found", body.get());
}

} // namespace levee
