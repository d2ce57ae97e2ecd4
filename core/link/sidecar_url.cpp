#include "core/link/sidecar_url.h"

#include <cstring>

extern "C" const char *levee_sidecar_url_parse(const char *url, size_t len, char *path) {
    static const char prefix[] = "unix:";
    const size_t prefix_len = sizeof(prefix) - 1;

    if (len == 0) {
        return "empty address, expected \"unix:/path/to/leveed.sock\"";
    }
    if (len < prefix_len || std::strncmp(url, prefix, prefix_len) != 0) {
        return "only unix domain sockets are supported, expected \"unix:/path/to/leveed.sock\"";
    }
    const char *p = url + prefix_len;
    const size_t n = len - prefix_len;
    if (n == 0) {
        return "missing socket path after \"unix:\"";
    }
    if (p[0] != '/') {
        return "socket path must be absolute";
    }
    if (n > LEVEE_SIDECAR_PATH_MAX) {
        return "socket path is longer than 107 bytes (the limit of sun_path)";
    }
    if (std::memchr(p, '\0', n) != nullptr) {
        return "socket path contains a NUL byte";
    }
    std::memcpy(path, p, n);
    path[n] = '\0';
    return nullptr;
}
