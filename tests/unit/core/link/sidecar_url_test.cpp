#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "core/link/sidecar_url.hpp"

using levee::link::kSidecarPathMax;
using levee::link::parse_sidecar_url;

namespace {

const char *parse(const std::string &url, char *path) { return parse_sidecar_url(url.data(), url.size(), path); }

} // namespace

TEST(SidecarUrl, AcceptsAnAbsoluteUnixPath) {
    char path[kSidecarPathMax + 1];
    ASSERT_EQ(parse("unix:/run/levee/leveed.sock", path), nullptr);
    EXPECT_STREQ(path, "/run/levee/leveed.sock");
}

TEST(SidecarUrl, RefusesOtherSchemes) {
    char path[kSidecarPathMax + 1];
    EXPECT_NE(parse("127.0.0.1:9000", path), nullptr);
    EXPECT_NE(parse("tcp://127.0.0.1:9000", path), nullptr);
    EXPECT_NE(parse("/run/levee.sock", path), nullptr);
    EXPECT_NE(std::strstr(parse("http://x", path), "unix"), nullptr);
}

TEST(SidecarUrl, RefusesEmptyAndMissingPaths) {
    char path[kSidecarPathMax + 1];
    EXPECT_NE(parse("", path), nullptr);
    EXPECT_STREQ(parse("unix:", path), "missing socket path after \"unix:\"");
    EXPECT_STREQ(parse("unix:relative.sock", path), "socket path must be absolute");
}

TEST(SidecarUrl, RefusesPathsLongerThanSunPath) {
    char path[kSidecarPathMax + 1];
    const std::string url = "unix:/" + std::string(kSidecarPathMax - 1, 'a'); // 107 bytes of path
    ASSERT_EQ(parse(url, path), nullptr);
    EXPECT_EQ(std::strlen(path), kSidecarPathMax);
    EXPECT_NE(parse(url + "b", path), nullptr); // 108
}

TEST(SidecarUrl, RefusesAnEmbeddedNul) {
    char path[kSidecarPathMax + 1];
    EXPECT_NE(parse(std::string("unix:/a\0b", 9), path), nullptr);
}
