/*
 * ngx_http_levee_limit_module: rate limits, local to this nginx or global
 * across every nginx through leveed and Redis.
 *
 * Local zones keep one GCRA state per key in shared memory. Global zones
 * spend quota leased from leveed: each key's entry holds the tokens this
 * nginx was granted, the sync timer of each worker asks for more every
 * `sync` interval, and a request only decrements a counter. Either way the
 * decision is a hash lookup and a few stores under the zone's mutex.
 */

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}

#include "core/limit/gcra.hpp"
#include "core/limit/lease.hpp"
#include "core/limit/limit_table.hpp"
#include "core/limit/rate_parse.hpp"
#include "ngx_http_levee_module.h"
#include "ngx_levee_link.h"

using levee::limit::Entry;
using levee::limit::GlobalPart;
using levee::limit::Table;
using levee::limit::TableHeader;


/* $levee_limit_status, limit_req's values plus UNAVAILABLE */
#define NGX_HTTP_LEVEE_LIMIT_PASSED            1
#define NGX_HTTP_LEVEE_LIMIT_DELAYED           2
#define NGX_HTTP_LEVEE_LIMIT_REJECTED          3
#define NGX_HTTP_LEVEE_LIMIT_DELAYED_DRY_RUN   4
#define NGX_HTTP_LEVEE_LIMIT_REJECTED_DRY_RUN  5
#define NGX_HTTP_LEVEE_LIMIT_UNAVAILABLE       6

#define NGX_HTTP_LEVEE_LIMIT_FAIL_OPEN    0
#define NGX_HTTP_LEVEE_LIMIT_FAIL_CLOSED  1

/* A worker may spend one token of a global key ahead of its grant. */
#define NGX_HTTP_LEVEE_LIMIT_CREDIT       1
/* A request to a global key that no lease has answered yet (a new key, or
 * one evicted and back) waits up to this long for the first lease instead of
 * being refused: the lease is usually a few ms away and the global bucket is
 * most likely full. It rechecks after 2 ms, then after half the time waited
 * so far: about a dozen checks at most, however slow the lease. */
#define NGX_HTTP_LEVEE_LIMIT_FIRST_WAIT   250
#define NGX_HTTP_LEVEE_LIMIT_WAIT_STEP    2
/* Keys per lease frame: bounds the frame and the time the mutex is held. */
#define NGX_HTTP_LEVEE_LIMIT_BATCH        512
/* Bytes of keys per lease frame: any one key (at most 65535 bytes) fits. */
#define NGX_HTTP_LEVEE_LIMIT_KEYS         (128 * 1024)
#define NGX_HTTP_LEVEE_LIMIT_MIN_SIZE     (8 * 4096)


typedef struct {
    ngx_str_t                    name;
    ngx_shm_zone_t              *shm_zone;
    ngx_slab_pool_t             *shpool;
    TableHeader                 *sh;
    ngx_http_complex_value_t     key;
    levee::limit::Rate           rate;
    levee::limit::GcraParams     gcra;
    ngx_uint_t                   burst;
    ngx_flag_t                   global;
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
    ngx_str_t                    key;
} ngx_http_levee_limit_result_t;


typedef struct {
    ngx_uint_t                   status;
    ngx_uint_t                   done;
    ngx_msec_t                   wait_start;  /* of the first decision */
    ngx_uint_t                   nresults;
    ngx_http_levee_limit_result_t *results;
    ngx_array_t                 *limits;
} ngx_http_levee_limit_ctx_t;


static ngx_int_t ngx_http_levee_limit_handler(ngx_http_request_t *r);
static ngx_http_levee_limit_ctx_t *ngx_http_levee_limit_get_ctx(ngx_http_request_t *r);
static void ngx_http_levee_limit_cleanup(void *data);
static void ngx_http_levee_limit_delay(ngx_http_request_t *r);
static ngx_int_t ngx_http_levee_limit_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_levee_limit_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_levee_limit_init_zone(ngx_shm_zone_t *shm_zone, void *data);
static void ngx_http_levee_limit_tick(ngx_event_t *ev);
static void ngx_http_levee_limit_on_reply(const Levee__Frame *frame, void *data);
static void ngx_http_levee_limit_on_state(ngx_flag_t ready, void *data);

static ngx_int_t ngx_http_levee_limit_add_variables(ngx_conf_t *cf);
static void *ngx_http_levee_limit_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_levee_limit_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_levee_limit_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child);
static char *ngx_http_levee_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_levee_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_levee_limit_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_levee_limit_init_process(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_http_levee_limit_fail_modes[] = {
    { ngx_string("open"), NGX_HTTP_LEVEE_LIMIT_FAIL_OPEN },
    { ngx_string("closed"), NGX_HTTP_LEVEE_LIMIT_FAIL_CLOSED },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_levee_limit_log_levels[] = {
    { ngx_string("info"), NGX_LOG_INFO },
    { ngx_string("notice"), NGX_LOG_NOTICE },
    { ngx_string("warn"), NGX_LOG_WARN },
    { ngx_string("error"), NGX_LOG_ERR },
    { ngx_null_string, 0 }
};


static ngx_conf_num_bounds_t  ngx_http_levee_limit_status_bounds = {
    ngx_conf_check_num_bounds, 400, 599
};


static ngx_command_t  ngx_http_levee_limit_commands[] = {

    { ngx_string("levee_limit_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_levee_limit_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("levee_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_levee_limit,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("levee_limit_status"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_levee_limit_loc_conf_t, status_code),
      &ngx_http_levee_limit_status_bounds },

    { ngx_string("levee_limit_headers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_levee_limit_loc_conf_t, headers),
      NULL },

    { ngx_string("levee_limit_dry_run"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_levee_limit_loc_conf_t, dry_run),
      NULL },

    { ngx_string("levee_limit_log_level"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_levee_limit_loc_conf_t, log_level),
      &ngx_http_levee_limit_log_levels },

    { ngx_string("levee_limit_fail"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_levee_limit_loc_conf_t, fail),
      &ngx_http_levee_limit_fail_modes },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_levee_limit_module_ctx = {
    ngx_http_levee_limit_add_variables,    /* preconfiguration */
    ngx_http_levee_limit_init,             /* postconfiguration */

    ngx_http_levee_limit_create_main_conf, /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_levee_limit_create_loc_conf,  /* create location configuration */
    ngx_http_levee_limit_merge_loc_conf    /* merge location configuration */
};


extern "C" {

ngx_module_t  ngx_http_levee_limit_module = {
    NGX_MODULE_V1,
    &ngx_http_levee_limit_module_ctx,      /* module context */
    ngx_http_levee_limit_commands,         /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_levee_limit_init_process,     /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};

}


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;

static ngx_str_t  ngx_http_levee_limit_status_names[] = {
    ngx_null_string,
    ngx_string("PASSED"),
    ngx_string("DELAYED"),
    ngx_string("REJECTED"),
    ngx_string("DELAYED_DRY_RUN"),
    ngx_string("REJECTED_DRY_RUN"),
    ngx_string("UNAVAILABLE")
};

/* Worker-local state of the global scope. */
static ngx_event_t        ngx_http_levee_limit_timer;
static ngx_connection_t   ngx_http_levee_limit_dummy;
static ngx_uint_t         ngx_http_levee_limit_global_ok;
static ngx_uint_t         ngx_http_levee_limit_expedited;
static ngx_uint_t         ngx_http_levee_limit_unanswered;
static ngx_uint_t         ngx_http_levee_limit_failing;
static ngx_msec_t         ngx_http_levee_limit_last_stats;
static ngx_http_levee_limit_main_conf_t  *ngx_http_levee_limit_mcf;


static void *
ngx_http_levee_limit_slab_alloc(void *ctx, size_t size)
{
    return ngx_slab_alloc_locked((ngx_slab_pool_t *) ctx, size);
}


static void
ngx_http_levee_limit_slab_free(void *ctx, void *p)
{
    ngx_slab_free_locked((ngx_slab_pool_t *) ctx, p);
}


static levee::limit::Allocator
ngx_http_levee_limit_allocator(ngx_http_levee_limit_zone_t *zone)
{
    return { zone->shpool, ngx_http_levee_limit_slab_alloc,
             ngx_http_levee_limit_slab_free };
}


static bool
ngx_http_levee_limit_local_idle(const Entry *e, int64_t now_us)
{
    return levee::limit::gcra_idle(e->tat, now_us);
}


static bool
ngx_http_levee_limit_global_idle(const Entry *e, int64_t now_us)
{
    const GlobalPart  *g;

    g = (const GlobalPart *) ((const u_char *) e + levee::limit::kEntryHead);

    /* unspent tokens are returned to nobody: dropping them under-admits */
    return g->tokens == 0 && g->pending_ms == 0 && !(e->flags & levee::limit::kEntryDirty);
}


static Table
ngx_http_levee_limit_table(ngx_http_levee_limit_zone_t *zone)
{
    return Table((u_char *) zone->shpool, zone->sh);
}


static int64_t
ngx_http_levee_limit_now_us(void)
{
    return (int64_t) ngx_current_msec * 1000;
}


/* Decides one limit for a request; called with the zone unlocked. */
static ngx_int_t
ngx_http_levee_limit_decide(ngx_http_request_t *r, ngx_http_levee_limit_t *limit,
    ngx_http_levee_limit_loc_conf_t *llcf, ngx_http_levee_limit_result_t *res)
{
    ngx_http_levee_limit_zone_t  *zone = limit->zone;
    Entry                        *e;
    GlobalPart                   *g;
    uint32_t                      hash;
    int64_t                       now;
    ngx_int_t                     rc;
    ngx_flag_t                    available;
    levee::limit::GcraDecision    d;

    if (ngx_http_complex_value(r, &zone->key, &res->key) != NGX_OK) {
        return NGX_ERROR;
    }

    if (res->key.len == 0) {
        return NGX_DECLINED;
    }

    if (res->key.len > 65535) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "the value of the \"%V\" key is more than 65535 bytes: \"%V\"",
                      &zone->key.value, &res->key);
        return NGX_DECLINED;
    }

    hash = levee::limit::hash_key(res->key.data, res->key.len);
    now = ngx_http_levee_limit_now_us();

    Table  t = ngx_http_levee_limit_table(zone);

    ngx_shmtx_lock(&zone->shpool->mutex);

    e = t.find(hash, res->key.data, (uint16_t) res->key.len);
    if (e == NULL) {
        e = t.insert(ngx_http_levee_limit_allocator(zone), hash, res->key.data,
                     (uint16_t) res->key.len, now,
                     zone->global ? ngx_http_levee_limit_global_idle
                                  : ngx_http_levee_limit_local_idle);
        if (e == NULL) {
            ngx_shmtx_unlock(&zone->shpool->mutex);
            return NGX_DECLINED;
        }

    } else {
        t.touch(e);
    }

    res->applied = 1;

    if (!zone->global) {
        d = levee::limit::gcra_take(limit->gcra, e->tat, now);
        ngx_shmtx_unlock(&zone->shpool->mutex);

        res->excess_us = d.excess_us;

        if (d.allowed) {
            res->committed = 1;
            res->remaining = d.remaining;
            res->reset_us = d.reset_us;
            res->delay = (ngx_msec_t) (levee::limit::gcra_delay_us(limit->gcra, d, limit->delay)
                                       / 1000);
            return NGX_OK;
        }

        res->remaining = 0;
        res->reset_us = d.retry_after_us;
        return NGX_BUSY;
    }

    g = t.global(e);
    if (!res->counted) {
        g->demand++;
        res->counted = 1;
    }
    t.mark_dirty(e);

    available = ngx_http_levee_limit_global_ok
                && !(e->flags & levee::limit::kEntryUnavailable);

    if (g->tokens > -NGX_HTTP_LEVEE_LIMIT_CREDIT
        && (g->tokens > 0 || available))
    {
        g->tokens--;
        res->committed = 1;
        res->remaining = g->tokens > 0 ? g->tokens : 0;
        rc = NGX_OK;

    } else if (!available) {
        res->unavailable = 1;
        rc = llcf->fail == NGX_HTTP_LEVEE_LIMIT_FAIL_OPEN ? NGX_DECLINED : NGX_ABORT;

    } else {
        res->remaining = 0;
        rc = NGX_BUSY;

        /* the first miss of a key asks for quota now, not a sync later */
        if (g->pending_ms == 0 && !ngx_http_levee_limit_expedited
            && ngx_http_levee_limit_timer.timer_set)
        {
            ngx_http_levee_limit_expedited = 1;
            ngx_del_timer(&ngx_http_levee_limit_timer);
            ngx_add_timer(&ngx_http_levee_limit_timer, 1);
        }

        if (res->may_wait && !(e->flags & levee::limit::kEntryLeased)) {
            rc = NGX_AGAIN;
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    res->reset_us = zone->sync * 1000;

    return rc;
}


/* Gives back what a limit took when a later limit refuses the request. */
static void
ngx_http_levee_limit_refund(ngx_http_levee_limit_t *limit,
    ngx_http_levee_limit_result_t *res)
{
    Entry                        *e;
    ngx_http_levee_limit_zone_t  *zone = limit->zone;

    Table  t = ngx_http_levee_limit_table(zone);

    ngx_shmtx_lock(&zone->shpool->mutex);

    e = t.find(levee::limit::hash_key(res->key.data, res->key.len),
               res->key.data, (uint16_t) res->key.len);
    if (e != NULL) {
        if (zone->global) {
            t.global(e)->tokens++;

        } else {
            levee::limit::gcra_refund(limit->gcra, e->tat);
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/* One line per refused or delayed request, in limit_req's words. */
static void
ngx_http_levee_limit_log(ngx_http_request_t *r, ngx_http_levee_limit_loc_conf_t *llcf,
    ngx_http_levee_limit_t *limit, ngx_http_levee_limit_result_t *res, ngx_uint_t dry_run)
{
    ngx_uint_t   excess;
    const char  *dry;

    dry = dry_run ? ", dry run" : "";

    if (limit->zone->global) {
        /* global quota is counted in Redis: there is no local excess */
        ngx_log_error(llcf->log_level, r->connection->log, 0,
                      "limiting requests%s, global quota spent by zone \"%V\"",
                      dry, &limit->zone->name);
        return;
    }

    excess = (ngx_uint_t) (res->excess_us * 1000 / limit->gcra.period_us);

    if (res->committed) {
        ngx_log_error(llcf->delay_log_level, r->connection->log, 0,
                      "delaying request%s, excess: %ui.%03ui, by zone \"%V\"",
                      dry, excess / 1000, excess % 1000, &limit->zone->name);
        return;
    }

    ngx_log_error(llcf->log_level, r->connection->log, 0,
                  "limiting requests%s, excess: %ui.%03ui by zone \"%V\"",
                  dry, excess / 1000, excess % 1000, &limit->zone->name);
}


/*
 * An internal redirect (error_page, try_files, rewrite ... last, a named
 * location) clears every module's context, but a request is decided once,
 * as limit_req does: the context is kept in the pool's cleanup list too,
 * where the redirect does not reach, and found there again.
 */
static ngx_http_levee_limit_ctx_t *
ngx_http_levee_limit_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t          *cln;
    ngx_http_levee_limit_ctx_t  *ctx;

    ctx = (ngx_http_levee_limit_ctx_t *) ngx_http_get_module_ctx(r, ngx_http_levee_limit_module);

    if (ctx == NULL && (r->internal || r->filter_finalize)) {
        for (cln = r->pool->cleanup; cln != NULL; cln = cln->next) {
            if (cln->handler == ngx_http_levee_limit_cleanup) {
                ctx = (ngx_http_levee_limit_ctx_t *) cln->data;
                ngx_http_set_ctx(r, ctx, ngx_http_levee_limit_module);
                break;
            }
        }
    }

    return ctx;
}


static void
ngx_http_levee_limit_cleanup(void *data)
{
    /* nothing to free: the handler's address marks the context */
}


static ngx_int_t
ngx_http_levee_limit_handler(ngx_http_request_t *r)
{
    ngx_uint_t                        i, n, refused, applied, unavailable;
    ngx_uint_t                        dry_run, dry_delayed, dry_refused;
    ngx_int_t                         rc;
    ngx_msec_t                        delay;
    ngx_table_elt_t                  *h;
    ngx_pool_cleanup_t               *cln;
    ngx_http_levee_limit_t           *limits;
    ngx_http_levee_limit_ctx_t       *ctx;
    ngx_http_levee_limit_result_t    *res;
    ngx_http_levee_limit_loc_conf_t  *llcf;

    ctx = ngx_http_levee_limit_get_ctx(r);
    if (ctx != NULL && ctx->done) {
        return NGX_DECLINED;
    }

    llcf = (ngx_http_levee_limit_loc_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_http_levee_limit_module);

    if (llcf->limits == NULL || r != r->main) {
        return NGX_DECLINED;
    }

    limits = (ngx_http_levee_limit_t *) llcf->limits->elts;
    n = llcf->limits->nelts;

    if (ctx == NULL) {
        cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_levee_limit_ctx_t)
                                            + n * sizeof(ngx_http_levee_limit_result_t));
        if (cln == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx = (ngx_http_levee_limit_ctx_t *) cln->data;
        ngx_memzero(ctx, sizeof(ngx_http_levee_limit_ctx_t)
                         + n * sizeof(ngx_http_levee_limit_result_t));
        cln->handler = ngx_http_levee_limit_cleanup;

        ctx->results = (ngx_http_levee_limit_result_t *) (ctx + 1);
        ctx->nresults = n;
        ctx->limits = llcf->limits;
        ctx->wait_start = ngx_current_msec;
        ngx_http_set_ctx(r, ctx, ngx_http_levee_limit_module);
    }

    /* a request back from waiting for a first lease is decided afresh */
    ctx->done = 1;
    ctx->status = 0;

    delay = 0;
    dry_delayed = 0;
    dry_refused = 0;
    applied = 0;
    unavailable = 0;
    rc = NGX_DECLINED;

    for (i = 0; i < n; i++) {
        res = &ctx->results[i];
        res->applied = 0;
        res->committed = 0;
        res->unavailable = 0;
        res->delay = 0;
        dry_run = limits[i].dry_run || llcf->dry_run;
        res->may_wait = !dry_run
                        && ngx_current_msec - ctx->wait_start
                           < NGX_HTTP_LEVEE_LIMIT_FIRST_WAIT;

        rc = ngx_http_levee_limit_decide(r, &limits[i], llcf, res);

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc == NGX_AGAIN) {
            break;
        }

        applied |= res->applied;

        if (rc == NGX_OK || rc == NGX_DECLINED) {
            unavailable |= res->unavailable;

            if (res->delay == 0) {
                continue;
            }

            ngx_http_levee_limit_log(r, llcf, &limits[i], res, dry_run);

            if (dry_run) {
                dry_delayed = 1;

            } else {
                delay = ngx_max(delay, res->delay);
            }

            continue;
        }

        if (rc == NGX_BUSY) {
            ngx_http_levee_limit_log(r, llcf, &limits[i], res, dry_run);

            if (dry_run) {
                dry_refused = 1;
                continue;
            }
        }

        break;
    }

    if (i == n) {
        ctx->status = unavailable ? NGX_HTTP_LEVEE_LIMIT_UNAVAILABLE
                      : delay ? NGX_HTTP_LEVEE_LIMIT_DELAYED
                      : dry_refused ? NGX_HTTP_LEVEE_LIMIT_REJECTED_DRY_RUN
                      : dry_delayed ? NGX_HTTP_LEVEE_LIMIT_DELAYED_DRY_RUN
                      : NGX_HTTP_LEVEE_LIMIT_PASSED;

        if (!applied) {
            /* every key was empty: no limit applied */
            ctx->status = 0;
        }

        if (delay == 0) {
            return NGX_DECLINED;
        }

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "levee_limit delaying request %M ms", delay);

        if (ngx_handle_read_event(r->connection->read, 0) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        r->read_event_handler = ngx_http_test_reading;
        r->write_event_handler = ngx_http_levee_limit_delay;

        r->connection->write->delayed = 1;
        ngx_add_timer(r->connection->write, delay);

        return NGX_AGAIN;
    }

    refused = i;

    /* refused by limits[i], or waiting for its first lease: what the
     * earlier ones took goes back */
    while (i-- > 0) {
        if (ctx->results[i].committed) {
            ngx_http_levee_limit_refund(&limits[i], &ctx->results[i]);
            ctx->results[i].committed = 0;
        }
    }

    if (rc == NGX_AGAIN) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "levee_limit waiting for the first lease of \"%V\"",
                       &ctx->results[refused].key);

        if (ngx_handle_read_event(r->connection->read, 0) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->done = 0;
        r->read_event_handler = ngx_http_test_reading;
        r->write_event_handler = ngx_http_levee_limit_delay;

        r->connection->write->delayed = 1;
        ngx_add_timer(r->connection->write,
                      ngx_max(NGX_HTTP_LEVEE_LIMIT_WAIT_STEP,
                              (ngx_current_msec - ctx->wait_start) / 2));

        return NGX_AGAIN;
    }

    if (rc == NGX_ABORT) {
        ctx->status = NGX_HTTP_LEVEE_LIMIT_UNAVAILABLE;
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    ctx->status = NGX_HTTP_LEVEE_LIMIT_REJECTED;

    h = (ngx_table_elt_t *) ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->value.data = (u_char *) ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (h->value.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    h->value.len = ngx_sprintf(h->value.data, "%uL",
                               (uint64_t) ((ctx->results[refused].reset_us + 999999) / 1000000))
                   - h->value.data;

    return llcf->status_code;
}


static void
ngx_http_levee_limit_delay(ngx_http_request_t *r)
{
    ngx_event_t  *wev;

    wev = r->connection->write;

    if (wev->delayed) {
        if (ngx_handle_write_event(wev, 0) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        }

        return;
    }

    if (ngx_handle_read_event(r->connection->read, 0) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_core_run_phases;

    ngx_http_core_run_phases(r);
}


static ngx_table_elt_t *
ngx_http_levee_limit_add_header(ngx_http_request_t *r, const char *name, size_t size)
{
    ngx_table_elt_t  *h;

    h = (ngx_table_elt_t *) ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->value.data = (u_char *) ngx_pnalloc(r->pool, size);
    if (h->value.data == NULL) {
        return NULL;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value.len = 0;

    return h;
}


/* RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers). */
static ngx_int_t
ngx_http_levee_limit_header_filter(ngx_http_request_t *r)
{
    size_t                            size;
    u_char                           *p, *q;
    ngx_uint_t                        i;
    ngx_table_elt_t                  *policy, *state;
    ngx_http_levee_limit_t           *limits;
    ngx_http_levee_limit_ctx_t       *ctx;
    ngx_http_levee_limit_zone_t      *zone;
    ngx_http_levee_limit_result_t    *res;
    ngx_http_levee_limit_loc_conf_t  *llcf;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_levee_limit_get_ctx(r);
    if (ctx == NULL || ctx->status == 0) {
        return ngx_http_next_header_filter(r);
    }

    llcf = (ngx_http_levee_limit_loc_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_http_levee_limit_module);
    if (!llcf->headers) {
        return ngx_http_next_header_filter(r);
    }

    limits = (ngx_http_levee_limit_t *) ctx->limits->elts;

    size = 0;
    for (i = 0; i < ctx->nresults; i++) {
        size += limits[i].zone->name.len + 2 * NGX_INT64_LEN + sizeof("\"\";q=;w=, ");
    }

    policy = ngx_http_levee_limit_add_header(r, "RateLimit-Policy", size);
    state = ngx_http_levee_limit_add_header(r, "RateLimit", size);
    if (policy == NULL || state == NULL) {
        return NGX_ERROR;
    }

    p = policy->value.data;
    q = state->value.data;

    for (i = 0; i < ctx->nresults; i++) {
        res = &ctx->results[i];
        if (!res->applied) {
            continue;
        }

        zone = limits[i].zone;

        if (p != policy->value.data) {
            p = ngx_cpymem(p, ", ", 2);
            q = ngx_cpymem(q, ", ", 2);
        }

        p = ngx_sprintf(p, "\"%V\";q=%uL;w=%uL", &zone->name,
                        (uint64_t) zone->rate.requests, (uint64_t) zone->rate.window_s);
        q = ngx_sprintf(q, "\"%V\";r=%uL;t=%uL", &zone->name, res->remaining,
                        (uint64_t) ((res->reset_us + 999999) / 1000000));
    }

    policy->value.len = p - policy->value.data;
    state->value.len = q - state->value.data;

    if (policy->value.len == 0) {
        policy->hash = 0;
        state->hash = 0;
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_levee_limit_status_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    ngx_http_levee_limit_ctx_t  *ctx;

    ctx = ngx_http_levee_limit_get_ctx(r->main);
    if (ctx == NULL || ctx->status == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ngx_http_levee_limit_status_names[ctx->status].len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = ngx_http_levee_limit_status_names[ctx->status].data;

    return NGX_OK;
}


/* ---------------------------------------------------------------- global scope */


static void
ngx_http_levee_limit_log_stats(ngx_http_levee_limit_zone_t *zone, ngx_log_t *log)
{
    uint64_t  evictions, expired, count;

    ngx_shmtx_lock(&zone->shpool->mutex);
    evictions = zone->sh->evictions;
    expired = zone->sh->expired;
    count = zone->sh->count;
    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (evictions == zone->logged_evictions) {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "levee_limit_zone \"%V\" is full: %uL keys evicted since the last "
                  "report, %uL in all; %uL idle keys reclaimed; %uL keys tracked in %uz bytes",
                  &zone->name, evictions - zone->logged_evictions, evictions, expired,
                  count, zone->shm_zone->shm.size);

    zone->logged_evictions = evictions;
}


static void
ngx_http_levee_limit_sync_zone(ngx_http_levee_limit_zone_t *zone, ngx_log_t *log)
{
    ngx_uint_t                 i, n, visited, unanswered;
    uint32_t                   want, now;
    ngx_msec_t                 timeout;
    Entry                     *e;
    GlobalPart                *g;
    Levee__Frame               frame = LEVEE__FRAME__INIT;
    Levee__LimitLeaseRequest   req = LEVEE__LIMIT_LEASE_REQUEST__INIT;
    Levee__LimitLeaseEntry     entries[NGX_HTTP_LEVEE_LIMIT_BATCH];
    uint32_t                   demands[NGX_HTTP_LEVEE_LIMIT_BATCH];
    Levee__LimitLeaseEntry    *ptrs[NGX_HTTP_LEVEE_LIMIT_BATCH];
    u_char                    *keys, *k;

    /* keys are copied out so that the frame is encoded outside the mutex */
    keys = (u_char *) ngx_alloc(NGX_HTTP_LEVEE_LIMIT_KEYS, log);
    if (keys == NULL) {
        return;
    }

    /* pending_ms holds 32 bits of the clock: compare modulo 2^32 */
    now = (uint32_t) ngx_current_msec | 1;
    timeout = ngx_max(1000, 4 * zone->sync);
    n = 0;
    unanswered = 0;
    k = keys;

    Table  t = ngx_http_levee_limit_table(zone);

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (visited = 0; visited < NGX_HTTP_LEVEE_LIMIT_BATCH * 2 && n < NGX_HTTP_LEVEE_LIMIT_BATCH;
         visited++)
    {
        e = t.pop_dirty();
        if (e == NULL) {
            break;
        }

        g = t.global(e);

        if (g->pending_ms != 0 && now - g->pending_ms < timeout) {
            t.mark_dirty(e);
            continue;
        }

        /* leveed answers a lease it cannot serve within kLeaseDeadlineMs
         * (500 ms) with a failure; no answer at all means leveed itself
         * is stuck: the key is as unavailable as if the lease had failed */
        if (g->pending_ms != 0) {
            e->flags |= levee::limit::kEntryUnavailable;
            unanswered++;
        }

        g->pending_ms = 0;

        want = levee::limit::lease_want(g->demand, g->tokens, zone->gcra.capacity(),
                                        zone->refill_per_sync,
                                        !(e->flags & levee::limit::kEntryLeased));
        if (want == 0) {
            g->demand = 0;
            continue;
        }

        if (k + e->len > keys + NGX_HTTP_LEVEE_LIMIT_KEYS) {
            t.mark_dirty(e);
            break;
        }

        ngx_memcpy(k, t.key(e), e->len);

        levee__limit_lease_entry__init(&entries[n]);
        entries[n].zone = (char *) zone->name.data;
        entries[n].key.data = k;
        entries[n].key.len = e->len;
        entries[n].period_us = zone->gcra.period_us;
        entries[n].capacity = (uint32_t) zone->gcra.capacity();
        entries[n].want = want;
        ptrs[n] = &entries[n];
        n++;
        k += e->len;

        /* kept until the frame is on its way: a send that fails gives it back */
        demands[n - 1] = g->demand;
        g->demand = 0;
        g->pending_ms = now;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (unanswered && !ngx_http_levee_limit_unanswered) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "levee_limit_zone \"%V\": %ui leases unanswered for %M ms; "
                      "levee_limit_fail decides for these keys", &zone->name,
                      unanswered, timeout);
    }

    ngx_http_levee_limit_unanswered = unanswered ? 1 : 0;

    if (n > 0) {
        req.n_entries = n;
        req.entries = ptrs;
        frame.body_case = LEVEE__FRAME__BODY_LIMIT_LEASE;
        frame.limit_lease = &req;

        if (ngx_levee_link_send(&frame, NULL) != NGX_OK) {
            /* not sent: let the next tick ask again */
            ngx_shmtx_lock(&zone->shpool->mutex);

            for (i = 0; i < n; i++) {
                e = t.find(levee::limit::hash_key(entries[i].key.data, entries[i].key.len),
                           entries[i].key.data, (uint16_t) entries[i].key.len);
                if (e != NULL) {
                    t.global(e)->pending_ms = 0;
                    t.global(e)->demand += demands[i];
                    t.mark_dirty(e);
                }
            }

            ngx_shmtx_unlock(&zone->shpool->mutex);
        }
    }

    ngx_free(keys);
}


static void
ngx_http_levee_limit_tick(ngx_event_t *ev)
{
    ngx_uint_t                     i;
    ngx_http_levee_limit_zone_t  **zones;

    ngx_http_levee_limit_expedited = 0;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    zones = (ngx_http_levee_limit_zone_t **) ngx_http_levee_limit_mcf->zones.elts;

    for (i = 0; i < ngx_http_levee_limit_mcf->zones.nelts; i++) {
        if (zones[i]->sh == NULL) {
            continue;
        }

        if (zones[i]->global && ngx_levee_link_ready()) {
            ngx_http_levee_limit_sync_zone(zones[i], ev->log);
        }
    }

    if (ngx_worker == 0 && ngx_current_msec - ngx_http_levee_limit_last_stats >= 1000) {
        ngx_http_levee_limit_last_stats = ngx_current_msec;

        for (i = 0; i < ngx_http_levee_limit_mcf->zones.nelts; i++) {
            if (zones[i]->sh != NULL) {
                ngx_http_levee_limit_log_stats(zones[i], ev->log);
            }
        }
    }

    ngx_add_timer(ev, ngx_http_levee_limit_mcf->tick);
}


static ngx_http_levee_limit_zone_t *
ngx_http_levee_limit_find_zone(const char *name)
{
    size_t                         len;
    ngx_uint_t                     i;
    ngx_http_levee_limit_zone_t  **zones;

    len = ngx_strlen(name);
    zones = (ngx_http_levee_limit_zone_t **) ngx_http_levee_limit_mcf->zones.elts;

    for (i = 0; i < ngx_http_levee_limit_mcf->zones.nelts; i++) {
        if (zones[i]->name.len == len && ngx_strncmp(zones[i]->name.data, name, len) == 0) {
            return zones[i];
        }
    }

    return NULL;
}


static void
ngx_http_levee_limit_on_reply(const Levee__Frame *frame, void *data)
{
    ngx_uint_t                    i, failed;
    Entry                        *e;
    GlobalPart                   *g;
    Levee__LimitLeaseGrant       *grant;
    ngx_http_levee_limit_zone_t  *zone;
    const Levee__LimitLeaseReply *reply = frame->limit_lease_reply;

    failed = 0;

    for (i = 0; i < reply->n_grants; i++) {
        grant = reply->grants[i];

        zone = ngx_http_levee_limit_find_zone(grant->zone);
        if (zone == NULL || !zone->global || zone->sh == NULL) {
            continue;
        }

        if (grant->failed) {
            failed++;
        }

        Table  t = ngx_http_levee_limit_table(zone);

        ngx_shmtx_lock(&zone->shpool->mutex);

        e = t.find(levee::limit::hash_key(grant->key.data, grant->key.len),
                   grant->key.data, (uint16_t) grant->key.len);
        if (e != NULL) {
            g = t.global(e);
            g->tokens += (int32_t) grant->granted;
            g->pending_ms = 0;
            e->flags |= levee::limit::kEntryLeased;

            /* per key: a failing Redis master takes only its own keys
             * out of global counting */
            if (grant->failed) {
                e->flags |= levee::limit::kEntryUnavailable;
                t.mark_dirty(e);

            } else {
                e->flags &= (uint8_t) ~levee::limit::kEntryUnavailable;
            }
        }

        ngx_shmtx_unlock(&zone->shpool->mutex);
    }

    if ((failed != 0) != (ngx_http_levee_limit_failing != 0)) {
        if (failed) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "levee_limit: global counting unavailable for %ui keys, "
                          "levee_limit_fail decides for them: %s", failed,
                          reply->error && reply->error[0] ? reply->error
                                                          : "Redis did not answer");

        } else {
            ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                          "levee_limit: global counting resumed");
        }

        ngx_http_levee_limit_failing = failed;
    }
}


static void
ngx_http_levee_limit_on_state(ngx_flag_t ready, void *data)
{
    ngx_uint_t                     i;
    ngx_http_levee_limit_zone_t  **zones;

    /* once per worker: every reconnect to the same leveed would repeat it */
    static ngx_flag_t              warned_standalone;

    /* a lost link takes every key out of global counting; a failing lease
     * only its own key (kEntryUnavailable) */
    ngx_http_levee_limit_global_ok = ready ? 1 : 0;

    if (!ready || warned_standalone || !ngx_levee_link_standalone()) {
        return;
    }

    warned_standalone = 1;
    zones = (ngx_http_levee_limit_zone_t **) ngx_http_levee_limit_mcf->zones.elts;

    for (i = 0; i < ngx_http_levee_limit_mcf->zones.nelts; i++) {
        if (zones[i]->global) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "levee_limit_zone \"%V\" is scope=global but leveed "
                          "is standalone: N nginx hosts each admit the full rate",
                          &zones[i]->name);
        }
    }
}


static ngx_int_t
ngx_http_levee_limit_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                         i, global;
    ngx_http_levee_limit_zone_t      **zones;
    ngx_http_levee_limit_main_conf_t  *lmcf;

    if (ngx_process != NGX_PROCESS_WORKER && ngx_process != NGX_PROCESS_SINGLE) {
        return NGX_OK;
    }

    lmcf = (ngx_http_levee_limit_main_conf_t *)
               ngx_http_cycle_get_module_main_conf(cycle, ngx_http_levee_limit_module);
    if (lmcf == NULL || lmcf->zones.nelts == 0) {
        return NGX_OK;
    }

    ngx_http_levee_limit_mcf = lmcf;
    zones = (ngx_http_levee_limit_zone_t **) lmcf->zones.elts;
    global = 0;

    for (i = 0; i < lmcf->zones.nelts; i++) {
        global |= zones[i]->global;
    }

    if (global) {
        if (ngx_levee_link_on_frame(LEVEE__FRAME__BODY_LIMIT_LEASE_REPLY,
                                    ngx_http_levee_limit_on_reply, NULL) != NGX_OK
            || ngx_levee_link_on_state(ngx_http_levee_limit_on_state, NULL) != NGX_OK)
        {
            return NGX_ERROR;
        }

        ngx_http_levee_limit_global_ok = ngx_levee_link_ready();
    }

    ngx_http_levee_limit_dummy.fd = (ngx_socket_t) -1;
    ngx_http_levee_limit_timer.handler = ngx_http_levee_limit_tick;
    ngx_http_levee_limit_timer.log = cycle->log;
    ngx_http_levee_limit_timer.data = &ngx_http_levee_limit_dummy;
    ngx_http_levee_limit_timer.cancelable = 1;
    ngx_http_levee_limit_last_stats = ngx_current_msec;

    ngx_add_timer(&ngx_http_levee_limit_timer, lmcf->tick);

    return NGX_OK;
}


/* ---------------------------------------------------------------- configuration */


/*
 * A reload changed a local zone's rate or burst: each key keeps the requests
 * it has used, counted in the new rate (see gcra_rescale). Workers of the old
 * configuration still decide with the old parameters until they exit.
 */
static void
ngx_http_levee_limit_rescale(ngx_http_levee_limit_zone_t *ctx,
    ngx_http_levee_limit_zone_t *octx)
{
    Entry    *e;
    int64_t   now;

    now = ngx_http_levee_limit_now_us();

    Table  t = ngx_http_levee_limit_table(ctx);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    for (e = t.next(NULL); e != NULL; e = t.next(e)) {
        e->tat = levee::limit::gcra_rescale(octx->gcra, ctx->gcra, e->tat, now);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}


static ngx_int_t
ngx_http_levee_limit_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_levee_limit_zone_t  *octx = (ngx_http_levee_limit_zone_t *) data;
    ngx_http_levee_limit_zone_t  *ctx = (ngx_http_levee_limit_zone_t *) shm_zone->data;
    size_t                        len;
    uint32_t                      extra;
    ngx_shm_zone_t               *old;

    extra = ctx->global ? levee::limit::kGlobalPartSize : 0;

    if (octx != NULL) {
        if (octx->sh->extra != extra) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "levee_limit_zone \"%V\" changed its scope; "
                          "rename the zone or restart nginx", &ctx->name);
            return NGX_ERROR;
        }

        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;

        if (!ctx->global
            && (octx->gcra.period_us != ctx->gcra.period_us
                || octx->gcra.tolerance_us != ctx->gcra.tolerance_us))
        {
            ngx_http_levee_limit_rescale(ctx, octx);
        }

        return NGX_OK;
    }

    ctx->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    old = ngx_http_levee_replaced_zone(shm_zone);
    if (old != NULL) {
        ngx_log_error(NGX_LOG_NOTICE, shm_zone->shm.log, 0,
                      "levee_limit_zone \"%V\" changed size from %uz to %uz: "
                      "the zone is re-created and its state starts empty",
                      &ctx->name, old->shm.size, shm_zone->shm.size);
    }

    if (shm_zone->shm.exists) {
        ctx->sh = (TableHeader *) ctx->shpool->data;
        return NGX_OK;
    }

    ctx->sh = (TableHeader *) ngx_slab_alloc(ctx->shpool, sizeof(TableHeader));
    if (ctx->sh == NULL) {
        return NGX_ERROR;
    }

    ctx->shpool->data = ctx->sh;

    Table  t = ngx_http_levee_limit_table(ctx);

    if (!t.init(ngx_http_levee_limit_allocator(ctx),
                Table::buckets_for(shm_zone->shm.size), extra))
    {
        return NGX_ERROR;
    }

    len = sizeof(" in levee_limit_zone \"\"") + shm_zone->shm.name.len;

    ctx->shpool->log_ctx = (u_char *) ngx_slab_alloc(ctx->shpool, len);
    if (ctx->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(ctx->shpool->log_ctx, " in levee_limit_zone \"%V\"%Z", &ctx->name);

    /* a full zone is normal: the LRU key makes room */
    ctx->shpool->log_nomem = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_levee_limit_add_variables(ngx_conf_t *cf)
{
    ngx_str_t             name = ngx_string("levee_limit_status");
    ngx_http_variable_t  *var;

    var = ngx_http_add_variable(cf, &name, NGX_HTTP_VAR_NOCACHEABLE);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_http_levee_limit_status_variable;

    return NGX_OK;
}


static void *
ngx_http_levee_limit_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_levee_limit_main_conf_t  *lmcf;

    lmcf = (ngx_http_levee_limit_main_conf_t *)
               ngx_pcalloc(cf->pool, sizeof(ngx_http_levee_limit_main_conf_t));
    if (lmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&lmcf->zones, cf->pool, 4, sizeof(ngx_http_levee_limit_zone_t *))
        != NGX_OK)
    {
        return NULL;
    }

    lmcf->tick = 1000;

    return lmcf;
}


static void *
ngx_http_levee_limit_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_levee_limit_loc_conf_t  *conf;

    conf = (ngx_http_levee_limit_loc_conf_t *)
               ngx_pcalloc(cf->pool, sizeof(ngx_http_levee_limit_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /* conf->limits = NULL: unset */

    conf->status_code = NGX_CONF_UNSET_UINT;
    conf->headers = NGX_CONF_UNSET;
    conf->fail = NGX_CONF_UNSET_UINT;
    conf->dry_run = NGX_CONF_UNSET;
    conf->log_level = NGX_CONF_UNSET_UINT;

    return conf;
}


static char *
ngx_http_levee_limit_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_levee_limit_loc_conf_t *prev = (ngx_http_levee_limit_loc_conf_t *) parent;
    ngx_http_levee_limit_loc_conf_t *conf = (ngx_http_levee_limit_loc_conf_t *) child;

    if (conf->limits == NULL) {
        conf->limits = prev->limits;
    }

    ngx_conf_merge_uint_value(conf->status_code, prev->status_code, NGX_HTTP_TOO_MANY_REQUESTS);
    ngx_conf_merge_value(conf->headers, prev->headers, 0);
    ngx_conf_merge_uint_value(conf->fail, prev->fail, NGX_HTTP_LEVEE_LIMIT_FAIL_OPEN);
    ngx_conf_merge_value(conf->dry_run, prev->dry_run, 0);
    ngx_conf_merge_uint_value(conf->log_level, prev->log_level, NGX_LOG_ERR);

    /* as limit_req: delays are logged one level below refusals */
    conf->delay_log_level = (conf->log_level == NGX_LOG_INFO) ? NGX_LOG_INFO
                                                              : conf->log_level + 1;

    return NGX_CONF_OK;
}


static ngx_http_levee_limit_zone_t *
ngx_http_levee_limit_lookup(ngx_http_levee_limit_main_conf_t *lmcf, ngx_str_t *name)
{
    ngx_uint_t                     i;
    ngx_http_levee_limit_zone_t  **zones;

    zones = (ngx_http_levee_limit_zone_t **) lmcf->zones.elts;

    for (i = 0; i < lmcf->zones.nelts; i++) {
        if (zones[i]->name.len == name->len
            && ngx_strncmp(zones[i]->name.data, name->data, name->len) == 0)
        {
            return zones[i];
        }
    }

    return NULL;
}


/*
 * levee_limit_zone NAME key=$var rate=Nr/s|Nr/m [burst=N] [size=16m]
 *                  [scope=local|global] [sync=100ms];
 */
static char *
ngx_http_levee_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_levee_limit_main_conf_t *lmcf = (ngx_http_levee_limit_main_conf_t *) conf;

    u_char                             *p;
    ssize_t                             size;
    ngx_int_t                           rc;
    ngx_msec_t                          sync;
    ngx_str_t                          *value, s, shm_name;
    ngx_uint_t                          i, has_key, has_rate;
    uint64_t                            burst;
    const char                         *err;
    ngx_http_levee_limit_zone_t        *ctx, **slot;
    ngx_http_compile_complex_value_t    ccv;

    value = (ngx_str_t *) cf->args->elts;

    ctx = ngx_http_levee_limit_lookup(lmcf, &value[1]);
    if (ctx != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "levee_limit_zone \"%V\" is already declared in %s:%ui",
                           &value[1], ctx->file, ctx->line);
        return (char *) NGX_CONF_ERROR;
    }

    ctx = (ngx_http_levee_limit_zone_t *) ngx_pcalloc(cf->pool, sizeof(ngx_http_levee_limit_zone_t));
    if (ctx == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    ctx->name = value[1];
    ctx->file = cf->conf_file->file.name.data;
    ctx->line = cf->conf_file->line;
    size = 16 * 1024 * 1024;
    sync = 100;
    burst = 0;
    has_key = 0;
    has_rate = 0;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "key=", 4) == 0) {
            s.data = value[i].data + 4;
            s.len = value[i].len - 4;

            if (s.len == 0) {
                goto invalid;
            }

            ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
            ccv.cf = cf;
            ccv.value = &s;
            ccv.complex_value = &ctx->key;

            if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
                return (char *) NGX_CONF_ERROR;
            }

            has_key = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "rate=", 5) == 0) {
            err = levee::limit::parse_rate((const char *) value[i].data + 5, value[i].len - 5,
                                           ctx->rate);
            if (err != NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid rate \"%V\": %s",
                                   &value[i], err);
                return (char *) NGX_CONF_ERROR;
            }

            has_rate = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "burst=", 6) == 0) {
            err = levee::limit::parse_count((const char *) value[i].data + 6, value[i].len - 6,
                                            1000000, burst);
            if (err != NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid burst \"%V\": %s",
                                   &value[i], err);
                return (char *) NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "size=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            size = ngx_parse_size(&s);
            if (size == NGX_ERROR) {
                goto invalid;
            }

            if (size < NGX_HTTP_LEVEE_LIMIT_MIN_SIZE) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "levee_limit_zone \"%V\" is too small: \"%V\" leaves no "
                                   "room for one key; the minimum is 32k", &value[1], &value[i]);
                return (char *) NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strcmp(value[i].data, "scope=local") == 0) {
            ctx->global = 0;
            continue;
        }

        if (ngx_strcmp(value[i].data, "scope=global") == 0) {
            ctx->global = 1;
            continue;
        }

        rc = ngx_http_levee_conf_msec(&value[i], "sync=", 1, NGX_MAX_INT32_VALUE,
                                      &sync, NULL);
        if (rc == NGX_ERROR) {
            goto invalid;
        }

        if (rc == NGX_OK) {
            continue;
        }

        goto invalid;
    }

    if (!has_key || !has_rate) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "levee_limit_zone \"%V\" needs key= and rate=", &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    err = levee::limit::check_span(ctx->rate, burst);
    if (err != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "levee_limit_zone \"%V\": %s",
                           &value[1], err);
        return (char *) NGX_CONF_ERROR;
    }

    ctx->burst = (ngx_uint_t) burst;
    ctx->sync = sync;
    ctx->gcra = levee::limit::GcraParams::from_rate(ctx->rate.requests, ctx->rate.window_s,
                                                    (uint32_t) burst);
    ctx->refill_per_sync = ctx->sync * 1000 / ctx->gcra.period_us + 1;

    if (ctx->global) {
        lmcf->tick = ngx_min(lmcf->tick, ctx->sync);

        if (ctx->refill_per_sync > ctx->gcra.capacity()) {
            /* the Redis bucket overflows between two leases: quota is lost */
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "levee_limit_zone \"%V\": burst=%uL is below what the rate "
                               "refills in one sync interval (%uL); global admission will "
                               "stay under the rate", &value[1], (uint64_t) burst,
                               ctx->refill_per_sync);
        }
    }

    shm_name.len = sizeof("levee_limit:") - 1 + ctx->name.len;
    shm_name.data = (u_char *) ngx_pnalloc(cf->pool, shm_name.len);
    if (shm_name.data == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    p = ngx_cpymem(shm_name.data, "levee_limit:", sizeof("levee_limit:") - 1);
    ngx_memcpy(p, ctx->name.data, ctx->name.len);

    ctx->shm_zone = ngx_shared_memory_add(cf, &shm_name, size, &ngx_http_levee_limit_module);
    if (ctx->shm_zone == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    ctx->shm_zone->init = ngx_http_levee_limit_init_zone;
    ctx->shm_zone->data = ctx;

    slot = (ngx_http_levee_limit_zone_t **) ngx_array_push(&lmcf->zones);
    if (slot == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    *slot = ctx;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"", &value[i]);

    return (char *) NGX_CONF_ERROR;
}


/* levee_limit NAME [burst=N] [nodelay | delay=N] [dry_run]; */
static char *
ngx_http_levee_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_levee_limit_loc_conf_t *llcf = (ngx_http_levee_limit_loc_conf_t *) conf;

    uint64_t                           burst, delay;
    ngx_str_t                         *value;
    ngx_uint_t                         i, has_burst, has_delay;
    const char                        *err;
    ngx_http_levee_limit_t            *limit, *limits;
    ngx_http_levee_limit_zone_t       *zone;
    ngx_http_levee_limit_main_conf_t  *lmcf;

    value = (ngx_str_t *) cf->args->elts;

    lmcf = (ngx_http_levee_limit_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_levee_limit_module);

    /* zones are declared before use, so that a typo is reported on its line */
    zone = ngx_http_levee_limit_lookup(lmcf, &value[1]);
    if (zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown levee_limit_zone \"%V\" (zones are declared with "
                           "levee_limit_zone before they are used)", &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    if (llcf->limits == NULL) {
        llcf->limits = ngx_array_create(cf->pool, 2, sizeof(ngx_http_levee_limit_t));
        if (llcf->limits == NULL) {
            return (char *) NGX_CONF_ERROR;
        }
    }

    limits = (ngx_http_levee_limit_t *) llcf->limits->elts;

    for (i = 0; i < llcf->limits->nelts; i++) {
        if (limits[i].zone == zone) {
            return (char *) "is duplicate";
        }
    }

    burst = zone->burst;
    delay = 0;
    has_burst = 0;
    has_delay = 0;

    limit = (ngx_http_levee_limit_t *) ngx_array_push(llcf->limits);
    if (limit == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    *limit = ngx_http_levee_limit_t();
    limit->zone = zone;

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "burst=", 6) == 0) {
            err = levee::limit::parse_count((const char *) value[i].data + 6,
                                            value[i].len - 6, 1000000, burst);
            if (err != NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid burst \"%V\": %s",
                                   &value[i], err);
                return (char *) NGX_CONF_ERROR;
            }

            has_burst = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "delay=", 6) == 0) {
            err = levee::limit::parse_count((const char *) value[i].data + 6,
                                            value[i].len - 6, 1000000, delay);
            if (err != NULL || has_delay) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid delay \"%V\"%s%s",
                                   &value[i], err ? ": " : "", err ? err : "");
                return (char *) NGX_CONF_ERROR;
            }

            has_delay = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "nodelay") == 0 && !has_delay) {
            delay = UINT64_MAX;
            has_delay = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "dry_run") == 0) {
            limit->dry_run = 1;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"", &value[i]);
        return (char *) NGX_CONF_ERROR;
    }

    if (zone->global && (has_burst || (has_delay && delay != UINT64_MAX))) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "levee_limit \"%V\": burst= and delay= are set on the "
                           "levee_limit_zone of a scope=global zone, whose bucket in Redis "
                           "every nginx shares", &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    err = levee::limit::check_span(zone->rate, burst);
    if (err != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "levee_limit \"%V\": %s", &value[1], err);
        return (char *) NGX_CONF_ERROR;
    }

    limit->gcra = levee::limit::GcraParams::from_rate(zone->rate.requests, zone->rate.window_s,
                                                      (uint32_t) burst);
    limit->delay = delay;

    return NGX_CONF_OK;
}


/*
 * Checked once the whole http block is read: levee_sidecar may come after
 * the zones. A global zone without it would only fail at run time, on every
 * request, by its fail mode.
 */
static ngx_int_t
ngx_http_levee_limit_check_sidecar(ngx_conf_t *cf)
{
    ngx_uint_t                          i;
    ngx_http_levee_main_conf_t         *mcf;
    ngx_http_levee_limit_zone_t       **zones;
    ngx_http_levee_limit_main_conf_t   *lmcf;

    lmcf = (ngx_http_levee_limit_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_levee_limit_module);
    mcf = (ngx_http_levee_main_conf_t *)
              ngx_http_conf_get_module_main_conf(cf, ngx_http_levee_module);

    zones = (ngx_http_levee_limit_zone_t **) lmcf->zones.elts;

    for (i = 0; i < lmcf->zones.nelts; i++) {
        if (zones[i]->global && (mcf == NULL || !mcf->sidecar_set)) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "levee_limit_zone \"%V\" has scope=global, which needs "
                          "levee_sidecar in the http block, in %s:%ui",
                          &zones[i]->name, zones[i]->file, zones[i]->line);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_levee_limit_init(ngx_conf_t *cf)
{
    if (ngx_http_levee_limit_check_sidecar(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_levee_add_handler_last(cf, NGX_HTTP_PREACCESS_PHASE,
                                        ngx_http_levee_limit_handler)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_levee_limit_header_filter;

    return NGX_OK;
}
