/*
 * ngx_http_levee_limit_module: rate limits, local to this nginx or global
 * across every nginx through leveed and Redis.
 *
 * Local zones keep one GCRA state per key in shared memory. Global zones
 * spend quota leased from leveed: each key's entry holds the tokens this
 * nginx was granted, the sync timer of each worker asks for more every
 * `sync` interval, and a request only decrements a counter. Either way the
 * decision is a hash lookup and a few stores under the zone's mutex.
 *
 * This file holds the directive table and the access handler; beside it are
 * the directives' parsers (_conf.cpp), the shared zone (_zone.cpp), the lease
 * client of the global scope
 * (_lease.cpp), the request's context (_ctx.cpp) and the response headers
 * (_headers.cpp).
 */

#include "core/limit/lease.hpp"
#include "ngx_http_levee_limit.h"
#include "ngx_http_levee_module.h"

using levee::limit::Admission;
using levee::limit::Entry;
using levee::limit::GlobalPart;
using levee::limit::Table;


/* $levee_limit_status, limit_req's values plus UNAVAILABLE */
#define NGX_HTTP_LEVEE_LIMIT_PASSED            1
#define NGX_HTTP_LEVEE_LIMIT_DELAYED           2
#define NGX_HTTP_LEVEE_LIMIT_REJECTED          3
#define NGX_HTTP_LEVEE_LIMIT_DELAYED_DRY_RUN   4
#define NGX_HTTP_LEVEE_LIMIT_REJECTED_DRY_RUN  5
#define NGX_HTTP_LEVEE_LIMIT_UNAVAILABLE       6

/* A request to a global key that no lease has answered yet (a new key, or
 * one evicted and back) waits up to NGX_HTTP_LEVEE_LIMIT_FIRST_WAIT for the
 * first lease instead of being refused: the lease is usually a few ms away
 * and the global bucket is most likely full. It rechecks after 2 ms, then
 * after half the time waited so far: about a dozen checks at most, however
 * slow the lease. Past the wait, or once a key's outstanding lease is that
 * old, levee_limit_fail decides: a slow lease is no reason to refuse. */
#define NGX_HTTP_LEVEE_LIMIT_WAIT_STEP    2


static ngx_int_t ngx_http_levee_limit_handler(ngx_http_request_t *r);
static void ngx_http_levee_limit_count(ngx_http_levee_limit_t *limits,
    ngx_http_levee_limit_loc_conf_t *llcf, ngx_http_levee_limit_ctx_t *ctx,
    ngx_uint_t n);
static void ngx_http_levee_limit_delay(ngx_http_request_t *r);
static ngx_int_t ngx_http_levee_limit_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

static ngx_int_t ngx_http_levee_limit_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_levee_limit_init(ngx_conf_t *cf);


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


static ngx_str_t  ngx_http_levee_limit_status_names[] = {
    ngx_null_string,
    ngx_string("PASSED"),
    ngx_string("DELAYED"),
    ngx_string("REJECTED"),
    ngx_string("DELAYED_DRY_RUN"),
    ngx_string("REJECTED_DRY_RUN"),
    ngx_string("UNAVAILABLE")
};


static ngx_str_t  ngx_http_levee_limit_overflow_key = {
    levee::limit::kOverflowKey.size(), (u_char *) levee::limit::kOverflowKey.data()
};


/*
 * Decides one limit for a request; called with the zone unlocked. A key
 * over the zone's max_key is refused or replaced by its digest; a key not in
 * the table yet takes one from the zone's budget of new keys, or, past it,
 * is decided by the one entry all such keys share (docs/rate-limits.md).
 */
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
    bool                          late;
    levee::limit::KeyShape        shape;
    levee::limit::GcraDecision    d;
    levee::limit::GlobalDecision  gd;
    u_char                        digest[levee::limit::kDigestKeyLen];

    if (ngx_http_complex_value(r, &zone->key, &res->key) != NGX_OK) {
        return NGX_ERROR;
    }

    if (res->key.len == 0) {
        return NGX_DECLINED;
    }

    shape = levee::limit::shape_key(res->key.data, res->key.len, zone->max_key,
                                    zone->long_key, digest);

    if (shape == levee::limit::KeyShape::kRefused) {
        levee::limit::count(zone->sh->long_keys[(int) levee::limit::LongKey::kRefuse]);
        ngx_log_error(llcf->log_level, r->connection->log, 0,
                      "limiting requests%s, the key is %uz bytes, more than "
                      "max_key=%uz of zone \"%V\"",
                      (limit->dry_run || llcf->dry_run) ? ", dry run" : "",
                      res->key.len, zone->max_key, &zone->name);
        res->applied = 1;
        res->long_refused = 1;
        res->remaining = 0;
        return NGX_BUSY;
    }

    if (shape == levee::limit::KeyShape::kDigest) {
        /* a global key's second decision (after a first-lease wait) is not
         * counted again */
        if (res->key.len > zone->max_key && !res->counted) {
            levee::limit::count(zone->sh->long_keys[(int) levee::limit::LongKey::kHash]);
        }

        res->key.data = (u_char *) ngx_pnalloc(r->pool, sizeof(digest));
        if (res->key.data == NULL) {
            return NGX_ERROR;
        }

        res->key.len = ngx_cpymem(res->key.data, digest, sizeof(digest)) - res->key.data;
    }

    if (res->overflow) {
        res->key = ngx_http_levee_limit_overflow_key;
    }

    hash = levee::limit::hash_key(zone->sh->seed, res->key.data, res->key.len);
    now = ngx_http_levee_limit_now_us();

    Table  t = ngx_http_levee_limit_table(zone);

    ngx_shmtx_lock(&zone->shpool->mutex);

    e = t.find(hash, res->key.data, (uint16_t) res->key.len);

    if (e == NULL && !res->overflow
        && !levee::limit::take_new_key(zone->new_keys, zone->sh->new_key_tat, now))
    {
        /* over the budget of new keys: the key shares one entry with every
         * other such key instead of evicting an established key's state */
        levee::limit::count(zone->sh->new_keys_over_budget);
        res->overflow = 1;
        res->key = ngx_http_levee_limit_overflow_key;
        hash = levee::limit::hash_key(zone->sh->seed, res->key.data, res->key.len);
        e = t.find(hash, res->key.data, (uint16_t) res->key.len);
    }

    if (e == NULL) {
        e = ngx_http_levee_limit_insert(zone, hash, &res->key, now);
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

    /* pending_ms holds 32 bits of the clock, never 0 */
    late = levee::limit::lease_late(*g, (uint32_t) ngx_current_msec | 1,
                                    NGX_HTTP_LEVEE_LIMIT_FIRST_WAIT);
    gd = levee::limit::global_admit(*e, *g, ngx_http_levee_limit_link_ready(), res->may_wait,
                                    late);

    switch (gd.admission) {

    case Admission::kPass:
        res->committed = 1;
        res->remaining = g->tokens > 0 ? g->tokens : 0;
        rc = NGX_OK;
        break;

    case Admission::kFailMode:
        res->unavailable = 1;
        rc = llcf->fail == NGX_HTTP_LEVEE_LIMIT_FAIL_OPEN ? NGX_DECLINED : NGX_ABORT;

        if (gd.late) {
            ngx_http_levee_limit_count_late();

            /* a dry run would not have refused either */
            if (limit->dry_run || llcf->dry_run) {
                rc = NGX_DECLINED;
            }
        }

        if (gd.ask_now) {
            ngx_http_levee_limit_ask_now();
        }

        break;

    default: /* kRefuse, kWait */
        res->remaining = 0;
        rc = gd.admission == Admission::kWait ? NGX_AGAIN : NGX_BUSY;

        if (gd.ask_now) {
            ngx_http_levee_limit_ask_now();
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

    e = t.find(levee::limit::hash_key(zone->sh->seed, res->key.data, res->key.len),
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
 * Counts, for levee_status, what each of the first n limits decided. Counted
 * once the request is decided, not on a pass that ends waiting for a first
 * lease: that pass is decided again.
 */
static void
ngx_http_levee_limit_count(ngx_http_levee_limit_t *limits,
    ngx_http_levee_limit_loc_conf_t *llcf, ngx_http_levee_limit_ctx_t *ctx,
    ngx_uint_t n)
{
    ngx_uint_t                      i;
    levee::limit::Outcome           outcome;
    ngx_http_levee_limit_result_t  *res;

    for (i = 0; i < n; i++) {
        res = &ctx->results[i];

        if (!res->applied) {
            continue;
        }

        if (res->unavailable) {
            outcome = levee::limit::kUnavailable;

        } else if (res->dry_refused) {
            outcome = levee::limit::kDryRun;

        } else if (res->delay) {
            outcome = (limits[i].dry_run || llcf->dry_run)
                      ? levee::limit::kDryRun : levee::limit::kDelayed;

        } else {
            outcome = levee::limit::kPassed;
        }

        levee::limit::count(limits[i].zone->sh->outcomes[outcome]);
    }
}


static ngx_int_t
ngx_http_levee_limit_handler(ngx_http_request_t *r)
{
    ngx_uint_t                        i, n, refused, applied, unavailable;
    ngx_uint_t                        dry_run, dry_delayed, dry_refused;
    ngx_int_t                         rc;
    ngx_msec_t                        delay;
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
        ctx = ngx_http_levee_limit_create_ctx(r, llcf->limits);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
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
        res->dry_refused = 0;
        dry_run = limits[i].dry_run || llcf->dry_run;
        res->may_wait = !dry_run
                        && ngx_current_msec - ctx->wait_start
                           < NGX_HTTP_LEVEE_LIMIT_FIRST_WAIT;

        res->long_refused = 0;

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
            if (!res->long_refused) {
                ngx_http_levee_limit_log(r, llcf, &limits[i], res, dry_run);
            }

            if (dry_run) {
                dry_refused = 1;
                res->dry_refused = 1;
                continue;
            }
        }

        break;
    }

    if (i == n) {
        ngx_http_levee_limit_count(limits, llcf, ctx, n);

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

        if (!ctx->waited) {
            ctx->waited = 1;
            levee::limit::count(limits[refused].zone->sh->first_lease_waits);
        }

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

    ngx_http_levee_limit_count(limits, llcf, ctx, refused);

    if (rc == NGX_ABORT) {
        levee::limit::count(limits[refused].zone->sh->outcomes[levee::limit::kUnavailable]);
        ctx->status = NGX_HTTP_LEVEE_LIMIT_UNAVAILABLE;
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    levee::limit::count(limits[refused].zone->sh->outcomes[levee::limit::kRejected]);
    ctx->status = NGX_HTTP_LEVEE_LIMIT_REJECTED;

    /* waiting does not shorten a key */
    if (ctx->results[refused].long_refused) {
        return llcf->status_code;
    }

    if (ngx_http_levee_limit_retry_after(r, ctx->results[refused].reset_us) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

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


/* ---------------------------------------------------------------- configuration */


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

    ngx_http_levee_limit_init_headers();

    return NGX_OK;
}
