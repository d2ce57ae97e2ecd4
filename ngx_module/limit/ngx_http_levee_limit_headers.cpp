/*
 * What a limited response tells its client: RateLimit-Policy and RateLimit
 * (draft-ietf-httpapi-ratelimit-headers) with levee_limit_headers on, from
 * the decisions the access handler kept in the request's context, and
 * Retry-After on a refusal.
 */

#include "ngx_http_levee_limit.h"


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


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


void
ngx_http_levee_limit_init_headers(void)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_levee_limit_header_filter;
}


/* Whole seconds until one request would be admitted again, rounded up. */
ngx_int_t
ngx_http_levee_limit_retry_after(ngx_http_request_t *r, uint64_t reset_us)
{
    ngx_table_elt_t  *h;

    h = ngx_http_levee_limit_add_header(r, "Retry-After", NGX_INT64_LEN);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->value.len = ngx_sprintf(h->value.data, "%uL", (reset_us + 999999) / 1000000)
                   - h->value.data;

    return NGX_OK;
}
