/*
 * Fakes of the nginx functions a directive handler calls, for the glue's
 * cmocka tests. Messages that the glue logs are kept formatted, so a test
 * asserts on exactly what `nginx -t` would print.
 */
#ifndef LEVEE_TESTS_NGINX_STUBS_H
#define LEVEE_TESTS_NGINX_STUBS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>

/* cmocka 1.1's header does not say extern "C" itself */
extern "C" {
#include <cmocka.h>
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}

/* Frees what the pools gave and forgets the messages and the zones. */
void levee_stubs_reset(void);

/* What was logged last (ngx_conf_log_error or ngx_log_error): "" if nothing. */
const char *levee_last_message(void);
ngx_uint_t levee_last_level(void);
/* Messages logged since levee_stubs_reset(). */
ngx_uint_t levee_message_count(void);

/* The shared memory zones the glue asked for, newest last. */
ngx_uint_t levee_shm_count(void);
ngx_shm_zone_t *levee_shm_zone(ngx_uint_t i);

#endif
