/*
 * A configuration-time nginx for the glue's cmocka tests: nginx's structures
 * (ngx_conf_t, ngx_http_conf_ctx_t, ngx_command_t, ngx_str_t arguments) set
 * up as nginx sets them up while it reads nginx.conf.
 */
#ifndef LEVEE_TESTS_CONF_HARNESS_H
#define LEVEE_TESTS_CONF_HARNESS_H

#include "nginx_stubs.h"

#define LEVEE_TEST_CONF_FILE  "/etc/nginx/levee-test.conf"
/* ngx_http_core_module and ngx_http_upstream_module come first */
#define LEVEE_CONF_BUILTIN    2

typedef struct {
    ngx_conf_t            cf;
    ngx_http_conf_ctx_t   ctx;
    ngx_conf_file_t       file;
    ngx_cycle_t           cycle;
    ngx_log_t             log;
    ngx_module_t        **modules;    /* the built-ins, then the .so's */
    ngx_uint_t            nmodules;
} levee_conf_t;

/* The modules of ngx_http_levee_module.so, which nginx loads together. */
extern "C" ngx_module_t  ngx_http_levee_module;
extern "C" ngx_module_t  ngx_http_levee_sticky_module;
extern "C" ngx_module_t  ngx_http_levee_limit_module;
extern "C" ngx_module_t  ngx_http_levee_heartbeat_module;
extern "C" ngx_module_t  ngx_http_levee_status_module;

/*
 * An http block with the configurations of ngx_http_core_module,
 * ngx_http_upstream_module and every module of the .so, as nginx creates
 * them before it reads the block's directives.
 */
void levee_conf_init(levee_conf_t *h);
/* Frees it all (levee_stubs_reset()). */
void levee_conf_free(levee_conf_t *h);

/* cmocka setup and teardown: *state is a levee_conf_t made by levee_conf_init. */
int levee_conf_setup(void **state);
int levee_conf_teardown(void **state);
/* a test that gets its own levee_conf_t */
#define levee_conf_test(f)  cmocka_unit_test_setup_teardown(f, levee_conf_setup,  \
                                                            levee_conf_teardown)

/* A new location{} block: fresh location configurations, as nginx makes. */
void levee_conf_location(levee_conf_t *h);

/*
 * A new "upstream NAME {" block on the next line: fresh server and location
 * configurations, and the upstream's own, listed in the upstream module's
 * main configuration.
 */
ngx_http_upstream_srv_conf_t *levee_conf_upstream(levee_conf_t *h, const char *name);

/*
 * Reads `line` ("levee_limit one burst=5", words split on spaces) as the next
 * line of the file and runs it as ngx_conf_handler() does: the directive's
 * context and number of arguments are checked, then its handler gets the
 * configuration its ngx_command_t names. NGX_OK or NGX_ERROR, with the
 * message in levee_last_message().
 */
ngx_int_t levee_conf_directive(levee_conf_t *h, const char *line);

/* `line` is refused with exactly `message` at level emerg, as nginx -t says. */
#define levee_conf_fails(h, line, message)                                    \
    do {                                                                      \
        assert_int_equal(levee_conf_directive(h, line), NGX_ERROR);           \
        assert_string_equal(levee_last_message(), message);                   \
        assert_int_equal(levee_last_level(), NGX_LOG_EMERG);                  \
    } while (0)

/*
 * A main request in the current location, as ngx_http_process_request()
 * hands it to the phase handlers: its configurations, no module contexts.
 */
ngx_http_request_t *levee_conf_request(levee_conf_t *h);

/* Runs every module's postconfiguration, as ngx_http_block() does. */
ngx_int_t levee_conf_postconfiguration(levee_conf_t *h);

void *levee_conf_main(levee_conf_t *h, ngx_module_t *module);
void *levee_conf_loc(levee_conf_t *h, ngx_module_t *module);

#endif
