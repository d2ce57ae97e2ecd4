/*
 * The shared memory zone of a levee_limit_zone: its table of keys, made on
 * the first start, kept across reloads (rescaled when a local zone's rate
 * changes), and the entry a request's key finds or makes in it.
 */

#include "ngx_http_levee_limit.h"
#include "ngx_http_levee_module.h"

using levee::limit::Entry;
using levee::limit::GlobalPart;
using levee::limit::Table;
using levee::limit::TableHeader;


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


Entry *
ngx_http_levee_limit_insert(ngx_http_levee_limit_zone_t *zone, uint32_t hash,
    ngx_str_t *key, int64_t now_us)
{
    Table  t = ngx_http_levee_limit_table(zone);

    return t.insert(ngx_http_levee_limit_allocator(zone), hash, key->data,
                    (uint16_t) key->len, now_us,
                    zone->global ? ngx_http_levee_limit_global_idle
                                 : ngx_http_levee_limit_local_idle);
}


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


ngx_int_t
ngx_http_levee_limit_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_levee_limit_zone_t  *octx = (ngx_http_levee_limit_zone_t *) data;
    ngx_http_levee_limit_zone_t  *ctx = (ngx_http_levee_limit_zone_t *) shm_zone->data;
    size_t                        len;
    uint32_t                      extra;
    ngx_shm_zone_t               *old;
    levee::hash::Seed             seed;

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

    ngx_http_levee_zone_seed(shm_zone->shm.log, &seed);

    if (!t.init(ngx_http_levee_limit_allocator(ctx),
                Table::buckets_for(shm_zone->shm.size), extra, seed))
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
