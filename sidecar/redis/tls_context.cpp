#include "tls_context.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "resolver.hpp"

namespace levee::redis {

std::string openssl_errors(const std::function<unsigned long()> &next) {
    std::string out;
    for (unsigned long e = next(); e != 0; e = next()) {
        if (ERR_GET_LIB(e) == 0) {
            continue;
        }
        char buf[256];
        ERR_error_string_n(e, buf, sizeof(buf));
        out += out.empty() ? "" : "; ";
        out += buf;
    }
    return out;
}

namespace {

// OpenSSL's reason for a missing file is three lines of library names.
bool readable(const char *key, const std::string &path, std::string &error) {
    if (path.empty() || std::ifstream(path).good()) {
        return true;
    }
    error = std::string(key) + " " + path + ": " + std::strerror(errno);
    return false;
}

} // namespace

std::shared_ptr<TlsContext> TlsContext::create(const TlsOptions &opts, std::string &error) {
    if (!readable("redis_tls_ca_file", opts.ca_file, error) ||
        !readable("redis_tls_cert_file", opts.cert_file, error) ||
        !readable("redis_tls_key_file", opts.key_file, error)) {
        return nullptr;
    }
    ERR_clear_error();
    std::unique_ptr<SSL_CTX, CtxFree> ctx(SSL_CTX_new(TLS_client_method()));
    if (!ctx) {
        error = "TLS: cannot create a context: " + openssl_errors();
        return nullptr;
    }
    // Redis supports TLS 1.2 and 1.3; older versions are broken.
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    if (opts.ca_file.empty()) {
        if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
            error = "TLS: cannot load the system's trust store: " + openssl_errors();
            return nullptr;
        }
    } else if (SSL_CTX_load_verify_locations(ctx.get(), opts.ca_file.c_str(), nullptr) != 1) {
        error = "redis_tls_ca_file " + opts.ca_file + ": " + openssl_errors();
        return nullptr;
    }
    if (opts.cert_file.empty() != opts.key_file.empty()) {
        error = "redis_tls_cert_file and redis_tls_key_file go together: set both or neither";
        return nullptr;
    }
    if (!opts.cert_file.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx.get(), opts.cert_file.c_str()) != 1) {
            error = "redis_tls_cert_file " + opts.cert_file + ": " + openssl_errors();
            return nullptr;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx.get(), opts.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
            error = "redis_tls_key_file " + opts.key_file + ": " + openssl_errors();
            return nullptr;
        }
        if (SSL_CTX_check_private_key(ctx.get()) != 1) {
            error = "redis_tls_key_file " + opts.key_file + " is not the key of " + opts.cert_file + ": " +
                    openssl_errors();
            return nullptr;
        }
    }
    return std::shared_ptr<TlsContext>(new TlsContext(ctx.release(), opts.server_name));
}

SSL *TlsContext::new_session(const std::string &host, std::string &error) const {
    ERR_clear_error();
    SSL *ssl = SSL_new(ctx_.get());
    if (ssl == nullptr) {
        error = "TLS: cannot create a session: " + openssl_errors();
        return nullptr;
    }
    const std::string &name = server_name_.empty() ? host : server_name_;
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    bool named = false;
    if (is_numeric_host(name)) {
        named = X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) == 1;
    } else {
        // SNI carries names only, never addresses (RFC 6066).
        named = SSL_set1_host(ssl, name.c_str()) == 1 && SSL_set_tlsext_host_name(ssl, name.c_str()) == 1;
    }
    if (!named) {
        SSL_free(ssl);
        error = "TLS: cannot verify against \"" + name + "\": " + openssl_errors();
        return nullptr;
    }
    return ssl;
}

} // namespace levee::redis
