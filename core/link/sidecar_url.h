/* Parsing of the levee_sidecar address. Plain C interface (no nginx types) so
 * the directive's validation is unit-tested with cmocka. */
#ifndef LEVEE_SIDECAR_URL_H
#define LEVEE_SIDECAR_URL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* sun_path is 108 bytes on Linux, including the terminating NUL. */
#define LEVEE_SIDECAR_PATH_MAX 107

/* Parses "unix:/absolute/path". On success copies the path, NUL-terminated,
 * into `path` (at least LEVEE_SIDECAR_PATH_MAX + 1 bytes) and returns NULL;
 * otherwise returns a static string saying what is wrong. */
const char *levee_sidecar_url_parse(const char *url, size_t len, char *path);

#ifdef __cplusplus
}
#endif

#endif
