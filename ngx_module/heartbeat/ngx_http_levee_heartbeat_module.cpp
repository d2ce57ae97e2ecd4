/*
 * ngx_http_levee_heartbeat_module: presence heartbeats answered at the edge
 * (levee_heartbeat) and presence queries (levee_presence).
 *
 * A beat is recorded in a presence table in shared memory (see
 * core/presence/presence_table.hpp) and answered 204 at once. Every worker's
 * flush timer takes what waits there and sends it to leveed in batches; an
 * entry leaves the table only when leveed acknowledged the batch that carried
 * its latest beat, so a beat answered 204 survives leveed, Redis or the
 * database going away, and the death of the worker that sent it. When the
 * table cannot keep a new user, the beat gets 503 and Retry-After, never 204.
 *
 * This file holds the directives and the beat handler; the flushing, the
 * zone, the presence queries and the responses are in its siblings (see
 * ngx_http_levee_heartbeat.h).
 */

#include "ngx_http_levee_heartbeat.h"
#include "core/presence/beat_interval.hpp"

using levee::presence::BeatResult;
using levee::presence::Key;
using levee::presence::Table;


static ngx_int_t ngx_http_levee_hb_handler(ngx_http_request_t *r);

static void *ngx_http_levee_hb_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_levee_hb_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_levee_hb_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child);
static char *ngx_http_levee_hb_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_levee_hb(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_levee_presence(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_levee_hb_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_levee_hb_init_process(ngx_cycle_t *cycle);
static void ngx_http_levee_hb_exit_process(ngx_cycle_t *cycle);


static ngx_command_t  ngx_http_levee_hb_commands[] = {

    { ngx_string("levee_heartbeat_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_levee_hb_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("levee_heartbeat"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_levee_hb,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("levee_presence"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_levee_presence,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_levee_heartbeat_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_levee_hb_init,                /* postconfiguration */

    ngx_http_levee_hb_create_main_conf,    /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_levee_hb_create_loc_conf,     /* create location configuration */
    ngx_http_levee_hb_merge_loc_conf       /* merge location configuration */
};


extern "C" {

ngx_module_t  ngx_http_levee_heartbeat_module = {
    NGX_MODULE_V1,
    &ngx_http_levee_heartbeat_module_ctx,  /* module context */
    ngx_http_levee_hb_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_levee_hb_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_levee_hb_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};

}


/* The worker's configuration, shared with the sibling files. */
ngx_http_levee_hb_main_conf_t  *ngx_http_levee_hb_mcf;


static void
ngx_http_levee_hb_count_bad_key(ngx_http_levee_hb_main_conf_t *hmcf)
{
    ngx_shmtx_lock(&hmcf->shpool->mutex);
    ngx_http_levee_hb_table(hmcf).counters().bad_key++;
    ngx_shmtx_unlock(&hmcf->shpool->mutex);
}


static ngx_int_t
ngx_http_levee_hb_handler(ngx_http_request_t *r)
{
    int64_t                         now_ms;
    uint64_t                        count, backlog, interval;
    ngx_int_t                       rc;
    ngx_str_t                       user, room;
    ngx_time_t                     *tp;
    BeatResult                      res;
    const char                     *reason;
    ngx_http_levee_hb_loc_conf_t   *hlcf;
    ngx_http_levee_hb_main_conf_t  *hmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_POST|NGX_HTTP_PUT))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    hlcf = (ngx_http_levee_hb_loc_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_http_levee_heartbeat_module);
    hmcf = ngx_http_levee_hb_mcf;

    if (hmcf == NULL || hmcf->base == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    if (ngx_http_complex_value(r, hlcf->key, &user) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_null(&room);
    if (hlcf->room != NULL && ngx_http_complex_value(r, hlcf->room, &room) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    reason = levee::presence::check_key(user.data, user.len, levee::presence::kMaxUserBytes, false);
    if (reason == NULL) {
        reason = levee::presence::check_key(room.data, room.len,
                                            levee::presence::kMaxRoomBytes, true);
        if (reason != NULL) {
            reason = "invalid room";
        }
    }

    if (reason != NULL) {
        ngx_http_levee_hb_count_bad_key(hmcf);
        return ngx_http_levee_hb_text(r, NGX_HTTP_BAD_REQUEST,
                                      ngx_strcmp(reason, "empty key") == 0 ? "empty key\n"
                                      : ngx_strcmp(reason, "key too long") == 0 ? "key too long\n"
                                      : ngx_strcmp(reason, "invalid room") == 0 ? "invalid room\n"
                                      : "invalid character in key\n");
    }

    tp = ngx_timeofday();
    now_ms = (int64_t) tp->sec * 1000 + tp->msec;
    backlog = levee::presence::backlog_limit(hmcf->backlog, hmcf->size);

    Key    k = { user.data, user.len, room.data, room.len };
    Table  t = ngx_http_levee_hb_table(hmcf);

    ngx_shmtx_lock(&hmcf->shpool->mutex);
    res = t.beat(k, now_ms, hmcf->ttl_index[hlcf->ttl_slot], backlog);
    count = t.header().count;
    ngx_shmtx_unlock(&hmcf->shpool->mutex);

    if (res != BeatResult::kStored && res != BeatResult::kCoalesced) {
        if (ngx_http_levee_hb_header(r, "Retry-After",
                                     levee::presence::retry_after_seconds(hmcf->flush))
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_levee_hb_text(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      res == BeatResult::kFull ? "presence table full\n"
                                      : res == BeatResult::kBacklog ? "presence backlog full\n"
                                      : "presence zone replaced by a reload\n");
    }

    interval = levee::presence::beat_interval_ms(hlcf->interval, hlcf->interval_max, count,
                                                 backlog, ngx_levee_link_ready());

    if (ngx_http_levee_hb_header(r, "Levee-Heartbeat-Interval",
                                 levee::presence::header_seconds(interval))
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_NO_CONTENT;
    r->headers_out.content_length_n = 0;

    return ngx_http_send_header(r);
}


static ngx_int_t
ngx_http_levee_hb_init_process(ngx_cycle_t *cycle)
{
    ngx_http_levee_hb_main_conf_t  *hmcf;

    if (ngx_process != NGX_PROCESS_WORKER && ngx_process != NGX_PROCESS_SINGLE) {
        return NGX_OK;
    }

    hmcf = (ngx_http_levee_hb_main_conf_t *)
               ngx_http_cycle_get_module_main_conf(cycle, ngx_http_levee_heartbeat_module);
    if (hmcf == NULL || !hmcf->used) {
        return NGX_OK;
    }

    ngx_http_levee_hb_mcf = hmcf;
    ngx_http_levee_q_init();

    if (ngx_levee_link_on_frame(LEVEE__FRAME__BODY_PRESENCE_ACK,
                                ngx_http_levee_hb_on_ack, NULL) != NGX_OK
        || ngx_levee_link_on_frame(LEVEE__FRAME__BODY_PRESENCE_QUERY_REPLY,
                                   ngx_http_levee_q_on_reply, NULL) != NGX_OK
        || ngx_levee_link_on_state(ngx_http_levee_hb_on_state, NULL) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (hmcf->base == NULL) {
        return NGX_OK;
    }

    return ngx_http_levee_hb_flush_init(cycle);
}


static void
ngx_http_levee_hb_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_http_levee_hb_mcf != NULL && ngx_http_levee_hb_mcf->base != NULL) {
        ngx_http_levee_hb_flush_on_exit(cycle);
    }
}


/* ---------------------------------------------------------------- configuration */


static void *
ngx_http_levee_hb_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_levee_hb_main_conf_t  *hmcf;

    hmcf = (ngx_http_levee_hb_main_conf_t *)
               ngx_pcalloc(cf->pool, sizeof(ngx_http_levee_hb_main_conf_t));
    if (hmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&hmcf->ttls, cf->pool, 4, sizeof(uint32_t)) != NGX_OK) {
        return NULL;
    }

    hmcf->size = 16 * 1024 * 1024;
    hmcf->flush = NGX_CONF_UNSET_MSEC;

    return hmcf;
}


static void *
ngx_http_levee_hb_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_levee_hb_loc_conf_t  *conf;

    conf = (ngx_http_levee_hb_loc_conf_t *)
               ngx_pcalloc(cf->pool, sizeof(ngx_http_levee_hb_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->presence_timeout = NGX_CONF_UNSET_MSEC;

    return conf;
}


static char *
ngx_http_levee_hb_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_levee_hb_loc_conf_t *conf = (ngx_http_levee_hb_loc_conf_t *) child;

    ngx_conf_merge_msec_value(conf->presence_timeout, NGX_CONF_UNSET_MSEC, 1000);

    return NGX_CONF_OK;
}


/* levee_heartbeat_zone size=16m [backlog=N]; */
static char *
ngx_http_levee_hb_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_levee_hb_main_conf_t *hmcf = (ngx_http_levee_hb_main_conf_t *) conf;

    ssize_t      size;
    ngx_int_t    n;
    ngx_str_t   *value, s;
    ngx_uint_t   i;

    if (hmcf->zone_set) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "levee_heartbeat_zone is duplicate (first declared at %s:%ui; "
                           "one zone serves every location of the http block)",
                           hmcf->zone_file, hmcf->zone_line);
        return (char *) NGX_CONF_ERROR;
    }

    value = (ngx_str_t *) cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "size=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            size = ngx_parse_size(&s);
            if (size == NGX_ERROR || size < NGX_HTTP_LEVEE_HB_MIN_SIZE
                || (uint64_t) size > 0xffffffffULL)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid levee_heartbeat_zone size \"%V\": from 64k to 4095m",
                                   &value[i]);
                return (char *) NGX_CONF_ERROR;
            }

            hmcf->size = size;
            continue;
        }

        if (ngx_strncmp(value[i].data, "backlog=", 8) == 0) {
            n = ngx_atoi(value[i].data + 8, value[i].len - 8);
            if (n <= 0) {
                goto invalid;
            }

            hmcf->backlog = n;
            continue;
        }

        goto invalid;
    }

    hmcf->zone_set = 1;
    hmcf->zone_file = cf->conf_file->file.name.data;
    hmcf->zone_line = cf->conf_file->line;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"", &value[i]);

    return (char *) NGX_CONF_ERROR;
}


/* The zone is used: remember the first directive that needs leveed, for nginx -t. */
static void
ngx_http_levee_hb_use(ngx_conf_t *cf, ngx_http_levee_hb_main_conf_t *hmcf, const char *directive)
{
    if (!hmcf->used) {
        hmcf->used = 1;
        hmcf->used_by = directive;
        hmcf->used_file = cf->conf_file->file.name.data;
        hmcf->used_line = cf->conf_file->line;
    }
}


static char *
ngx_http_levee_hb_compile(ngx_conf_t *cf, ngx_str_t *v, ngx_http_complex_value_t **out)
{
    ngx_http_compile_complex_value_t  ccv;

    *out = (ngx_http_complex_value_t *) ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (*out == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
    ccv.cf = cf;
    ccv.value = v;
    ccv.complex_value = *out;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * levee_heartbeat key=$var [room=$var] [ttl=180s] [interval=60s]
 *                 [interval_max=180s] [flush=250ms];
 */
static char *
ngx_http_levee_hb(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_levee_hb_loc_conf_t *hlcf = (ngx_http_levee_hb_loc_conf_t *) conf;

    uint32_t                       *ttls, *slot;
    ngx_int_t                       rc;
    ngx_str_t                      *value, s;
    ngx_uint_t                      i, k;
    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_levee_hb_main_conf_t  *hmcf;

    const struct {
        const char  *name;
        ngx_msec_t  *ms;
    } times[] = {
        { "ttl=", &hlcf->ttl },
        { "interval=", &hlcf->interval },
        { "interval_max=", &hlcf->interval_max },
        { "flush=", &hlcf->flush },
    };

    if (hlcf->key != NULL) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;

    hlcf->ttl = 180000;
    hlcf->interval = 60000;
    hlcf->interval_max = NGX_CONF_UNSET_MSEC;
    hlcf->flush = 250;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "key=", 4) == 0 && value[i].len > 4) {
            s.data = value[i].data + 4;
            s.len = value[i].len - 4;

            if (ngx_http_levee_hb_compile(cf, &s, &hlcf->key) != NGX_CONF_OK) {
                return (char *) NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "room=", 5) == 0 && value[i].len > 5) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            if (ngx_http_levee_hb_compile(cf, &s, &hlcf->room) != NGX_CONF_OK) {
                return (char *) NGX_CONF_ERROR;
            }

            continue;
        }

        rc = NGX_DECLINED;

        for (k = 0; k < sizeof(times) / sizeof(times[0]) && rc == NGX_DECLINED; k++) {
            rc = ngx_http_levee_conf_msec(&value[i], times[k].name, 1, 0x7fffffff,
                                          times[k].ms, NULL);
        }

        if (rc == NGX_DECLINED) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"", &value[i]);
            return (char *) NGX_CONF_ERROR;
        }

        if (rc == NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid time in \"%V\"", &value[i]);
            return (char *) NGX_CONF_ERROR;
        }
    }

    if (hlcf->key == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "levee_heartbeat needs key=$variable");
        return (char *) NGX_CONF_ERROR;
    }

    if (hlcf->interval_max == NGX_CONF_UNSET_MSEC) {
        hlcf->interval_max = ngx_max(hlcf->interval, 180000);
    }

    if (hlcf->interval_max < hlcf->interval) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "levee_heartbeat: interval_max is shorter than interval");
        return (char *) NGX_CONF_ERROR;
    }

    if (hlcf->ttl <= hlcf->interval) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "levee_heartbeat: a ttl not longer than the interval shows users "
                           "offline between two beats");
    }

    hmcf = (ngx_http_levee_hb_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_levee_heartbeat_module);

    ttls = (uint32_t *) hmcf->ttls.elts;
    for (i = 0; i < hmcf->ttls.nelts; i++) {
        if (ttls[i] == hlcf->ttl) {
            break;
        }
    }

    if (i == hmcf->ttls.nelts) {
        if (i == levee::presence::kMaxTtls) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "levee_heartbeat: at most %uz different ttl values",
                               levee::presence::kMaxTtls);
            return (char *) NGX_CONF_ERROR;
        }

        slot = (uint32_t *) ngx_array_push(&hmcf->ttls);
        if (slot == NULL) {
            return (char *) NGX_CONF_ERROR;
        }

        *slot = (uint32_t) hlcf->ttl;
    }

    hlcf->ttl_slot = i;
    ngx_http_levee_hb_use(cf, hmcf, "levee_heartbeat");
    hmcf->flush = ngx_min(hmcf->flush, hlcf->flush);

    clcf = (ngx_http_core_loc_conf_t *) ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_levee_hb_handler;

    return NGX_CONF_OK;
}


/* levee_presence [timeout=1s]; */
static char *
ngx_http_levee_presence(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_levee_hb_loc_conf_t *hlcf = (ngx_http_levee_hb_loc_conf_t *) conf;

    ngx_int_t                       rc;
    ngx_str_t                      *value;
    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_levee_hb_main_conf_t  *hmcf;

    if (hlcf->presence) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;

    if (cf->args->nelts == 2) {
        rc = ngx_http_levee_conf_msec(&value[1], "timeout=", 1, NGX_MAX_INT32_VALUE,
                                      &hlcf->presence_timeout, NULL);

        if (rc == NGX_DECLINED) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"", &value[1]);
            return (char *) NGX_CONF_ERROR;
        }

        if (rc == NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid time in \"%V\"", &value[1]);
            return (char *) NGX_CONF_ERROR;
        }
    }

    hlcf->presence = 1;

    hmcf = (ngx_http_levee_hb_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_levee_heartbeat_module);
    ngx_http_levee_hb_use(cf, hmcf, "levee_presence");

    clcf = (ngx_http_core_loc_conf_t *) ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_levee_presence_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_levee_hb_init(ngx_conf_t *cf)
{
    ngx_str_t                       name = ngx_string("levee_presence");
    ngx_http_levee_main_conf_t     *lmcf;
    ngx_http_levee_hb_main_conf_t  *hmcf;

    hmcf = (ngx_http_levee_hb_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_levee_heartbeat_module);

    if (!hmcf->used) {
        return NGX_OK;
    }

    lmcf = (ngx_http_levee_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_levee_module);

    /* without leveed a beat would be answered 204 and never flushed */
    if (lmcf == NULL || !lmcf->sidecar_set) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "%s needs levee_sidecar in the http block in %s:%ui",
                      hmcf->used_by, hmcf->used_file, hmcf->used_line);
        return NGX_ERROR;
    }

    if (hmcf->flush == NGX_CONF_UNSET_MSEC) {
        hmcf->flush = 250;
    }

    if (hmcf->ttls.nelts == 0) {
        /* levee_presence alone: the table is there for ?stats */
        uint32_t  *ttl = (uint32_t *) ngx_array_push(&hmcf->ttls);
        if (ttl == NULL) {
            return NGX_ERROR;
        }
        *ttl = 180000;
    }

    hmcf->shm_zone = ngx_shared_memory_add(cf, &name, hmcf->size,
                                           &ngx_http_levee_heartbeat_module);
    if (hmcf->shm_zone == NULL) {
        return NGX_ERROR;
    }

    hmcf->shm_zone->init = ngx_http_levee_hb_init_zone;
    hmcf->shm_zone->data = hmcf;

    return NGX_OK;
}
