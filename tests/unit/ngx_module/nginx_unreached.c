/*
 * The nginx functions the glue links against that the tests do not fake:
 * request processing, events, shared memory, the upstream. Reaching one
 * fails the test by name. Their real prototypes do not matter here: none
 * returns. When the glue starts calling another nginx function, linking the
 * tests says "undefined reference to `ngx_...'": add it here (or, if a test
 * needs it to work, fake it in nginx_stubs.cpp).
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#define NGX_UNREACHED(name)                                                   \
    void name(void);                                                          \
    void name(void)                                                           \
    {                                                                         \
        fail_msg("%s was called: the tests do not fake it", #name);           \
    }

NGX_UNREACHED(ngx_alloc)
NGX_UNREACHED(ngx_close_connection)
NGX_UNREACHED(ngx_conf_check_num_bounds)
NGX_UNREACHED(ngx_conf_set_enum_slot)
NGX_UNREACHED(ngx_conf_set_flag_slot)
NGX_UNREACHED(ngx_conf_set_num_slot)
NGX_UNREACHED(ngx_create_temp_buf)
NGX_UNREACHED(ngx_escape_json)
NGX_UNREACHED(ngx_event_connect_peer)
NGX_UNREACHED(ngx_event_get_peer)
NGX_UNREACHED(ngx_handle_read_event)
NGX_UNREACHED(ngx_handle_write_event)
NGX_UNREACHED(ngx_http_add_variable)
NGX_UNREACHED(ngx_http_arg)
NGX_UNREACHED(ngx_http_block_reading)
NGX_UNREACHED(ngx_http_complex_value)
NGX_UNREACHED(ngx_http_core_run_phases)
NGX_UNREACHED(ngx_http_discard_request_body)
NGX_UNREACHED(ngx_http_finalize_request)
NGX_UNREACHED(ngx_http_output_filter)
NGX_UNREACHED(ngx_http_run_posted_requests)
NGX_UNREACHED(ngx_http_send_header)
NGX_UNREACHED(ngx_http_test_reading)
NGX_UNREACHED(ngx_http_upstream_get_round_robin_peer)
NGX_UNREACHED(ngx_http_upstream_init_round_robin)
NGX_UNREACHED(ngx_http_upstream_init_round_robin_peer)
NGX_UNREACHED(ngx_list_push)
NGX_UNREACHED(ngx_pool_cleanup_add)
NGX_UNREACHED(ngx_rbtree_delete)
NGX_UNREACHED(ngx_rbtree_insert)
NGX_UNREACHED(ngx_rwlock_rlock)
NGX_UNREACHED(ngx_rwlock_unlock)
NGX_UNREACHED(ngx_rwlock_wlock)
NGX_UNREACHED(ngx_shmtx_lock)
NGX_UNREACHED(ngx_shmtx_unlock)
NGX_UNREACHED(ngx_slab_alloc)
NGX_UNREACHED(ngx_slab_calloc)
NGX_UNREACHED(ngx_slab_alloc_locked)
NGX_UNREACHED(ngx_slab_free_locked)
NGX_UNREACHED(ngx_sprintf)
NGX_UNREACHED(ngx_time_update)
NGX_UNREACHED(ngx_unescape_uri)
