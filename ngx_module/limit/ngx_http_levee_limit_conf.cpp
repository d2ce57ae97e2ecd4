/*
 * ngx_http_levee_limit_module's configuration: creating and merging it, and
 * parsing levee_limit_zone and levee_limit, so that `nginx -t` refuses what
 * could only fail at run time, with the file, the line and the reason.
 */

#include "core/limit/rate_parse.hpp"
#include "core/link/frame_bounds.hpp"
#include "ngx_http_levee_limit.h"
#include "ngx_http_levee_module.h"


void *
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


void *
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


char *
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
 *                  [scope=local|global] [sync=100ms] [max_key=256]
 *                  [long_key=hash|refuse] [new_keys=1000r/s];
 */
char *
ngx_http_levee_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_levee_limit_main_conf_t *lmcf = (ngx_http_levee_limit_main_conf_t *) conf;

    u_char                             *p;
    ssize_t                             size, max_key;
    ngx_int_t                           rc;
    ngx_msec_t                          sync;
    ngx_str_t                          *value, s, shm_name;
    ngx_uint_t                          i, has_key, has_rate;
    levee::limit::Rate                  new_keys;
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

    /* every lease entry carries the zone's name: it bounds the lease frame */
    if (value[1].len > levee::link::kLeaseZoneNameMax) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "levee_limit_zone name \"%V\" is longer than %uz bytes",
                           &value[1], levee::link::kLeaseZoneNameMax);
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
    ctx->max_key = levee::limit::kDefaultMaxKey;
    ctx->long_key = levee::limit::LongKey::kHash;
    new_keys = levee::limit::kDefaultNewKeys;

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

            /* the table links its entries by 32-bit offsets into the zone */
            if ((uint64_t) size > NGX_HTTP_LEVEE_LIMIT_MAX_SIZE) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "levee_limit_zone \"%V\" is too large: \"%V\" is beyond "
                                   "what the table's 32-bit offsets address; the size is "
                                   "from 32k to 4095m", &value[1], &value[i]);
                return (char *) NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "max_key=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            /* an entry's key length is 16 bits */
            max_key = ngx_parse_size(&s);
            if (max_key == NGX_ERROR || max_key < 1
                || (size_t) max_key > levee::limit::kMaxMaxKey)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid max_key \"%V\": the longest key kept is "
                                   "from 1 to 65535 bytes", &value[i]);
                return (char *) NGX_CONF_ERROR;
            }

            ctx->max_key = (size_t) max_key;
            continue;
        }

        if (ngx_strcmp(value[i].data, "long_key=hash") == 0) {
            ctx->long_key = levee::limit::LongKey::kHash;
            continue;
        }

        if (ngx_strcmp(value[i].data, "long_key=refuse") == 0) {
            ctx->long_key = levee::limit::LongKey::kRefuse;
            continue;
        }

        if (ngx_strncmp(value[i].data, "new_keys=", 9) == 0) {
            err = levee::limit::parse_rate((const char *) value[i].data + 9, value[i].len - 9,
                                           new_keys);
            if (err != NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid new_keys \"%V\": %s",
                                   &value[i], err);
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
    ctx->new_keys = levee::limit::new_key_budget(new_keys);
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
char *
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
ngx_int_t
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
