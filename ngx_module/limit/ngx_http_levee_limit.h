/*
 * What the files of ngx_http_levee_limit_module share: the configuration,
 * the request's decisions, and the functions one file gives the others.
 * Private to ngx_module/limit/.
 */

#ifndef NGX_HTTP_LEVEE_LIMIT_H
#define NGX_HTTP_LEVEE_LIMIT_H


extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}

#include "core/limit/gcra.hpp"
#include "core/limit/key_guard.hpp"
#include "core/limit/limit_table.hpp"
#include "core/limit/rate_parse.hpp"


#define NGX_HTTP_LEVEE_LIMIT_FAIL_OPEN    0
#define NGX_HTTP_LEVEE_LIMIT_FAIL_CLOSED  1

/* the smallest levee_limit_zone size= that holds a key */
#define NGX_HTTP_LEVEE_LIMIT_MIN_SIZE     (8 * 4096)
#define NGX_HTTP_LEVEE_LIMIT_MAX_SIZE     0xffffffffULL

/* How long a request waits for a global key's first lease, and how old a
 * key's outstanding lease may be before levee_limit_fail decides, ms */
#define NGX_HTTP_LEVEE_LIMIT_FIRST_WAIT   250


typedef struct {
    ngx_str_t                    name;
    ngx_shm_zone_t              *shm_zone;
    ngx_slab_pool_t             *shpool;
    levee::limit::TableHeader   *sh;
    ngx_http_complex_value_t     key;
    levee::limit::Rate           rate;
    levee::limit::GcraParams     gcra;
    ngx_uint_t                   burst;
    ngx_flag_t                   global;
    size_t                       max_key;
    levee::limit::LongKey        long_key;
    levee::limit::GcraParams     new_keys;    /* the budget of new keys */
    u_char                      *file;        /* where it is declared */
    ngx_uint_t                   line;
    ngx_msec_t                   sync;
    uint64_t                     refill_per_sync;
    uint64_t                     logged_evictions;   /* worker-local */
} ngx_http_levee_limit_zone_t;


typedef struct {
    ngx_http_levee_limit_zone_t *zone;
    levee::limit::GcraParams     gcra;        /* the zone's rate, this burst */
    uint64_t                     delay;       /* excess passed at once */
    unsigned                     dry_run:1;
} ngx_http_levee_limit_t;


typedef struct {
    ngx_array_t                  zones;       /* ngx_http_levee_limit_zone_t * */
    ngx_msec_t                   tick;
} ngx_http_levee_limit_main_conf_t;


typedef struct {
    ngx_array_t                 *limits;      /* ngx_http_levee_limit_t */
    ngx_uint_t                   status_code;
    ngx_flag_t                   headers;
    ngx_uint_t                   fail;
    ngx_flag_t                   dry_run;
    ngx_uint_t                   log_level;
    ngx_uint_t                   delay_log_level;
} ngx_http_levee_limit_loc_conf_t;


typedef struct {
    uint64_t                     remaining;
    uint64_t                     reset_us;
    uint64_t                     excess_us;   /* local: backlog on arrival */
    ngx_msec_t                   delay;       /* what this limit asks */
    unsigned                     applied:1;
    unsigned                     unavailable:1; /* global count away: fail mode */
    unsigned                     committed:1;
    unsigned                     counted:1;    /* in the key's demand already */
    unsigned                     may_wait:1;   /* for a first lease */
    unsigned                     dry_refused:1; /* refused, in dry run */
    unsigned                     long_refused:1; /* key over max_key, refused */
    unsigned                     overflow:1;   /* a new key over the budget */
    ngx_str_t                    key;
} ngx_http_levee_limit_result_t;


typedef struct {
    ngx_uint_t                   status;
    ngx_uint_t                   done;
    ngx_msec_t                   wait_start;  /* of the first decision */
    ngx_uint_t                   waited;      /* counted as a first-lease wait */
    ngx_uint_t                   nresults;
    ngx_http_levee_limit_result_t *results;
    ngx_array_t                 *limits;
} ngx_http_levee_limit_ctx_t;


extern "C" ngx_module_t  ngx_http_levee_limit_module;


/* ngx_http_levee_limit_conf.cpp: the configuration and directive parsers */
void *ngx_http_levee_limit_create_main_conf(ngx_conf_t *cf);
void *ngx_http_levee_limit_create_loc_conf(ngx_conf_t *cf);
char *ngx_http_levee_limit_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child);
char *ngx_http_levee_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_levee_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_levee_limit_check_sidecar(ngx_conf_t *cf);

/* ngx_http_levee_limit_ctx.cpp: the request's decisions, across redirects */
ngx_http_levee_limit_ctx_t *ngx_http_levee_limit_create_ctx(ngx_http_request_t *r,
    ngx_array_t *limits);
ngx_http_levee_limit_ctx_t *ngx_http_levee_limit_get_ctx(ngx_http_request_t *r);

/* ngx_http_levee_limit_zone.cpp: the shared zone; the caller of insert
 * holds the zone's mutex */
ngx_int_t ngx_http_levee_limit_init_zone(ngx_shm_zone_t *shm_zone, void *data);
levee::limit::Entry *ngx_http_levee_limit_insert(ngx_http_levee_limit_zone_t *zone,
    uint32_t hash, ngx_str_t *key, int64_t now_us);

/* ngx_http_levee_limit_lease.cpp: the global scope's lease client */
ngx_int_t ngx_http_levee_limit_init_process(ngx_cycle_t *cycle);
ngx_flag_t ngx_http_levee_limit_link_ready(void);
void ngx_http_levee_limit_ask_now(void);
void ngx_http_levee_limit_count_late(void);

/* ngx_http_levee_limit_headers.cpp: RateLimit and Retry-After */
void ngx_http_levee_limit_init_headers(void);
ngx_int_t ngx_http_levee_limit_retry_after(ngx_http_request_t *r, uint64_t reset_us);


static ngx_inline levee::limit::Table
ngx_http_levee_limit_table(ngx_http_levee_limit_zone_t *zone)
{
    return levee::limit::Table((u_char *) zone->shpool, zone->sh);
}


static ngx_inline int64_t
ngx_http_levee_limit_now_us(void)
{
    return (int64_t) ngx_current_msec * 1000;
}


#endif /* NGX_HTTP_LEVEE_LIMIT_H */
