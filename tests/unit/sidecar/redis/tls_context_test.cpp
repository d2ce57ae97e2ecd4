// The TLS context is made from leveed.conf's files: each refusal names the
// setting and the file. Certificates come from the openssl command, as an
// operator would make them; the handshake itself is tested end to end
// against a real TLS Redis Cluster (tests/e2e/test_redis_tls.py).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include <openssl/x509v3.h>

#include "tls_context.hpp"

using levee::redis::TlsContext;
using levee::redis::TlsOptions;

namespace {

class TlsContextTest : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        char tmpl[] = "/tmp/levee-tls-unit-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        for (const char *name : {"a", "b"}) {
            const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=" +
                                    std::string(name) + " -keyout " + dir_ + "/" + name + ".key -out " + dir_ + "/" +
                                    name + ".crt 2>/dev/null";
            ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
        }
    }
    static void TearDownTestSuite() { (void)std::system(("rm -rf " + dir_).c_str()); }
    static std::string file(const char *name) { return dir_ + "/" + name; }

    static std::string dir_;
};
std::string TlsContextTest::dir_;

TEST_F(TlsContextTest, LoadsACaAndAClientCertificate) {
    std::string error;
    const auto ctx = TlsContext::create({file("a.crt"), file("b.crt"), file("b.key"), ""}, error);
    ASSERT_NE(ctx, nullptr) << error;
    EXPECT_TRUE(error.empty());
}

TEST_F(TlsContextTest, AMissingFileIsNamedWithItsSetting) {
    std::string error;
    EXPECT_EQ(TlsContext::create({file("none.crt"), "", "", ""}, error), nullptr);
    EXPECT_EQ(error, "redis_tls_ca_file " + file("none.crt") + ": No such file or directory");
    EXPECT_EQ(TlsContext::create({"", file("a.crt"), file("none.key"), ""}, error), nullptr);
    EXPECT_EQ(error, "redis_tls_key_file " + file("none.key") + ": No such file or directory");
}

TEST_F(TlsContextTest, AFileThatIsNotACertificateIsRefused) {
    std::string error;
    EXPECT_EQ(TlsContext::create({file("a.key"), "", "", ""}, error), nullptr);
    EXPECT_EQ(error.rfind("redis_tls_ca_file " + file("a.key") + ": ", 0), 0u) << error;
}

TEST_F(TlsContextTest, AKeyThatIsNotTheCertificatesIsRefused) {
    std::string error;
    EXPECT_EQ(TlsContext::create({"", file("a.crt"), file("b.key"), ""}, error), nullptr);
    EXPECT_EQ(error.rfind("redis_tls_key_file " + file("b.key"), 0), 0u) << error;
    EXPECT_NE(error.find("mismatch"), std::string::npos) << error;
}

TEST_F(TlsContextTest, ACertificateWithoutItsKeyIsRefused) {
    std::string error;
    EXPECT_EQ(TlsContext::create({"", file("a.crt"), "", ""}, error), nullptr);
    EXPECT_EQ(error, "redis_tls_cert_file and redis_tls_key_file go together: set both or neither");
}

// Cluster nodes are reached by the addresses CLUSTER SLOTS gives: an
// address is verified as an IP SAN, a name as a DNS name; server_name
// replaces both.
TEST_F(TlsContextTest, SessionsVerifyTheNodesAddressOrTheServerName) {
    std::string error;
    const auto by_address = TlsContext::create({file("a.crt"), "", "", ""}, error);
    ASSERT_NE(by_address, nullptr) << error;
    SSL *ssl = by_address->new_session("127.0.0.1", error);
    ASSERT_NE(ssl, nullptr) << error;
    EXPECT_EQ(SSL_get_verify_mode(ssl), SSL_VERIFY_PEER);
    EXPECT_EQ(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name), nullptr) << "no SNI for an address";
    EXPECT_EQ(X509_VERIFY_PARAM_get0_host(SSL_get0_param(ssl), 0), nullptr);
    SSL_free(ssl);

    ssl = by_address->new_session("redis-1.internal", error);
    ASSERT_NE(ssl, nullptr) << error;
    EXPECT_STREQ(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name), "redis-1.internal");
    EXPECT_STREQ(X509_VERIFY_PARAM_get0_host(SSL_get0_param(ssl), 0), "redis-1.internal");
    SSL_free(ssl);

    const auto by_name = TlsContext::create({file("a.crt"), "", "", "redis.example"}, error);
    ASSERT_NE(by_name, nullptr) << error;
    ssl = by_name->new_session("10.0.0.7", error);
    ASSERT_NE(ssl, nullptr) << error;
    EXPECT_STREQ(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name), "redis.example");
    EXPECT_STREQ(X509_VERIFY_PARAM_get0_host(SSL_get0_param(ssl), 0), "redis.example");
    SSL_free(ssl);
}

} // namespace
