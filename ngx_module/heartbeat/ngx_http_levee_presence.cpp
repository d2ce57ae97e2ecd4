/*
 * levee_presence: a query is sent to leveed over the worker's link; the
 * request waits, without blocking the worker, for the reply, its timeout or
 * the loss of the link.
 */

#include "ngx_http_levee_heartbeat.h"


#define NGX_HTTP_LEVEE_HB_MAX_QUERY_USERS 1000
#define NGX_HTTP_LEVEE_HB_MAX_PENDING     4096


/* A presence query waiting for leveed. */
typedef struct {
    ngx_http_request_t          *request;
    uint64_t                     request_id;
    ngx_event_t                  timer;
    ngx_queue_t                  queue;
    ngx_uint_t                   kind;
    unsigned                     queued:1;
} ngx_http_levee_q_ctx_t;


/* Worker-local: the queries waiting for leveed. */
static ngx_queue_t  ngx_http_levee_q_pending;
static ngx_uint_t   ngx_http_levee_q_npending;


void
ngx_http_levee_q_init(void)
{
    ngx_queue_init(&ngx_http_levee_q_pending);
}


/* Takes a query out of the waiting list and stops its timer: it is answered,
 * or its request is gone (pool cleanup). */
static void
ngx_http_levee_q_detach(void *data)
{
    ngx_http_levee_q_ctx_t  *ctx = (ngx_http_levee_q_ctx_t *) data;

    if (ctx->queued) {
        ngx_queue_remove(&ctx->queue);
        ngx_http_levee_q_npending--;
        ctx->queued = 0;
    }

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }
}


static void
ngx_http_levee_q_finish(ngx_http_levee_q_ctx_t *ctx, ngx_int_t rc)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r = ctx->request;

    ngx_http_levee_q_detach(ctx);

    c = r->connection;
    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


void
ngx_http_levee_q_on_reply(const Levee__Frame *frame, void *data)
{
    ngx_queue_t             *q;
    ngx_http_levee_q_ctx_t  *ctx;

    for (q = ngx_queue_head(&ngx_http_levee_q_pending);
         q != ngx_queue_sentinel(&ngx_http_levee_q_pending);
         q = ngx_queue_next(q))
    {
        ctx = ngx_queue_data(q, ngx_http_levee_q_ctx_t, queue);

        if (ctx->request_id == frame->request_id) {
            ngx_queue_remove(&ctx->queue);
            ngx_http_levee_q_npending--;
            ctx->queued = 0;
            ngx_http_levee_q_finish(ctx, ngx_http_levee_q_answer(ctx->request, ctx->kind,
                                                              frame->presence_query_reply));
            return;
        }
    }

    /* a reply after its request timed out */
}


static void
ngx_http_levee_q_timeout(ngx_event_t *ev)
{
    ngx_http_levee_q_ctx_t  *ctx = (ngx_http_levee_q_ctx_t *) ev->data;

    if (ctx->queued) {
        ngx_queue_remove(&ctx->queue);
        ngx_http_levee_q_npending--;
        ctx->queued = 0;
    }

    ngx_http_levee_q_finish(ctx, ngx_http_levee_q_error(ctx->request, NGX_HTTP_GATEWAY_TIME_OUT,
                                                        "leveed did not answer in time"));
}


/* The value of argument `name`, unescaped; NGX_DECLINED if absent. */
static ngx_int_t
ngx_http_levee_q_arg(ngx_http_request_t *r, const char *name, ngx_str_t *out)
{
    u_char     *dst, *src;
    ngx_str_t   raw;

    if (ngx_http_arg(r, (u_char *) name, ngx_strlen(name), &raw) != NGX_OK) {
        return NGX_DECLINED;
    }

    out->data = (u_char *) ngx_pnalloc(r->pool, raw.len + 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    dst = out->data;
    src = raw.data;
    ngx_unescape_uri(&dst, &src, raw.len, 0);
    out->len = dst - out->data;
    *dst = '\0';

    return NGX_OK;
}


ngx_int_t
ngx_http_levee_presence_handler(ngx_http_request_t *r)
{
    u_char                        *p, *last, *s;
    uint64_t                       request_id;
    ngx_int_t                      rc, limit;
    ngx_str_t                      user, users, room, arg;
    ngx_uint_t                     n;
    const char                    *reason;
    Levee__Frame                   frame = LEVEE__FRAME__INIT;
    Levee__PresenceQuery           query = LEVEE__PRESENCE_QUERY__INIT;
    ngx_pool_cleanup_t            *cln;
    ngx_http_levee_q_ctx_t        *ctx;
    ngx_http_levee_hb_loc_conf_t  *hlcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    hlcf = (ngx_http_levee_hb_loc_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_http_levee_heartbeat_module);

    if (ngx_http_arg(r, (u_char *) "stats", 5, &arg) == NGX_OK
        || (r->args.len == 5 && ngx_strncmp(r->args.data, "stats", 5) == 0))
    {
        return ngx_http_levee_q_stats(r);
    }

    ctx = (ngx_http_levee_q_ctx_t *) ngx_pcalloc(r->pool, sizeof(ngx_http_levee_q_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    query.users = (char **) ngx_palloc(r->pool, NGX_HTTP_LEVEE_HB_MAX_QUERY_USERS * sizeof(char *));
    if (query.users == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_levee_q_arg(r, "user", &user) == NGX_OK) {
        ctx->kind = NGX_HTTP_LEVEE_Q_USER;
        reason = levee::presence::check_key(user.data, user.len, levee::presence::kMaxUserBytes,
                                            false);
        if (reason != NULL) {
            return ngx_http_levee_q_error(r, NGX_HTTP_BAD_REQUEST, reason);
        }
        query.users[0] = (char *) user.data;
        query.n_users = 1;

    } else if (ngx_http_levee_q_arg(r, "users", &users) == NGX_OK) {
        ctx->kind = NGX_HTTP_LEVEE_Q_USERS;
        p = users.data;
        last = users.data + users.len;
        n = 0;

        while (p <= last) {
            s = (u_char *) ngx_strlchr(p, last, ',');
            if (s == NULL) {
                s = last;
            }

            if (n == NGX_HTTP_LEVEE_HB_MAX_QUERY_USERS) {
                return ngx_http_levee_q_error(r, NGX_HTTP_BAD_REQUEST, "more than 1000 users");
            }

            reason = levee::presence::check_key(p, s - p, levee::presence::kMaxUserBytes, false);
            if (reason != NULL) {
                return ngx_http_levee_q_error(r, NGX_HTTP_BAD_REQUEST, reason);
            }

            *s = '\0';
            query.users[n++] = (char *) p;
            p = s + 1;
        }

        query.n_users = n;

    } else if (ngx_http_levee_q_arg(r, "room", &room) == NGX_OK) {
        ctx->kind = NGX_HTTP_LEVEE_Q_ROOM;
        reason = levee::presence::check_key(room.data, room.len, levee::presence::kMaxRoomBytes,
                                            false);
        if (reason != NULL) {
            return ngx_http_levee_q_error(r, NGX_HTTP_BAD_REQUEST, reason);
        }
        query.room = (char *) room.data;

        if (ngx_http_arg(r, (u_char *) "limit", 5, &arg) == NGX_OK) {
            limit = ngx_atoi(arg.data, arg.len);
            if (limit < 1 || limit > 1000) {
                return ngx_http_levee_q_error(r, NGX_HTTP_BAD_REQUEST,
                                              "limit is a number from 1 to 1000");
            }
            query.limit = (uint32_t) limit;
        }

    } else {
        return ngx_http_levee_q_error(r, NGX_HTTP_BAD_REQUEST,
                                      "expected ?user=ID, ?users=ID,ID,... or ?room=ROOM[&limit=N]");
    }

    if (ngx_http_levee_q_npending >= NGX_HTTP_LEVEE_HB_MAX_PENDING) {
        return ngx_http_levee_q_error(r, NGX_HTTP_SERVICE_UNAVAILABLE, "too many queries waiting");
    }

    frame.body_case = LEVEE__FRAME__BODY_PRESENCE_QUERY;
    frame.presence_query = &query;

    rc = ngx_levee_link_send(&frame, &request_id);
    if (rc != NGX_OK || !ngx_levee_link_ready()) {
        return ngx_http_levee_q_error(r, NGX_HTTP_SERVICE_UNAVAILABLE, "leveed unavailable");
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->request_id = request_id;
    ctx->timer.handler = ngx_http_levee_q_timeout;
    ctx->timer.data = ctx;
    ctx->timer.log = r->connection->log;
    ngx_add_timer(&ctx->timer, hlcf->presence_timeout);

    ngx_queue_insert_tail(&ngx_http_levee_q_pending, &ctx->queue);
    ngx_http_levee_q_npending++;
    ctx->queued = 1;

    cln->handler = ngx_http_levee_q_detach;
    cln->data = ctx;

    r->main->count++;

    return NGX_DONE;
}


/* The link is lost: no query waiting on it will be answered. */
void
ngx_http_levee_q_fail_all(const char *error)
{
    ngx_queue_t             *q;
    ngx_http_levee_q_ctx_t  *ctx;

    while (!ngx_queue_empty(&ngx_http_levee_q_pending)) {
        q = ngx_queue_head(&ngx_http_levee_q_pending);
        ctx = ngx_queue_data(q, ngx_http_levee_q_ctx_t, queue);
        ngx_queue_remove(q);
        ngx_http_levee_q_npending--;
        ctx->queued = 0;
        ngx_http_levee_q_finish(ctx, ngx_http_levee_q_error(ctx->request,
                                                            NGX_HTTP_SERVICE_UNAVAILABLE,
                                                            error));
    }
}
