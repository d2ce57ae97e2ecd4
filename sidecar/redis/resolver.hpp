// Host names of Redis nodes to addresses without blocking the event loop.
//
// hiredis 0.14's redisAsyncConnect resolves a name with getaddrinfo(3) on
// the caller's thread: with a nameserver that does not answer, that is
// seconds per connect attempt during which leveed's loop serves no frame.
// leveed resolves on the loop with libevent's evdns instead (/etc/hosts
// first, then the nameservers of /etc/resolv.conf) and connects to the
// numeric address. A numeric host is used as it is.
#pragma once

#include <functional>
#include <memory>
#include <string>

struct event_base;

namespace levee::redis {

// Whether `host` is an IPv4 or IPv6 address (no lookup needed).
bool is_numeric_host(const std::string &host);

class Resolver {
  public:
    // `address` is numeric when `ok`; otherwise `error` says why.
    using Done = std::function<void(bool ok, const std::string &address, const std::string &error)>;

    // One lookup under way. Destroying it cancels it: `done` is then never called.
    class Lookup {
      public:
        virtual ~Lookup() = default;
    };

    virtual ~Resolver() = default;
    // `done` runs on the loop, later: never from inside resolve(). An IPv4
    // address is preferred, as hiredis did (getaddrinfo order, AF_INET first).
    virtual std::unique_ptr<Lookup> resolve(const std::string &host, Done done) = 0;
};

// evdns on `base`. `nameserver` ("ip" or "ip:port") replaces /etc/resolv.conf
// and /etc/hosts, for tests; empty, both are read once, here.
std::unique_ptr<Resolver> make_dns_resolver(event_base *base, const std::string &nameserver = "");

} // namespace levee::redis
