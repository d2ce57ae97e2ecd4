/*
 * Per-worker connection to leveed. Nothing here runs on a request's path:
 * the connection is driven by its own read/write events and a reconnect timer.
 */

#include "ngx_levee_link.h"
#include "status/ngx_levee_status_block.h"
#include "ngx_http_levee_module.h"

#include "core/link/backoff.hpp"
#include "frame_codec.hpp"

#include <sys/un.h>

#include <vector>


typedef enum {
    NGX_LEVEE_LINK_IDLE = 0,      /* waiting for the reconnect timer */
    NGX_LEVEE_LINK_CONNECTING,
    NGX_LEVEE_LINK_HELLO_SENT,
    NGX_LEVEE_LINK_READY
} ngx_levee_link_state_e;


typedef struct {
    ngx_log_t                 *log;
    ngx_peer_connection_t      peer;
    struct sockaddr_un         sockaddr;
    ngx_str_t                  name;
    u_char                     name_buf[sizeof("unix:") + levee::link::kSidecarPathMax];
    ngx_event_t                reconnect;
    ngx_event_t                hello_timer;   /* leveed must answer the hello in time */
    levee::link::Backoff      backoff;
    ngx_levee_link_state_e     state;
    ngx_flag_t                 standalone;    /* from the current hello reply */
    uint64_t                   next_request_id;
    std::vector<uint8_t>      *in;
    std::vector<uint8_t>      *out;
    size_t                     out_sent;
} ngx_levee_link_t;


#define NGX_LEVEE_HELLO_TIMEOUT_MS  5000

static void ngx_levee_link_connect(ngx_event_t *ev);
static void ngx_levee_link_hello_timeout(ngx_event_t *ev);
static void ngx_levee_link_close(ngx_levee_link_t *link, ngx_uint_t reconnect);
static void ngx_levee_link_read_handler(ngx_event_t *ev);
static void ngx_levee_link_write_handler(ngx_event_t *ev);
static ngx_int_t ngx_levee_link_flush(ngx_levee_link_t *link);
static ngx_int_t ngx_levee_link_send_hello(ngx_levee_link_t *link);
static ngx_int_t ngx_levee_link_on_frame(ngx_levee_link_t *link, const Levee__Frame *frame);
static void ngx_levee_link_count_frame(ngx_flag_t received);


#define NGX_LEVEE_LINK_MAX_HANDLERS  16

typedef struct {
    Levee__Frame__BodyCase     body;
    ngx_levee_link_frame_pt    handler;
    void                      *data;
} ngx_levee_link_frame_handler_t;

typedef struct {
    ngx_levee_link_state_pt    handler;
    void                      *data;
} ngx_levee_link_state_handler_t;

typedef struct {
    ngx_levee_link_hello_pt    handler;
    void                      *data;
} ngx_levee_link_hello_handler_t;

static ngx_levee_link_frame_handler_t  ngx_levee_link_frame_handlers[NGX_LEVEE_LINK_MAX_HANDLERS];
static ngx_uint_t                      ngx_levee_link_nframe_handlers;
static ngx_levee_link_state_handler_t  ngx_levee_link_state_handlers[NGX_LEVEE_LINK_MAX_HANDLERS];
static ngx_uint_t                      ngx_levee_link_nstate_handlers;
static ngx_levee_link_hello_handler_t  ngx_levee_link_hello_handlers[NGX_LEVEE_LINK_MAX_HANDLERS];
static ngx_uint_t                      ngx_levee_link_nhello_handlers;


/* One link per worker process. */
static ngx_levee_link_t  ngx_levee_link;

/* Kept outside ngx_levee_link, which is reset with ngx_memzero(). */
static std::vector<uint8_t>  ngx_levee_link_in;
static std::vector<uint8_t>  ngx_levee_link_out;


ngx_int_t
ngx_levee_link_start(ngx_cycle_t *cycle, const char *socket_path)
{
    ngx_levee_link_t  *link = &ngx_levee_link;
    size_t             len;

    ngx_memzero(link, sizeof(ngx_levee_link_t));

    link->log = cycle->log;

    len = ngx_strlen(socket_path);
    link->sockaddr.sun_family = AF_UNIX;
    ngx_memcpy(link->sockaddr.sun_path, socket_path, len + 1);

    link->name.data = link->name_buf;
    link->name.len = ngx_sprintf(link->name_buf, "unix:%s", socket_path) - link->name_buf;

    link->in = &ngx_levee_link_in;
    link->out = &ngx_levee_link_out;

    link->backoff.init(NGX_LEVEE_RECONNECT_MIN_MS,
                       NGX_LEVEE_RECONNECT_MAX_MS,
                       ((uint64_t) ngx_pid << 32) ^ (uint64_t) ngx_time());

    link->reconnect.handler = ngx_levee_link_connect;
    link->reconnect.data = link;
    link->reconnect.log = cycle->log;
    /* an idle reconnect timer must not hold up a graceful shutdown */
    link->reconnect.cancelable = 1;

    link->hello_timer.handler = ngx_levee_link_hello_timeout;
    link->hello_timer.data = link;
    link->hello_timer.log = cycle->log;
    link->hello_timer.cancelable = 1;

    /*
     * Connected from the event loop, once every module's init_process ran:
     * the capabilities' hello handlers are registered there, after this.
     * (A posted event would wait for the loop's first event or timer.)
     */
    ngx_add_timer(&link->reconnect, 1);

    return NGX_OK;
}


void
ngx_levee_link_stop(void)
{
    ngx_levee_link_t  *link = &ngx_levee_link;

    if (link->log == NULL) {
        return;
    }

    if (link->reconnect.timer_set) {
        ngx_del_timer(&link->reconnect);
    }

    ngx_levee_link_close(link, 0);

    link->in->clear();
    link->out->clear();
    link->log = NULL;
}


ngx_flag_t
ngx_levee_link_ready(void)
{
    return ngx_levee_link.state == NGX_LEVEE_LINK_READY;
}


ngx_flag_t
ngx_levee_link_standalone(void)
{
    return ngx_levee_link.state == NGX_LEVEE_LINK_READY
           && ngx_levee_link.standalone;
}


ngx_int_t
ngx_levee_link_on_frame(Levee__Frame__BodyCase body, ngx_levee_link_frame_pt handler,
    void *data)
{
    ngx_levee_link_frame_handler_t  *h;

    if (ngx_levee_link_nframe_handlers == NGX_LEVEE_LINK_MAX_HANDLERS) {
        return NGX_ERROR;
    }

    h = &ngx_levee_link_frame_handlers[ngx_levee_link_nframe_handlers++];
    h->body = body;
    h->handler = handler;
    h->data = data;

    return NGX_OK;
}


ngx_int_t
ngx_levee_link_on_state(ngx_levee_link_state_pt handler, void *data)
{
    ngx_levee_link_state_handler_t  *h;

    if (ngx_levee_link_nstate_handlers == NGX_LEVEE_LINK_MAX_HANDLERS) {
        return NGX_ERROR;
    }

    h = &ngx_levee_link_state_handlers[ngx_levee_link_nstate_handlers++];
    h->handler = handler;
    h->data = data;

    return NGX_OK;
}


ngx_int_t
ngx_levee_link_on_hello(ngx_levee_link_hello_pt handler, void *data)
{
    ngx_levee_link_hello_handler_t  *h;

    if (ngx_levee_link_nhello_handlers == NGX_LEVEE_LINK_MAX_HANDLERS) {
        return NGX_ERROR;
    }

    h = &ngx_levee_link_hello_handlers[ngx_levee_link_nhello_handlers++];
    h->handler = handler;
    h->data = data;

    return NGX_OK;
}


/* for levee_status: frames sent (0) or received (1) by this worker */
static void
ngx_levee_link_count_frame(ngx_flag_t received)
{
    levee::status::LinkCounters  *c;

    if (ngx_levee_status_block != NULL) {
        c = &levee::status::link_slot(*ngx_levee_status_block, ngx_worker);
        levee::status::add(received ? c->frames_received : c->frames_sent);
    }
}


static void
ngx_levee_link_notify(ngx_flag_t ready)
{
    ngx_uint_t                    i;
    levee::status::LinkCounters  *c;

    if (ngx_levee_status_block != NULL) {
        c = &levee::status::link_slot(*ngx_levee_status_block, ngx_worker);

        if (ready) {
            levee::status::store(c->pid, (uint64_t) ngx_pid);
            levee::status::store(c->up, 1);
            levee::status::add(c->connects);

        } else if (levee::status::load(c->pid) == (uint64_t) ngx_pid) {
            /* after a reload the slot may be a new worker's already */
            levee::status::store(c->up, 0);
        }

        if (!ready && !(ngx_exiting || ngx_terminate || ngx_quit)) {
            levee::status::add(c->losses);
        }
    }

    for (i = 0; i < ngx_levee_link_nstate_handlers; i++) {
        ngx_levee_link_state_handlers[i].handler(ready,
                                                 ngx_levee_link_state_handlers[i].data);
    }
}


ngx_int_t
ngx_levee_link_send(Levee__Frame *frame, uint64_t *request_id)
{
    ngx_levee_link_t  *link = &ngx_levee_link;

    if (link->state != NGX_LEVEE_LINK_READY) {
        return NGX_DECLINED;
    }

    if (link->out->size() - link->out_sent >= NGX_LEVEE_LINK_MAX_PENDING) {
        return NGX_BUSY;
    }

    frame->request_id = ++link->next_request_id;

    if (!levee::encode_frame(*frame, *link->out)) {
        return NGX_ERROR;
    }

    if (request_id) {
        *request_id = frame->request_id;
    }

    /*
     * Written from the posted-events queue, after the current handler: a
     * request handler that queues a frame makes no system call, and a failed
     * write cannot close the link (and call the state handlers) under it.
     */
    ngx_post_event(link->peer.connection->write, &ngx_posted_events);

    ngx_levee_link_count_frame(0);

    return NGX_OK;
}


static void
ngx_levee_link_schedule(ngx_levee_link_t *link)
{
    ngx_msec_t  delay;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    delay = link->backoff.next();

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, link->log, 0,
                   "levee: reconnecting to sidecar in %M ms", delay);

    link->state = NGX_LEVEE_LINK_IDLE;
    ngx_add_timer(&link->reconnect, delay);
}


static void
ngx_levee_link_connect(ngx_event_t *ev)
{
    ngx_levee_link_t  *link = (ngx_levee_link_t *) ev->data;
    ngx_connection_t  *c;
    ngx_int_t          rc;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_memzero(&link->peer, sizeof(ngx_peer_connection_t));
    link->peer.sockaddr = (struct sockaddr *) &link->sockaddr;
    link->peer.socklen = sizeof(struct sockaddr_un);
    link->peer.name = &link->name;
    link->peer.get = ngx_event_get_peer;
    link->peer.log = link->log;
    link->peer.log_error = NGX_ERROR_ERR;

    rc = ngx_event_connect_peer(&link->peer);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        /* ngx_event_connect_peer() has logged why */
        if (link->peer.connection) {
            ngx_close_connection(link->peer.connection);
            link->peer.connection = NULL;
        }
        ngx_levee_link_schedule(link);
        return;
    }

    c = link->peer.connection;
    c->data = link;
    c->read->handler = ngx_levee_link_read_handler;
    c->write->handler = ngx_levee_link_write_handler;
    /* lets ngx_close_idle_connections() end the link on graceful shutdown */
    c->idle = 1;

    link->in->clear();
    link->out->clear();
    link->out_sent = 0;
    link->state = NGX_LEVEE_LINK_CONNECTING;

    if (ngx_levee_link_send_hello(link) != NGX_OK) {
        ngx_levee_link_close(link, 1);
        return;
    }

    ngx_add_timer(&link->hello_timer, NGX_LEVEE_HELLO_TIMEOUT_MS);

    if (rc == NGX_OK) {
        ngx_levee_link_write_handler(c->write);
    }
    /* NGX_AGAIN: the write event fires once the connection is established */
}


static void
ngx_levee_link_hello_timeout(ngx_event_t *ev)
{
    ngx_levee_link_t  *link = (ngx_levee_link_t *) ev->data;

    ngx_log_error(NGX_LOG_ERR, link->log, 0,
                  "levee: sidecar %V did not answer hello within %d ms, reconnecting",
                  &link->name, NGX_LEVEE_HELLO_TIMEOUT_MS);

    ngx_levee_link_close(link, 1);
}


static void
ngx_levee_link_close(ngx_levee_link_t *link, ngx_uint_t reconnect)
{
    ngx_flag_t  was_ready = (link->state == NGX_LEVEE_LINK_READY);

    if (link->hello_timer.timer_set) {
        ngx_del_timer(&link->hello_timer);
    }

    if (link->peer.connection) {
        ngx_close_connection(link->peer.connection);
        link->peer.connection = NULL;
    }

    link->state = NGX_LEVEE_LINK_IDLE;

    if (was_ready) {
        ngx_levee_link_notify(0);
    }

    if (reconnect) {
        ngx_levee_link_schedule(link);
    }
}


void
ngx_levee_link_hello(Levee__Hello *hello)
{
    ngx_uint_t  i;

    levee__hello__init(hello);
    hello->protocol_version = LEVEE__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
    hello->client = (char *) "ngx_http_levee_module/" NGX_HTTP_LEVEE_VERSION;
    hello->pid = (uint32_t) ngx_pid;
    hello->worker = (uint32_t) ngx_worker;

    /* what each capability will ask: every connection declares the same */
    for (i = 0; i < ngx_levee_link_nhello_handlers; i++) {
        ngx_levee_link_hello_handlers[i].handler(hello,
                                                 ngx_levee_link_hello_handlers[i].data);
    }
}


static ngx_int_t
ngx_levee_link_send_hello(ngx_levee_link_t *link)
{
    Levee__Frame  frame = LEVEE__FRAME__INIT;
    Levee__Hello  hello;

    ngx_levee_link_hello(&hello);

    frame.request_id = ++link->next_request_id;
    frame.body_case = LEVEE__FRAME__BODY_HELLO;
    frame.hello = &hello;

    if (!levee::encode_frame(frame, *link->out)) {
        return NGX_ERROR;
    }

    ngx_levee_link_count_frame(0);

    return NGX_OK;
}


static ngx_int_t
ngx_levee_link_flush(ngx_levee_link_t *link)
{
    ngx_connection_t  *c = link->peer.connection;
    ssize_t            n;

    while (link->out_sent < link->out->size()) {
        n = c->send(c, link->out->data() + link->out_sent,
                    link->out->size() - link->out_sent);

        if (n == NGX_AGAIN) {
            return NGX_AGAIN;
        }

        if (n == NGX_ERROR || n == 0) {
            return NGX_ERROR;
        }

        link->out_sent += n;
    }

    link->out->clear();
    link->out_sent = 0;

    return NGX_OK;
}


static void
ngx_levee_link_write_handler(ngx_event_t *wev)
{
    ngx_connection_t  *c = (ngx_connection_t *) wev->data;
    ngx_levee_link_t  *link = (ngx_levee_link_t *) c->data;
    ngx_int_t          rc;

    if (link->state == NGX_LEVEE_LINK_CONNECTING) {
        link->state = NGX_LEVEE_LINK_HELLO_SENT;
    }

    rc = ngx_levee_link_flush(link);

    if (rc == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, link->log, ngx_socket_errno,
                      "levee: sending to sidecar %V failed", &link->name);
        ngx_levee_link_close(link, 1);
        return;
    }

    if (ngx_handle_write_event(wev, 0) != NGX_OK) {
        ngx_levee_link_close(link, 1);
        return;
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_levee_link_close(link, 1);
    }
}


static void
ngx_levee_link_read_handler(ngx_event_t *rev)
{
    ngx_connection_t   *c = (ngx_connection_t *) rev->data;
    ngx_levee_link_t   *link = (ngx_levee_link_t *) c->data;
    u_char              buf[16384];
    ssize_t             n;
    size_t              off;

    if (c->close) {
        /* graceful shutdown of the worker */
        ngx_levee_link_close(link, 0);
        return;
    }

    for ( ;; ) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_log_error(NGX_LOG_WARN, link->log, 0,
                          "levee: sidecar %V closed the connection", &link->name);
            ngx_levee_link_close(link, 1);
            return;
        }

        link->in->insert(link->in->end(), buf, buf + n);
    }

    off = 0;
    while (off < link->in->size()) {
        levee::DecodeResult r = levee::decode_frame(link->in->data() + off,
                                                    link->in->size() - off,
                                                    levee::kDefaultMaxFrameBytes);
        if (r.status == levee::DecodeStatus::kNeedMore) {
            break;
        }

        if (r.status != levee::DecodeStatus::kFrame) {
            ngx_log_error(NGX_LOG_ERR, link->log, 0,
                          "levee: %s frame from sidecar %V, reconnecting",
                          levee::decode_status_name(r.status), &link->name);
            ngx_levee_link_close(link, 1);
            return;
        }

        off += r.consumed;

        if (ngx_levee_link_on_frame(link, r.frame.get()) != NGX_OK) {
            return;
        }
    }

    link->in->erase(link->in->begin(), link->in->begin() + off);

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_levee_link_close(link, 1);
    }
}


/* Returns NGX_OK to keep reading, anything else once the link was closed. */
static ngx_int_t
ngx_levee_link_on_frame(ngx_levee_link_t *link, const Levee__Frame *frame)
{
    Levee__HelloReply  *reply;
    ngx_uint_t          i;

    ngx_levee_link_count_frame(1);

    switch (frame->body_case) {

    case LEVEE__FRAME__BODY_HELLO_REPLY:
        reply = frame->hello_reply;

        if (!reply->accepted) {
            ngx_log_error(NGX_LOG_ERR, link->log, 0,
                          "levee: sidecar %V refused hello (protocol %d): %s",
                          &link->name,
                          (int) LEVEE__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT,
                          reply->reason);
            /* retrying soon will not help: wait the longest backoff */
            link->backoff.attempt = 64;
            ngx_levee_link_close(link, 1);
            return NGX_ERROR;
        }

        link->state = NGX_LEVEE_LINK_READY;
        link->standalone = reply->standalone ? 1 : 0;
        link->backoff.reset();

        if (link->hello_timer.timer_set) {
            ngx_del_timer(&link->hello_timer);
        }

        ngx_log_error(NGX_LOG_NOTICE, link->log, 0,
                      "levee: connected to sidecar %V (%s, protocol %ui%s)",
                      &link->name, reply->server,
                      (ngx_uint_t) reply->protocol_version,
                      link->standalone ? ", standalone" : "");
        ngx_levee_link_notify(1);
        return link->state == NGX_LEVEE_LINK_READY ? NGX_OK : NGX_ERROR;

    default:
        if (link->state == NGX_LEVEE_LINK_READY) {
            for (i = 0; i < ngx_levee_link_nframe_handlers; i++) {
                if (ngx_levee_link_frame_handlers[i].body == frame->body_case) {
                    ngx_levee_link_frame_handlers[i].handler(
                        frame, ngx_levee_link_frame_handlers[i].data);
                    /* a handler may have lost the link (a failed send) */
                    return link->state == NGX_LEVEE_LINK_READY ? NGX_OK : NGX_ERROR;
                }
            }
        }

        ngx_log_error(NGX_LOG_ERR, link->log, 0,
                      "levee: unexpected frame %d from sidecar %V, reconnecting",
                      (int) frame->body_case, &link->name);
        ngx_levee_link_close(link, 1);
        return NGX_ERROR;
    }
}
