#include "resolver.hpp"

#include <algorithm>
#include <cctype>

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "event_ptr.hpp"
#include "log.hpp"

namespace levee::redis {

bool is_numeric_host(const std::string &host) {
    in_addr v4;
    in6_addr v6;
    return ::inet_pton(AF_INET, host.c_str(), &v4) == 1 || ::inet_pton(AF_INET6, host.c_str(), &v6) == 1;
}

namespace {

// RFC 6761: a name under .invalid never resolves, so no one is asked.
bool under_invalid(std::string host) {
    std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return std::tolower(c); });
    if (!host.empty() && host.back() == '.') {
        host.pop_back();
    }
    constexpr std::string_view kTld = ".invalid";
    return host == "invalid" ||
           (host.size() > kTld.size() && host.compare(host.size() - kTld.size(), kTld.size(), kTld) == 0);
}

struct State {
    Resolver::Done done; // cleared when the lookup is cancelled
    std::string host;
    evdns_getaddrinfo_request *request = nullptr;
    bool finished = false; // evdns has called back: `request` is gone
    bool in_call = false;  // inside evdns_getaddrinfo, which may call back before it returns
    bool ok = false;
    std::string address;
    std::string error;
    EventPtr later; // delivers an answer known before resolve() returned
    std::weak_ptr<State> self;
};

void deliver(State &s) {
    if (!s.done) {
        return;
    }
    Resolver::Done done = std::move(s.done);
    s.done = nullptr;
    done(s.ok, s.address, s.error);
}

void take_answer(State &s, int result, evutil_addrinfo *res) {
    s.finished = true;
    const evutil_addrinfo *pick = res;
    for (const evutil_addrinfo *a = res; a != nullptr; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    }
    char text[INET6_ADDRSTRLEN] = "";
    if (result == 0 && pick != nullptr) {
        const void *addr =
            pick->ai_family == AF_INET
                ? static_cast<const void *>(&reinterpret_cast<const sockaddr_in *>(pick->ai_addr)->sin_addr)
                : &reinterpret_cast<const sockaddr_in6 *>(pick->ai_addr)->sin6_addr;
        s.ok = evutil_inet_ntop(pick->ai_family, addr, text, sizeof(text)) != nullptr;
    }
    if (s.ok) {
        s.address = text;
    } else {
        s.error = "resolve " + s.host + ": " + (result != 0 ? evutil_gai_strerror(result) : "no address");
    }
    if (res != nullptr) {
        evutil_freeaddrinfo(res);
    }
}

// `arg` owns a reference to the state until evdns calls back: once, with
// an answer, an error or EVUTIL_EAI_CANCEL.
void on_answer(int result, evutil_addrinfo *res, void *arg) {
    const std::unique_ptr<std::shared_ptr<State>> held(static_cast<std::shared_ptr<State> *>(arg));
    State &s = **held;
    take_answer(s, result, res);
    if (result != EVUTIL_EAI_CANCEL && !s.in_call) {
        deliver(s);
    }
}

void on_later(evutil_socket_t, short, void *arg) {
    // Kept alive while `done` runs, which may cancel (destroy) the lookup.
    if (const std::shared_ptr<State> s = static_cast<State *>(arg)->self.lock()) {
        deliver(*s);
    }
}

class DnsLookup final : public Resolver::Lookup {
  public:
    explicit DnsLookup(std::shared_ptr<State> s) : s_(std::move(s)) {}
    ~DnsLookup() override {
        s_->done = nullptr;
        if (!s_->finished && s_->request != nullptr) {
            // evdns calls back later with EVUTIL_EAI_CANCEL and drops its reference then.
            evdns_getaddrinfo_cancel(s_->request);
        }
    }
    DnsLookup(const DnsLookup &) = delete;
    DnsLookup &operator=(const DnsLookup &) = delete;

  private:
    std::shared_ptr<State> s_;
};

class DnsResolver final : public Resolver {
  public:
    DnsResolver(event_base *base, const std::string &nameserver)
        : base_(base), dns_(evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE)) {
        if (dns_ == nullptr) {
            return;
        }
        // A connect, lookup included, has 1 s: a nameserver silent for
        // 300 ms is asked again, or the next one is, and is marked down
        // after a few such timeouts, rather than every lookup being cut
        // off waiting for evdns's default 5 s. No 0x20 case games: some
        // resolvers do not echo the case back.
        evdns_base_set_option(dns_, "timeout:", "0.3");
        evdns_base_set_option(dns_, "attempts:", "3");
        evdns_base_set_option(dns_, "randomize-case:", "0");
        if (!nameserver.empty()) {
            evdns_base_nameserver_ip_add(dns_, nameserver.c_str());
            return;
        }
        // Reads /etc/hosts first in any case. 1: no /etc/resolv.conf, 6: it
        // lists no nameserver; evdns then asks 127.0.0.1, as the libc does.
        const int r = evdns_base_resolv_conf_parse(dns_, DNS_OPTIONS_ALL, "/etc/resolv.conf");
        if (r != 0) {
            log::warn("redis_dns_config", {{"file", "/etc/resolv.conf"},
                                           {"code", r},
                                           {"meaning", "no nameserver read: names not in /etc/hosts are asked "
                                                       "of 127.0.0.1"}});
        }
    }
    ~DnsResolver() override {
        if (dns_ != nullptr) {
            // Lookups still under way are dropped without a word; their
            // connections are being destroyed too.
            evdns_base_free(dns_, 0);
        }
    }
    DnsResolver(const DnsResolver &) = delete;
    DnsResolver &operator=(const DnsResolver &) = delete;

    std::unique_ptr<Lookup> resolve(const std::string &host, Done done) override {
        auto s = std::make_shared<State>();
        s->self = s;
        s->done = std::move(done);
        s->host = host;
        s->later.reset(event_new(base_, -1, 0, on_later, s.get()));
        if (under_invalid(host)) {
            s->finished = true;
            s->error = "resolve " + host + ": a name under .invalid never resolves (RFC 6761)";
        } else if (dns_ == nullptr) {
            s->finished = true;
            s->error = "resolve " + host + ": no DNS resolver (evdns_base_new failed)";
        } else {
            evutil_addrinfo hints{};
            hints.ai_family = AF_UNSPEC;
            hints.ai_socktype = SOCK_STREAM;
            hints.ai_protocol = IPPROTO_TCP;
            auto held = std::make_unique<std::shared_ptr<State>>(s);
            s->in_call = true;
            s->request = evdns_getaddrinfo(dns_, host.c_str(), nullptr, &hints, on_answer, held.release());
            s->in_call = false;
        }
        if (s->finished && s->later) {
            event_active(s->later.get(), EV_TIMEOUT, 1);
        }
        return std::make_unique<DnsLookup>(std::move(s));
    }

  private:
    event_base *base_;
    evdns_base *dns_;
};

} // namespace

std::unique_ptr<Resolver> make_dns_resolver(event_base *base, const std::string &nameserver) {
    return std::make_unique<DnsResolver>(base, nameserver);
}

} // namespace levee::redis
