/*
 * ngx_http_levee_sticky: what the sticky balancer (the main file) and its
 * connection registry (ngx_http_levee_sticky_registry.cpp) share.
 */
#ifndef NGX_HTTP_LEVEE_STICKY_H
#define NGX_HTTP_LEVEE_STICKY_H

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}

#include "core/sticky/sticky_chooser.hpp"


typedef struct {
    levee::sticky::StickyChooser      *chooser;
    ngx_uint_t                         number;
    /* this worker's peers by chooser index, filled on first use (with a
     * zone the peers live in shared memory, not where they were at
     * configuration time) */
    ngx_http_upstream_rr_peer_t      **peer;
    /* levee_status's pick counter of peer 0; NGX_CONF_UNSET_UINT: none */
    ngx_uint_t                         stat_base;
} ngx_http_levee_sticky_table_t;


typedef struct {
    ngx_http_complex_value_t           key;
    ngx_uint_t                         method;
    uint32_t                           bounded;   /* thousandths, 0: off */
    ngx_flag_t                         fallback;
    ngx_flag_t                         set;

    ngx_flag_t                         registry;
    ngx_flag_t                         registry_set;
    ngx_msec_t                         registry_ttl;
    ngx_msec_t                         registry_flush;

    ngx_http_levee_sticky_table_t      primary;
    ngx_http_levee_sticky_table_t      backup;
    ngx_http_upstream_rr_peers_t      *peers;     /* what the tables map */
} ngx_http_levee_sticky_srv_conf_t;


typedef struct {
    /* the round robin data must be first */
    ngx_http_upstream_rr_peer_data_t   rrp;
    ngx_http_levee_sticky_srv_conf_t  *conf;
    uint64_t                           hash;
    ngx_flag_t                         in_backup;
    ngx_str_t                          key;
} ngx_http_levee_sticky_peer_data_t;


extern "C" ngx_module_t  ngx_http_levee_sticky_module;


/* the connection registry (ngx_http_levee_sticky_registry.cpp) */
ngx_int_t ngx_http_levee_sticky_postconf(ngx_conf_t *cf);
ngx_int_t ngx_http_levee_sticky_init_process(ngx_cycle_t *cycle);
void ngx_http_levee_sticky_exit_process(ngx_cycle_t *cycle);
void ngx_http_levee_sticky_record(ngx_http_levee_sticky_peer_data_t *sp,
    ngx_str_t *server);

#endif /* NGX_HTTP_LEVEE_STICKY_H */
