/*
 * The worker's link to leveed: one persistent, nonblocking Unix socket
 * connection per nginx worker, driven by nginx's event loop, that says hello,
 * and reconnects with capped exponential backoff when it is lost.
 */
#ifndef NGX_LEVEE_LINK_H
#define NGX_LEVEE_LINK_H

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
}

#include "levee.pb-c.h"

#define NGX_LEVEE_RECONNECT_MIN_MS  100
#define NGX_LEVEE_RECONNECT_MAX_MS  5000
/* Bytes queued for leveed beyond which ngx_levee_link_send() refuses. */
#define NGX_LEVEE_LINK_MAX_PENDING  (8 * 1024 * 1024)

/* Called for every frame of one body type that leveed sends this worker. */
typedef void (*ngx_levee_link_frame_pt)(const Levee__Frame *frame, void *data);

/* Called when the link becomes ready (hello accepted) or is lost. */
typedef void (*ngx_levee_link_state_pt)(ngx_flag_t ready, void *data);

/*
 * Called for every hello: adds what a capability declares (its global limit
 * zones, its registries), which is all leveed then lets the connection ask.
 * What it points the hello at must outlive the worker's link.
 */
typedef void (*ngx_levee_link_hello_pt)(Levee__Hello *hello, void *data);

ngx_int_t ngx_levee_link_start(ngx_cycle_t *cycle, const char *socket_path);
/* What this worker says at hello, declarations included: also for a
 * connection of its own. */
void ngx_levee_link_hello(Levee__Hello *hello);
void ngx_levee_link_stop(void);

/* True once leveed accepted this worker's hello on the current connection. */
ngx_flag_t ngx_levee_link_ready(void);

/*
 * True while the link is ready and leveed said at hello that it is
 * standalone (no Redis): its limits, presence and registry are its own, so
 * each nginx host with its own leveed counts scope=global limits alone.
 * State handlers called with ready=1 already see the new connection's value.
 */
ngx_flag_t ngx_levee_link_standalone(void);

/* Capabilities register from their init_process handlers. */
ngx_int_t ngx_levee_link_on_frame(Levee__Frame__BodyCase body,
    ngx_levee_link_frame_pt handler, void *data);
ngx_int_t ngx_levee_link_on_state(ngx_levee_link_state_pt handler, void *data);
ngx_int_t ngx_levee_link_on_hello(ngx_levee_link_hello_pt handler, void *data);

/*
 * Queues a frame for leveed, giving it the next request id (returned in
 * *request_id if not NULL). NGX_OK: queued; NGX_DECLINED: the link is not
 * ready; NGX_BUSY: NGX_LEVEE_LINK_MAX_PENDING bytes are already queued;
 * NGX_ERROR: the frame is larger than a frame may be.
 */
ngx_int_t ngx_levee_link_send(Levee__Frame *frame, uint64_t *request_id);

#endif
