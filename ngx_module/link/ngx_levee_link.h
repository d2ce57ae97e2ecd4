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

#define NGX_LEVEE_RECONNECT_MIN_MS  100
#define NGX_LEVEE_RECONNECT_MAX_MS  5000

ngx_int_t ngx_levee_link_start(ngx_cycle_t *cycle, const char *socket_path);
void ngx_levee_link_stop(void);

/* True once leveed accepted this worker's hello on the current connection. */
ngx_flag_t ngx_levee_link_ready(void);

#endif
