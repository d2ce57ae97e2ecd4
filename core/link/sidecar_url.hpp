// The levee_sidecar address, parsed without nginx so that the directive's
// errors are unit-tested.
#pragma once

#include <cstddef>

namespace levee::link {

// sun_path is 108 bytes on Linux, including the terminating NUL.
constexpr size_t kSidecarPathMax = 107;

// Parses "unix:/absolute/path". On success copies the path, NUL-terminated,
// into `path` (at least kSidecarPathMax + 1 bytes) and returns nullptr;
// otherwise returns a static string saying what is wrong.
const char *parse_sidecar_url(const char *url, size_t len, char *path);

} // namespace levee::link
