// TLS for leveed's Redis connections: one OpenSSL client context, made once
// from leveed.conf, that every node connection takes a session from.
//
// hiredis 0.14 has no TLS, so NodeConnection runs its own transport
// (libevent's OpenSSL bufferevent) and keeps hiredis only as the reply
// parser. Certificates are always verified: there is no setting that turns
// verification off, because a Redis password sent to an unverified peer is
// a password sent to whoever answers.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace levee::redis {

struct TlsOptions {
    std::string ca_file;   // empty: the system's trust store
    std::string cert_file; // client certificate (Redis's tls-auth-clients); with key_file
    std::string key_file;
    // Non-empty: every node's certificate must name this (also sent as SNI).
    // Cluster nodes announce IP addresses, so without it each node's
    // certificate must carry its IP address.
    std::string server_name;
};

class TlsContext {
  public:
    // Null with `error` naming the file and OpenSSL's reason.
    static std::shared_ptr<TlsContext> create(const TlsOptions &opts, std::string &error);

    // A client session for the node at `host` (a name or an address), set to
    // verify the peer's certificate against server_name or else `host`.
    // Null with `error` when OpenSSL cannot make one.
    SSL *new_session(const std::string &host, std::string &error) const;

  private:
    struct CtxFree {
        void operator()(SSL_CTX *ctx) const { SSL_CTX_free(ctx); }
    };
    TlsContext(SSL_CTX *ctx, std::string server_name) : ctx_(ctx), server_name_(std::move(server_name)) {}

    std::unique_ptr<SSL_CTX, CtxFree> ctx_;
    std::string server_name_;
};

// The errors drained from `next` (OpenSSL's queue of this thread, or a
// bufferevent's) as one line, "; " between them, "" when none. Codes of no
// library are left out: libevent queues SSL_get_error()'s result among them.
std::string openssl_errors(const std::function<unsigned long()> &next = &ERR_get_error);

} // namespace levee::redis
