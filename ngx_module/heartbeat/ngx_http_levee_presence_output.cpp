/*
 * The heartbeat module's responses, built in request memory: the plain text
 * of a refused beat, and the JSON of levee_presence (answers, errors, stats).
 */

#include "ngx_http_levee_heartbeat.h"
#include "core/presence/beat_interval.hpp"


/* Sends a whole response from memory that lives as long as the request. */
static ngx_int_t
ngx_http_levee_hb_send(ngx_http_request_t *r, ngx_uint_t status, const char *type,
    u_char *body, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    r->headers_out.content_type.data = (u_char *) type;
    r->headers_out.content_type.len = ngx_strlen(type);
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = (ngx_buf_t *) ngx_pcalloc(r->pool, sizeof(ngx_buf_t));
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body;
    b->last = body + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_levee_hb_text(ngx_http_request_t *r, ngx_uint_t status, const char *text)
{
    return ngx_http_levee_hb_send(r, status, "text/plain", (u_char *) text, ngx_strlen(text));
}


ngx_int_t
ngx_http_levee_hb_header(ngx_http_request_t *r, const char *name, uint64_t value)
{
    ngx_table_elt_t  *h;

    h = (ngx_table_elt_t *) ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->value.data = (u_char *) ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (h->value.data == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value.len = ngx_sprintf(h->value.data, "%uL", value) - h->value.data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_levee_q_send(ngx_http_request_t *r, ngx_uint_t status, u_char *json, size_t len)
{
    return ngx_http_levee_hb_send(r, status, "application/json", json, len);
}


ngx_int_t
ngx_http_levee_q_error(ngx_http_request_t *r, ngx_uint_t status, const char *error)
{
    size_t   len;
    u_char  *p;

    /* ngx_escape_json() writes up to 6 bytes ("\\u00XX") per input byte */
    len = sizeof("{\"error\":\"\"}\n") + 6 * ngx_strlen(error);

    p = (u_char *) ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = ngx_sprintf(p, "{\"error\":\"") - p;
    len = (u_char *) ngx_escape_json(p + len, (u_char *) error, ngx_strlen(error)) - p;
    len = ngx_sprintf(p + len, "\"}\n") - p;

    return ngx_http_levee_q_send(r, status, p, len);
}


/* Appends a JSON string; the caller reserved 6 bytes per byte of s + 2. */
static u_char *
ngx_http_levee_q_json_str(u_char *p, const char *s)
{
    *p++ = '"';
    p = (u_char *) ngx_escape_json(p, (u_char *) s, ngx_strlen(s));
    *p++ = '"';
    return p;
}


/* Appends ,"online":...,"last_seen":...} of a user: last_seen is known for
 * offline users too when Redis or the database still has it, else null. */
static u_char *
ngx_http_levee_q_json_state(u_char *p, const Levee__PresenceUserState *u)
{
    p = ngx_sprintf(p, ",\"online\":%s", u->online ? "true" : "false");

    if (u->last_seen_ms > 0) {
        return ngx_sprintf(p, ",\"last_seen\":%L}", u->last_seen_ms);
    }

    return ngx_sprintf(p, ",\"last_seen\":null}");
}


ngx_int_t
ngx_http_levee_q_answer(ngx_http_request_t *r, ngx_uint_t kind,
    const Levee__PresenceQueryReply *reply)
{
    size_t                    len;
    u_char                   *json, *p;
    ngx_uint_t                i, first;
    Levee__PresenceUserState *u;

    if (!reply->ok) {
        return ngx_http_levee_q_error(r, NGX_HTTP_BAD_GATEWAY,
                                      reply->error && reply->error[0] ? reply->error
                                                                      : "leveed error");
    }

    len = 64 + 6 * ngx_strlen(reply->room);
    for (i = 0; i < reply->n_users; i++) {
        len += 80 + 12 * ngx_strlen(reply->users[i]->user);
    }
    for (i = 0; i < reply->n_members; i++) {
        len += 4 + 6 * ngx_strlen(reply->members[i]);
    }

    json = (u_char *) ngx_pnalloc(r->pool, len);
    if (json == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = json;

    if (kind == NGX_HTTP_LEVEE_Q_ROOM) {
        p = ngx_sprintf(p, "{\"room\":");
        p = ngx_http_levee_q_json_str(p, reply->room);
        p = ngx_sprintf(p, ",\"count\":%uD,\"members\":[", reply->count);
        for (i = 0; i < reply->n_members; i++) {
            if (i) {
                *p++ = ',';
            }
            p = ngx_http_levee_q_json_str(p, reply->members[i]);
        }
        p = ngx_sprintf(p, "]}\n");

    } else if (kind == NGX_HTTP_LEVEE_Q_USER && reply->n_users == 1) {
        u = reply->users[0];
        p = ngx_sprintf(p, "{\"user\":");
        p = ngx_http_levee_q_json_str(p, u->user);
        p = ngx_http_levee_q_json_state(p, u);
        *p++ = '\n';

    } else {
        p = ngx_sprintf(p, "{\"online\":[");
        first = 1;
        for (i = 0; i < reply->n_users; i++) {
            if (!reply->users[i]->online) {
                continue;
            }
            if (!first) {
                *p++ = ',';
            }
            first = 0;
            p = ngx_http_levee_q_json_str(p, reply->users[i]->user);
        }
        p = ngx_sprintf(p, "],\"users\":[");
        for (i = 0; i < reply->n_users; i++) {
            u = reply->users[i];
            if (i) {
                *p++ = ',';
            }
            p = ngx_sprintf(p, "{\"user\":");
            p = ngx_http_levee_q_json_str(p, u->user);
            p = ngx_http_levee_q_json_state(p, u);
        }
        p = ngx_sprintf(p, "]}\n");
    }

    return ngx_http_levee_q_send(r, NGX_HTTP_OK, json, p - json);
}


ngx_int_t
ngx_http_levee_q_stats(ngx_http_request_t *r)
{
    u_char                         *json, *p;
    levee::presence::Header         h;
    ngx_http_levee_hb_main_conf_t  *hmcf = ngx_http_levee_hb_mcf;

    if (hmcf == NULL || hmcf->base == NULL) {
        return ngx_http_levee_q_error(r, NGX_HTTP_NOT_FOUND, "no levee_heartbeat configured");
    }

    ngx_shmtx_lock(&hmcf->shpool->mutex);
    h = ngx_http_levee_hb_table(hmcf).header();
    ngx_shmtx_unlock(&hmcf->shpool->mutex);

    json = (u_char *) ngx_pnalloc(r->pool, 1024);
    if (json == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(json,
                    "{\"waiting\":%uL,\"dirty\":%uL,\"bytes\":%uL,\"capacity_bytes\":%uz,"
                    "\"zone_bytes\":%uz,\"backlog_limit\":%uL,\"beats\":%uL,\"coalesced\":%uL,"
                    "\"refused_full\":%uL,\"refused_backlog\":%uL,\"bad_key\":%uL,\"sent\":%uL,"
                    "\"acked\":%uL,\"requeued\":%uL,\"batches\":%uL,\"link_ready\":%s}\n",
                    h.count, h.dirty, h.bytes, (size_t) (h.end - h.arena),
                    hmcf->shm_zone->shm.size,
                    levee::presence::backlog_limit(hmcf->backlog, hmcf->size), h.c.beats,
                    h.c.coalesced, h.c.full, h.c.backlog, h.c.bad_key, h.c.sent, h.c.acked,
                    h.c.requeued, h.c.batches, ngx_levee_link_ready() ? "true" : "false");

    return ngx_http_levee_q_send(r, NGX_HTTP_OK, json, p - json);
}
