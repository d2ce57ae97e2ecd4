/*
 * ngx_http_levee_status: the levee_status page (Prometheus text format) and
 * what each capability gives it. Each capability renders its own metrics
 * from its own shared memory; the page puts them together.
 */
#ifndef NGX_HTTP_LEVEE_STATUS_H
#define NGX_HTTP_LEVEE_STATUS_H

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}

#include "core/status/prom_text.hpp"
#include "ngx_levee_status_block.h"


/*
 * Registers the servers of one sticky table (in peer order) for
 * levee_sticky_picks_total: the index of the first in the levee_status
 * zone's pick counters, or NGX_CONF_UNSET_UINT when there is no room.
 */
ngx_uint_t ngx_http_levee_status_add_servers(ngx_conf_t *cf,
    ngx_str_t *upstream, ngx_http_upstream_rr_peers_t *peers);

/* counts a pick of the server registered at `index` */
void ngx_http_levee_status_count_pick(ngx_uint_t index);

/* ngx_module/limit/ngx_http_levee_limit_status.cpp */
void ngx_http_levee_limit_status(ngx_http_request_t *r,
    levee::status::PromText *out);

/* ngx_module/heartbeat/ngx_http_levee_heartbeat_status.cpp */
void ngx_http_levee_heartbeat_status(ngx_http_request_t *r,
    levee::status::PromText *out);

#endif
