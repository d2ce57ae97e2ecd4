#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/link/sidecar_url.h"

static const char *parse(const char *url, char *path) {
    return levee_sidecar_url_parse(url, strlen(url), path);
}

static void accepts_an_absolute_unix_path(void **state) {
    (void) state;
    char path[LEVEE_SIDECAR_PATH_MAX + 1];
    assert_null(parse("unix:/run/levee/leveed.sock", path));
    assert_string_equal(path, "/run/levee/leveed.sock");
}

static void refuses_other_schemes(void **state) {
    (void) state;
    char path[LEVEE_SIDECAR_PATH_MAX + 1];
    assert_non_null(parse("127.0.0.1:9000", path));
    assert_non_null(parse("tcp://127.0.0.1:9000", path));
    assert_non_null(parse("/run/levee.sock", path));
    const char *err = parse("http://x", path);
    assert_non_null(strstr(err, "unix"));
}

static void refuses_empty_and_missing_paths(void **state) {
    (void) state;
    char path[LEVEE_SIDECAR_PATH_MAX + 1];
    assert_non_null(parse("", path));
    assert_string_equal(parse("unix:", path), "missing socket path after \"unix:\"");
    assert_string_equal(parse("unix:relative.sock", path), "socket path must be absolute");
}

static void refuses_paths_longer_than_sun_path(void **state) {
    (void) state;
    char path[LEVEE_SIDECAR_PATH_MAX + 1];
    char url[256] = "unix:/";
    memset(url + 6, 'a', LEVEE_SIDECAR_PATH_MAX - 1);          /* exactly 107 bytes of path */
    url[6 + LEVEE_SIDECAR_PATH_MAX - 1] = '\0';
    assert_null(parse(url, path));
    assert_int_equal(strlen(path), LEVEE_SIDECAR_PATH_MAX);
    strcat(url, "b");                                            /* 108 */
    assert_non_null(parse(url, path));
}

static void refuses_embedded_nul(void **state) {
    (void) state;
    char path[LEVEE_SIDECAR_PATH_MAX + 1];
    static const char url[] = "unix:/a\0b";
    assert_non_null(levee_sidecar_url_parse(url, sizeof(url) - 1, path));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepts_an_absolute_unix_path),
        cmocka_unit_test(refuses_other_schemes),
        cmocka_unit_test(refuses_empty_and_missing_paths),
        cmocka_unit_test(refuses_paths_longer_than_sun_path),
        cmocka_unit_test(refuses_embedded_nul),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
