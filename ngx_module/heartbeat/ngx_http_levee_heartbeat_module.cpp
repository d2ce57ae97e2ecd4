/*
 * ngx_http_levee_heartbeat_module: presence heartbeats answered at the edge
 * (levee_heartbeat) and presence queries (levee_presence).
 *
 * A beat is recorded in a presence table in shared memory (see
 * core/presence_table.hpp) and answered 204 at once. Every worker's flush
 * timer takes what waits there and sends it to leveed in batches; an entry
 * leaves the table only when leveed acknowledged the batch that carried its
 * latest beat, so a beat answered 204 survives leveed, Redis or the database
 * going away, and the death of the worker that sent it. When the table
 * cannot keep a new user, the beat gets 503 and Retry-After, never 204.
 *
 * A query is sent to leveed over the worker's link; the request waits,
 * without blocking the worker, for the reply or its timeout.
 */

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}

#include "core/presence/presence_table.hpp"
#include "ngx_http_levee_module.h"
#include "ngx_levee_link.h"

using levee::presence::BeatResult;
using levee::presence::Key;
using levee::presence::Table;
using levee::presence::Taken;


/* Records per batch frame, and bytes of users and rooms per batch. */
#define NGX_HTTP_LEVEE_HB_BATCH           4000
#define NGX_HTTP_LEVEE_HB_BATCH_BYTES     (512 * 1024)
/* Batches one worker may have waiting for their ack. */
#define NGX_HTTP_LEVEE_HB_OUTSTANDING     32
/*
 * An unanswered batch is sent again after this long. Longer than leveed
 * keeps retrying Redis (15 s), so a slow ack is not duplicated; a lost link
 * and a dead worker are handled at once, without waiting for it.
 */
#define NGX_HTTP_LEVEE_HB_RESEND_MS       20000
#define NGX_HTTP_LEVEE_HB_MIN_SIZE        (64 * 1024)
#define NGX_HTTP_LEVEE_HB_MAX_QUERY_USERS 1000
#define NGX_HTTP_LEVEE_HB_MAX_PENDING     4096


typedef struct {
    ngx_shm_zone_t              *shm_zone;
    ngx_slab_pool_t             *shpool;
    u_char                      *base;        /* the table's region */
    size_t                       size;
    ngx_uint_t                   backlog;     /* 0: derived from the size */
    ngx_msec_t                   flush;       /* the smallest of the locations' */
    ngx_array_t                  ttls;        /* uint32_t ms, as configured */
    uint8_t                      ttl_index[levee::presence::kMaxTtls];
    ngx_flag_t                   zone_set;
    ngx_flag_t                   used;
    /* where levee_heartbeat_zone, and the first directive that needs leveed, are */
    u_char                      *zone_file;
    ngx_uint_t                   zone_line;
    const char                  *used_by;
    u_char                      *used_file;
    ngx_uint_t                   used_line;
} ngx_http_levee_hb_main_conf_t;


typedef struct {
    ngx_http_complex_value_t    *key;
    ngx_http_complex_value_t    *room;
    ngx_msec_t                   ttl;
    ngx_uint_t                   ttl_slot;
    ngx_msec_t                   interval;
    ngx_msec_t                   interval_max;
    ngx_msec_t                   flush;
    ngx_flag_t                   presence;
    ngx_msec_t                   presence_timeout;
} ngx_http_levee_hb_loc_conf_t;


/* A batch waiting for its PresenceAck: what it carried, to settle it. */
typedef struct {
    uint64_t                     request_id;
    uint32_t                     batch;
    ngx_uint_t                   n;
    Taken                       *recs;        /* one ngx_alloc: recs, then key bytes */
    u_char                      *keys;
} ngx_http_levee_hb_batch_t;


typedef enum {
    NGX_HTTP_LEVEE_Q_USER = 0,
    NGX_HTTP_LEVEE_Q_USERS,
    NGX_HTTP_LEVEE_Q_ROOM
} ngx_http_levee_q_kind_e;


/* A presence query waiting for leveed. */
typedef struct {
    ngx_http_request_t          *request;
    uint64_t                     request_id;
    ngx_event_t                  timer;
    ngx_queue_t                  queue;
    ngx_uint_t                   kind;
    unsigned                     queued:1;
} ngx_http_levee_q_ctx_t;


static ngx_int_t ngx_http_levee_hb_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_levee_presence_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_levee_hb_init_zone(ngx_shm_zone_t *shm_zone, void *data);
static void ngx_http_levee_hb_tick(ngx_event_t *ev);
static void ngx_http_levee_hb_on_ack(const Levee__Frame *frame, void *data);
static void ngx_http_levee_q_on_reply(const Levee__Frame *frame, void *data);
static void ngx_http_levee_hb_on_state(ngx_flag_t ready, void *data);

static void *ngx_http_levee_hb_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_levee_hb_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_levee_hb_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child);
static char *ngx_http_levee_hb_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_levee_hb(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_levee_presence(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_levee_hb_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_levee_hb_init_process(ngx_cycle_t *cycle);


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
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};

}


/* Worker-local state. */
static ngx_http_levee_hb_main_conf_t  *ngx_http_levee_hb_mcf;
static ngx_event_t                     ngx_http_levee_hb_timer;
static ngx_connection_t                ngx_http_levee_hb_dummy;
static ngx_http_levee_hb_batch_t       ngx_http_levee_hb_batches[NGX_HTTP_LEVEE_HB_OUTSTANDING];
static ngx_uint_t                      ngx_http_levee_hb_nbatches;
static ngx_queue_t                     ngx_http_levee_q_pending;
static ngx_uint_t                      ngx_http_levee_q_npending;


static Table
ngx_http_levee_hb_table(ngx_http_levee_hb_main_conf_t *hmcf)
{
    return Table(hmcf->base);
}


static uint64_t
ngx_http_levee_hb_backlog(ngx_http_levee_hb_main_conf_t *hmcf)
{
    /* derived: about what the region holds with 16-byte keys */
    return hmcf->backlog ? hmcf->backlog : hmcf->size / 56;
}


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


static ngx_int_t
ngx_http_levee_hb_text(ngx_http_request_t *r, ngx_uint_t status, const char *text)
{
    return ngx_http_levee_hb_send(r, status, "text/plain", (u_char *) text, ngx_strlen(text));
}


static ngx_int_t
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
    backlog = ngx_http_levee_hb_backlog(hmcf);

    Key    k = { user.data, user.len, room.data, room.len };
    Table  t = ngx_http_levee_hb_table(hmcf);

    ngx_shmtx_lock(&hmcf->shpool->mutex);
    res = t.beat(k, now_ms, hmcf->ttl_index[hlcf->ttl_slot], backlog);
    count = t.header().count;
    ngx_shmtx_unlock(&hmcf->shpool->mutex);

    if (res != BeatResult::kStored && res != BeatResult::kCoalesced) {
        if (ngx_http_levee_hb_header(r, "Retry-After",
                                     ngx_max(1, (4 * hmcf->flush + 999) / 1000)) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_levee_hb_text(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      res == BeatResult::kFull ? "presence table full\n"
                                      : res == BeatResult::kBacklog ? "presence backlog full\n"
                                      : "presence zone replaced by a reload\n");
    }

    /*
     * The next interval grows linearly from `interval` to `interval_max` as
     * the table fills from half to its backlog bound, and is the longest
     * while leveed is away: fewer beats for the same presence.
     */
    interval = hlcf->interval;
    if (!ngx_levee_link_ready()) {
        interval = hlcf->interval_max;

    } else if (2 * count > backlog) {
        interval += (hlcf->interval_max - hlcf->interval) * ngx_min(2 * count - backlog, backlog)
                    / backlog;
    }

    if (ngx_http_levee_hb_header(r, "Levee-Heartbeat-Interval", (interval + 999) / 1000)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_NO_CONTENT;
    r->headers_out.content_length_n = 0;

    return ngx_http_send_header(r);
}


/* ---------------------------------------------------------------- flushing */


static void
ngx_http_levee_hb_settle(ngx_http_levee_hb_batch_t *b, bool ok)
{
    ngx_http_levee_hb_main_conf_t  *hmcf = ngx_http_levee_hb_mcf;

    Table  t = ngx_http_levee_hb_table(hmcf);

    ngx_shmtx_lock(&hmcf->shpool->mutex);
    t.settle(b->batch, b->recs, b->n, b->keys, ok);
    ngx_shmtx_unlock(&hmcf->shpool->mutex);

    ngx_free(b->recs);
    b->recs = NULL;
}


static void
ngx_http_levee_hb_forget(ngx_uint_t i)
{
    ngx_http_levee_hb_batches[i] = ngx_http_levee_hb_batches[--ngx_http_levee_hb_nbatches];
}


/* Sends one batch; NGX_DECLINED when the table had nothing to send. */
static ngx_int_t
ngx_http_levee_hb_send_batch(ngx_log_t *log)
{
    u_char                         *strings, *p;
    uint32_t                        ttl_ms;
    uint64_t                        request_id;
    ngx_int_t                       rc;
    ngx_uint_t                      i, n;
    Levee__Frame                    frame = LEVEE__FRAME__INIT;
    Levee__PresenceBatch            batch = LEVEE__PRESENCE_BATCH__INIT;
    Levee__PresenceRecord          *records, **ptrs;
    ngx_http_levee_hb_batch_t      *b;
    ngx_http_levee_hb_main_conf_t  *hmcf = ngx_http_levee_hb_mcf;

    b = &ngx_http_levee_hb_batches[ngx_http_levee_hb_nbatches];

    b->recs = (Taken *) ngx_alloc(NGX_HTTP_LEVEE_HB_BATCH * sizeof(Taken)
                                  + NGX_HTTP_LEVEE_HB_BATCH_BYTES, log);
    if (b->recs == NULL) {
        return NGX_ERROR;
    }

    b->keys = (u_char *) (b->recs + NGX_HTTP_LEVEE_HB_BATCH);

    Table  t = ngx_http_levee_hb_table(hmcf);

    ngx_shmtx_lock(&hmcf->shpool->mutex);
    b->batch = t.next_batch((uint32_t) ngx_worker);
    n = t.take(b->batch, (uint32_t) ngx_current_msec, b->recs, NGX_HTTP_LEVEE_HB_BATCH,
               b->keys, NGX_HTTP_LEVEE_HB_BATCH_BYTES, &ttl_ms);
    ngx_shmtx_unlock(&hmcf->shpool->mutex);

    b->n = n;

    if (n == 0) {
        ngx_free(b->recs);
        b->recs = NULL;
        return NGX_DECLINED;
    }

    /* protobuf-c wants NUL-terminated strings: a scratch copy for encoding */
    records = (Levee__PresenceRecord *) ngx_alloc(n * (sizeof(Levee__PresenceRecord)
                                                       + sizeof(Levee__PresenceRecord *))
                                                  + NGX_HTTP_LEVEE_HB_BATCH_BYTES + 2 * n, log);
    if (records == NULL) {
        ngx_http_levee_hb_settle(b, false);
        return NGX_ERROR;
    }

    ptrs = (Levee__PresenceRecord **) (records + n);
    strings = (u_char *) (ptrs + n);
    p = strings;

    for (i = 0; i < n; i++) {
        levee__presence_record__init(&records[i]);
        records[i].user = (char *) p;
        p = ngx_cpymem(p, b->keys + b->recs[i].off, b->recs[i].ulen);
        *p++ = '\0';
        records[i].room = (char *) p;
        p = ngx_cpymem(p, b->keys + b->recs[i].off + b->recs[i].ulen, b->recs[i].rlen);
        *p++ = '\0';
        records[i].last_seen_ms = b->recs[i].last_seen_ms;
        ptrs[i] = &records[i];
    }

    batch.ttl_ms = ttl_ms;
    batch.n_records = n;
    batch.records = ptrs;
    frame.body_case = LEVEE__FRAME__BODY_PRESENCE_BATCH;
    frame.presence_batch = &batch;

    rc = ngx_levee_link_send(&frame, &request_id);

    ngx_free(records);

    /* a failed write may have closed the link inside the send: no ack will come */
    if (rc != NGX_OK || !ngx_levee_link_ready()) {
        /* back to the dirty list: the next tick, or another worker, sends it */
        ngx_http_levee_hb_settle(b, false);
        return NGX_ERROR;
    }

    b->request_id = request_id;
    ngx_http_levee_hb_nbatches++;

    return NGX_OK;
}


static void
ngx_http_levee_hb_log_stats(ngx_log_t *log)
{
    ngx_http_levee_hb_main_conf_t  *hmcf = ngx_http_levee_hb_mcf;
    levee::presence::Header         h;

    ngx_shmtx_lock(&hmcf->shpool->mutex);
    h = ngx_http_levee_hb_table(hmcf).header();
    ngx_shmtx_unlock(&hmcf->shpool->mutex);

    if (h.c.full + h.c.backlog == 0) {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "levee_heartbeat: %uL beats refused since start (%uL table full, %uL backlog); "
                  "%uL users wait for leveed's ack in %uL bytes",
                  h.c.full + h.c.backlog, h.c.full, h.c.backlog, h.count, h.bytes);
}


static void
ngx_http_levee_hb_tick(ngx_event_t *ev)
{
    static ngx_msec_t               last_stats;
    static uint64_t                 logged_refused;
    uint64_t                        refused;
    ngx_http_levee_hb_main_conf_t  *hmcf = ngx_http_levee_hb_mcf;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        /* the successor worker takes over what this one leaves in flight */
        return;
    }

    if (ngx_levee_link_ready()) {
        Table  t = ngx_http_levee_hb_table(hmcf);

        ngx_shmtx_lock(&hmcf->shpool->mutex);
        t.sweep((uint32_t) ngx_current_msec, NGX_HTTP_LEVEE_HB_RESEND_MS);
        ngx_shmtx_unlock(&hmcf->shpool->mutex);

        while (ngx_http_levee_hb_nbatches < NGX_HTTP_LEVEE_HB_OUTSTANDING) {
            if (ngx_http_levee_hb_send_batch(ev->log) != NGX_OK) {
                break;
            }
        }
    }

    if (ngx_worker == 0 && ngx_current_msec - last_stats >= 10000) {
        last_stats = ngx_current_msec;

        ngx_shmtx_lock(&hmcf->shpool->mutex);
        refused = ngx_http_levee_hb_table(hmcf).header().c.full
                  + ngx_http_levee_hb_table(hmcf).header().c.backlog;
        ngx_shmtx_unlock(&hmcf->shpool->mutex);

        if (refused != logged_refused) {
            logged_refused = refused;
            ngx_http_levee_hb_log_stats(ev->log);
        }
    }

    ngx_add_timer(ev, hmcf->flush);
}


static void
ngx_http_levee_hb_on_ack(const Levee__Frame *frame, void *data)
{
    ngx_uint_t                 i;
    const Levee__PresenceAck  *ack = frame->presence_ack;

    for (i = 0; i < ngx_http_levee_hb_nbatches; i++) {
        if (ngx_http_levee_hb_batches[i].request_id == frame->request_id) {
            if (!ack->ok) {
                ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                              "levee_heartbeat: leveed refused a batch of %ui beats, "
                              "sending it again: %s", ngx_http_levee_hb_batches[i].n,
                              ack->error ? ack->error : "");
            }

            ngx_http_levee_hb_settle(&ngx_http_levee_hb_batches[i], ack->ok);
            ngx_http_levee_hb_forget(i);
            break;
        }
    }
}


/* ---------------------------------------------------------------- queries */


static ngx_int_t
ngx_http_levee_q_send(ngx_http_request_t *r, ngx_uint_t status, u_char *json, size_t len)
{
    return ngx_http_levee_hb_send(r, status, "application/json", json, len);
}


static ngx_int_t
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


static void
ngx_http_levee_q_finish(ngx_http_levee_q_ctx_t *ctx, ngx_int_t rc)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r = ctx->request;

    if (ctx->queued) {
        ngx_queue_remove(&ctx->queue);
        ngx_http_levee_q_npending--;
        ctx->queued = 0;
    }

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    c = r->connection;
    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_levee_q_answer(ngx_http_request_t *r, ngx_http_levee_q_ctx_t *ctx,
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

    if (ctx->kind == NGX_HTTP_LEVEE_Q_ROOM) {
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

    } else if (ctx->kind == NGX_HTTP_LEVEE_Q_USER && reply->n_users == 1) {
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


static void
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
            ngx_http_levee_q_finish(ctx, ngx_http_levee_q_answer(ctx->request, ctx,
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


static void
ngx_http_levee_q_cleanup(void *data)
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


static ngx_int_t
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
                    hmcf->shm_zone->shm.size, ngx_http_levee_hb_backlog(hmcf), h.c.beats,
                    h.c.coalesced, h.c.full, h.c.backlog, h.c.bad_key, h.c.sent, h.c.acked,
                    h.c.requeued, h.c.batches, ngx_levee_link_ready() ? "true" : "false");

    return ngx_http_levee_q_send(r, NGX_HTTP_OK, json, p - json);
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


static ngx_int_t
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

    cln->handler = ngx_http_levee_q_cleanup;
    cln->data = ctx;

    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_levee_hb_on_state(ngx_flag_t ready, void *data)
{
    ngx_uint_t               i;
    ngx_queue_t             *q;
    ngx_http_levee_q_ctx_t  *ctx;

    if (ready) {
        return;
    }

    /* what was in flight on the lost connection is sent again on the next one */
    for (i = 0; i < ngx_http_levee_hb_nbatches; i++) {
        ngx_http_levee_hb_settle(&ngx_http_levee_hb_batches[i], false);
    }

    ngx_http_levee_hb_nbatches = 0;

    while (!ngx_queue_empty(&ngx_http_levee_q_pending)) {
        q = ngx_queue_head(&ngx_http_levee_q_pending);
        ctx = ngx_queue_data(q, ngx_http_levee_q_ctx_t, queue);
        ngx_queue_remove(q);
        ngx_http_levee_q_npending--;
        ctx->queued = 0;
        ngx_http_levee_q_finish(ctx, ngx_http_levee_q_error(ctx->request,
                                                            NGX_HTTP_SERVICE_UNAVAILABLE,
                                                            "leveed connection lost"));
    }
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
    ngx_queue_init(&ngx_http_levee_q_pending);

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

    /* a worker that died left its batches in flight: this one takes its slot */
    Table  t = ngx_http_levee_hb_table(hmcf);

    ngx_shmtx_lock(&hmcf->shpool->mutex);
    t.requeue_slot((uint32_t) ngx_worker);
    ngx_shmtx_unlock(&hmcf->shpool->mutex);

    ngx_http_levee_hb_dummy.fd = (ngx_socket_t) -1;
    ngx_http_levee_hb_timer.handler = ngx_http_levee_hb_tick;
    ngx_http_levee_hb_timer.log = cycle->log;
    ngx_http_levee_hb_timer.data = &ngx_http_levee_hb_dummy;
    ngx_http_levee_hb_timer.cancelable = 1;

    ngx_add_timer(&ngx_http_levee_hb_timer, hmcf->flush);

    return NGX_OK;
}


/* ---------------------------------------------------------------- configuration */


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


static ngx_int_t
ngx_http_levee_hb_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_levee_hb_main_conf_t *octx = (ngx_http_levee_hb_main_conf_t *) data;
    ngx_http_levee_hb_main_conf_t *ctx = (ngx_http_levee_hb_main_conf_t *) shm_zone->data;
    ngx_int_t                      rc;
    size_t                         size;
    ngx_shm_zone_t                *old;

    if (octx != NULL) {
        /* a reload keeps the table and whatever waits in it */
        ctx->shpool = octx->shpool;
        ctx->base = octx->base;
        ctx->size = octx->size;

        ngx_shmtx_lock(&ctx->shpool->mutex);
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

    if (!t.init(size)) {
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
