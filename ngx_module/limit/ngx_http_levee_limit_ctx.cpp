/*
 * The decisions of a request, kept where the access handler, the header
 * filter and $levee_limit_status find them.
 */

#include "ngx_http_levee_limit.h"


static void ngx_http_levee_limit_cleanup(void *data);


/*
 * An internal redirect (error_page, try_files, rewrite ... last, a named
 * location) clears every module's context, but a request is decided once,
 * as limit_req does: the context is kept in the pool's cleanup list too,
 * where the redirect does not reach, and found there again.
 */
ngx_http_levee_limit_ctx_t *
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


/* A request is decided once (see above): its context and one result per limit. */
ngx_http_levee_limit_ctx_t *
ngx_http_levee_limit_create_ctx(ngx_http_request_t *r, ngx_array_t *limits)
{
    size_t                       size;
    ngx_pool_cleanup_t          *cln;
    ngx_http_levee_limit_ctx_t  *ctx;

    size = sizeof(ngx_http_levee_limit_ctx_t)
           + limits->nelts * sizeof(ngx_http_levee_limit_result_t);

    cln = ngx_pool_cleanup_add(r->pool, size);
    if (cln == NULL) {
        return NULL;
    }

    ctx = (ngx_http_levee_limit_ctx_t *) cln->data;
    ngx_memzero(ctx, size);
    cln->handler = ngx_http_levee_limit_cleanup;

    ctx->results = (ngx_http_levee_limit_result_t *) (ctx + 1);
    ctx->nresults = limits->nelts;
    ctx->limits = limits;
    ctx->wait_start = ngx_current_msec;
    ngx_http_set_ctx(r, ctx, ngx_http_levee_limit_module);

    return ctx;
}
