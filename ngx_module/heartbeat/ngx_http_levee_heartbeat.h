/*
 * ngx_http_levee_heartbeat: what the heartbeat module's glue files share.
 *
 *   ngx_http_levee_heartbeat_module.cpp  directives, the beat handler
 *   ngx_http_levee_heartbeat_flush.cpp   the flush timer, batches, acks
 *   ngx_http_levee_heartbeat_exit.cpp    the last flush of a zone's last workers
 *   ngx_http_levee_heartbeat_zone.cpp    the shared zone, reload adoption
 *   ngx_http_levee_presence.cpp          levee_presence queries to leveed
 *   ngx_http_levee_presence_output.cpp   text and JSON responses
 */
#ifndef NGX_HTTP_LEVEE_HEARTBEAT_H
#define NGX_HTTP_LEVEE_HEARTBEAT_H

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}

#include "core/presence/batch_ledger.hpp"
#include "core/presence/presence_table.hpp"
#include "ngx_http_levee_module.h"
#include "ngx_levee_link.h"


#define NGX_HTTP_LEVEE_HB_MIN_SIZE        (64 * 1024)


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


typedef enum {
    NGX_HTTP_LEVEE_Q_USER = 0,
    NGX_HTTP_LEVEE_Q_USERS,
    NGX_HTTP_LEVEE_Q_ROOM
} ngx_http_levee_q_kind_e;


extern "C" ngx_module_t  ngx_http_levee_heartbeat_module;

/* The worker's configuration, set when the worker starts. */
extern ngx_http_levee_hb_main_conf_t  *ngx_http_levee_hb_mcf;


static ngx_inline levee::presence::Table
ngx_http_levee_hb_table(ngx_http_levee_hb_main_conf_t *hmcf)
{
    return levee::presence::Table(hmcf->base);
}


/* ngx_http_levee_heartbeat_flush.cpp */
ngx_int_t ngx_http_levee_hb_flush_init(ngx_cycle_t *cycle);
void ngx_http_levee_hb_on_ack(const Levee__Frame *frame, void *data);
void ngx_http_levee_hb_on_state(ngx_flag_t ready, void *data);
/* Passes a batch frame to leveed and says what became of it. */
typedef levee::presence::BatchOutcome (*ngx_http_levee_hb_sync_pt)(Levee__Frame *frame, void *data);
ngx_int_t ngx_http_levee_hb_send_batch(ngx_log_t *log, ngx_http_levee_hb_sync_pt sync, void *data);
ngx_flag_t ngx_http_levee_hb_last_owner(void);

/* ngx_http_levee_heartbeat_exit.cpp */
void ngx_http_levee_hb_flush_on_exit(ngx_cycle_t *cycle);

/* ngx_http_levee_heartbeat_zone.cpp */
ngx_int_t ngx_http_levee_hb_init_zone(ngx_shm_zone_t *shm_zone, void *data);

/* ngx_http_levee_presence.cpp */
ngx_int_t ngx_http_levee_presence_handler(ngx_http_request_t *r);
void ngx_http_levee_q_init(void);
void ngx_http_levee_q_on_reply(const Levee__Frame *frame, void *data);
void ngx_http_levee_q_fail_all(const char *error);

/* ngx_http_levee_presence_output.cpp */
ngx_int_t ngx_http_levee_hb_text(ngx_http_request_t *r, ngx_uint_t status,
    const char *text);
ngx_int_t ngx_http_levee_hb_header(ngx_http_request_t *r, const char *name,
    uint64_t value);
ngx_int_t ngx_http_levee_q_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *error);
ngx_int_t ngx_http_levee_q_answer(ngx_http_request_t *r, ngx_uint_t kind,
    const Levee__PresenceQueryReply *reply);
ngx_int_t ngx_http_levee_q_stats(ngx_http_request_t *r);

#endif
