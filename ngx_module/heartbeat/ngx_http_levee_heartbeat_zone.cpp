/*
 * The presence zone: the whole shared zone becomes one presence table
 * (core/presence/presence_table.hpp), kept across reloads, and adopted by the
 * new zone when a reload changes its size.
 */

#include "ngx_http_levee_heartbeat.h"

using levee::presence::Table;


static ngx_int_t
ngx_http_levee_hb_register_ttls(ngx_http_levee_hb_main_conf_t *hmcf, ngx_log_t *log)
{
    int         idx;
    uint32_t   *ttls;
    ngx_uint_t  i;

    ttls = (uint32_t *) hmcf->ttls.elts;
    Table  t = ngx_http_levee_hb_table(hmcf);

    for (i = 0; i < hmcf->ttls.nelts; i++) {
        idx = t.ttl_index(ttls[i]);
        if (idx < 0) {
            ngx_log_error(NGX_LOG_EMERG, log, 0,
                          "levee_heartbeat: more than %uz different ttl values since the "
                          "presence zone was created; restart nginx",
                          levee::presence::kMaxTtls);
            return NGX_ERROR;
        }
        hmcf->ttl_index[i] = (uint8_t) idx;
    }

    return NGX_OK;
}


/*
 * A reload changed the zone's size, so nginx made a new, empty one. The beats
 * answered 204 and not yet acknowledged are copied into it here, in the
 * master, before the new workers start; the old table is retired in the same
 * critical section, so the old workers, which keep serving until they shut
 * down, answer 503 to any later beat (the client retries on a new worker)
 * instead of storing it where nobody would flush it: an exiting worker's link
 * to leveed is closed with its idle connections.
 */
static void
ngx_http_levee_hb_adopt(ngx_http_levee_hb_main_conf_t *ctx,
    ngx_http_levee_hb_main_conf_t *octx, size_t old_size, size_t new_size, ngx_log_t *log)
{
    size_t      lost;
    uint64_t    count;
    ngx_uint_t  level;

    Table  t = ngx_http_levee_hb_table(ctx);
    Table  o = ngx_http_levee_hb_table(octx);

    ngx_shmtx_lock(&octx->shpool->mutex);
    count = o.header().count;
    lost = t.adopt(o);
    ngx_shmtx_unlock(&octx->shpool->mutex);

    level = lost ? NGX_LOG_WARN : NGX_LOG_NOTICE;

    ngx_log_error(level, log, 0,
                  "levee_heartbeat_zone changed size from %uz to %uz: the presence zone "
                  "is re-created; %uL users waiting for leveed's ack moved to it, "
                  "%uz of them lost (no room)", old_size, new_size, count, lost);
}


ngx_int_t
ngx_http_levee_hb_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_levee_hb_main_conf_t *octx = (ngx_http_levee_hb_main_conf_t *) data;
    ngx_http_levee_hb_main_conf_t *ctx = (ngx_http_levee_hb_main_conf_t *) shm_zone->data;
    ngx_int_t                      rc;
    size_t                         size;
    ngx_shm_zone_t                *old;
    levee::hash::Seed              seed;

    if (octx != NULL) {
        /* a reload keeps the table and whatever waits in it */
        ctx->shpool = octx->shpool;
        ctx->base = octx->base;
        ctx->size = octx->size;

        ngx_shmtx_lock(&ctx->shpool->mutex);
        ngx_http_levee_hb_table(ctx).next_cycle();
        rc = ngx_http_levee_hb_register_ttls(ctx, shm_zone->shm.log);
        ngx_shmtx_unlock(&ctx->shpool->mutex);

        return rc;
    }

    ctx->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        ctx->base = (u_char *) ctx->shpool->data;
        return ngx_http_levee_hb_register_ttls(ctx, shm_zone->shm.log);
    }

    ctx->shpool->log_ctx = (u_char *) ngx_slab_alloc(ctx->shpool, sizeof(" in levee presence zone"));
    if (ctx->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(ctx->shpool->log_ctx, " in levee presence zone%Z");

    /* the whole zone becomes the table, which manages its memory itself */
    for (size = ctx->shpool->pfree * ngx_pagesize; size >= NGX_HTTP_LEVEE_HB_MIN_SIZE / 2;
         size -= ngx_pagesize)
    {
        ctx->base = (u_char *) ngx_slab_alloc(ctx->shpool, size);
        if (ctx->base != NULL) {
            break;
        }
    }

    if (ctx->base == NULL) {
        return NGX_ERROR;
    }

    ctx->size = size;
    ctx->shpool->data = ctx->base;

    Table  t = ngx_http_levee_hb_table(ctx);

    ngx_http_levee_zone_seed(shm_zone->shm.log, &seed);

    if (!t.init(size, seed)) {
        return NGX_ERROR;
    }

    if (ngx_http_levee_hb_register_ttls(ctx, shm_zone->shm.log) != NGX_OK) {
        return NGX_ERROR;
    }

    old = ngx_http_levee_replaced_zone(shm_zone);
    if (old != NULL) {
        ngx_http_levee_hb_adopt(ctx, (ngx_http_levee_hb_main_conf_t *) old->data,
                                old->shm.size, shm_zone->shm.size, shm_zone->shm.log);
    }

    return NGX_OK;
}
