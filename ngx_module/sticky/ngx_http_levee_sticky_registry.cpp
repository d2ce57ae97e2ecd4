/*
 * The connection registry of levee_sticky (levee_sticky_registry on): the
 * request stores the server chosen for its key in a per-worker buffer, the
 * worker's flush timer sends the buffer to leveed in batches, leveed writes
 * `levee:registry:{KEY}` to the Redis Cluster and acks. When to flush and what is
 * lost is decided by core/sticky/registry_flush.hpp; what is logged, by
 * core/sticky/registry_report.hpp.
 */

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}

#include <new>

#include "core/link/frame_bounds.hpp"
#include "core/sticky/registry_buffer.hpp"
#include "core/sticky/registry_flush.hpp"
#include "core/sticky/registry_report.hpp"
#include "ngx_http_levee_module.h"
#include "ngx_http_levee_sticky.h"
#include "status/ngx_levee_status_block.h"
#include "ngx_levee_link.h"


using levee::sticky::AckWatch;
using levee::sticky::DropReport;
using levee::sticky::FlushSchedule;
using levee::sticky::FlushStep;
using levee::sticky::FlushTally;
using levee::sticky::RegistryBuffer;


/* registry buffer of a worker: distinct keys and key bytes between flushes */
#define NGX_HTTP_LEVEE_REGISTRY_KEYS       8192
#define NGX_HTTP_LEVEE_REGISTRY_KEY_BYTES  (512 * 1024)
/* longer keys are not recorded: they are no user ids */
#define NGX_HTTP_LEVEE_REGISTRY_MAX_KEY    levee::link::kRegistryMaxKey
/* entries per frame: what leveed's smallest max_frame_bytes takes */
#define NGX_HTTP_LEVEE_REGISTRY_BATCH      levee::link::kRegistryBatchEntries

static_assert(NGX_SOCKADDR_STRLEN <= levee::link::kRegistryMaxServer,
              "a server address fits the frame bound");


/* choices not recorded: logged at most this often */
#define NGX_HTTP_LEVEE_REGISTRY_REPORT_MS  10000


static ngx_int_t ngx_http_levee_sticky_send(uint32_t ttl_ms,
    const RegistryBuffer::Record *records, size_t n);
static void ngx_http_levee_sticky_flush_buffer(RegistryBuffer *buf);
static void ngx_http_levee_sticky_flush(ngx_event_t *ev);
static void ngx_http_levee_sticky_on_ack(const Levee__Frame *frame,
    void *data);


/* Worker-local state of the connection registry. */
static RegistryBuffer    *ngx_http_levee_sticky_buffer;
/* the TTLs of the registries, as every hello declares them: leveed writes
 * batches of these TTLs only */
static uint32_t          *ngx_http_levee_sticky_ttls;
static size_t             ngx_http_levee_sticky_nttls;
static ngx_event_t        ngx_http_levee_sticky_timer;
static ngx_connection_t   ngx_http_levee_sticky_dummy;
static ngx_msec_t         ngx_http_levee_sticky_interval;
static FlushSchedule      ngx_http_levee_sticky_schedule;
static AckWatch           ngx_http_levee_sticky_acks;
static DropReport         ngx_http_levee_sticky_report(
                              NGX_HTTP_LEVEE_REGISTRY_REPORT_MS);
static uint64_t           ngx_http_levee_sticky_dropped;


/*
 * The registry is written by the levee_sticky balancer through leveed: both
 * must be configured. Checked once the whole http block is read, since
 * levee_sidecar may come after the upstream, and levee_sticky after
 * levee_sticky_registry.
 */
ngx_int_t
ngx_http_levee_sticky_postconf(ngx_conf_t *cf)
{
    ngx_uint_t                         i;
    ngx_http_levee_main_conf_t        *lmcf;
    ngx_http_upstream_srv_conf_t     **uscfp;
    ngx_http_upstream_main_conf_t     *umcf;
    ngx_http_levee_sticky_srv_conf_t  *scf;

    umcf = (ngx_http_upstream_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_upstream_module);
    lmcf = (ngx_http_levee_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_levee_module);

    uscfp = (ngx_http_upstream_srv_conf_t **) umcf->upstreams.elts;

    for (i = 0; i < umcf->upstreams.nelts; i++) {
        if (uscfp[i]->srv_conf == NULL) {
            continue;
        }

        scf = (ngx_http_levee_sticky_srv_conf_t *)
                  uscfp[i]->srv_conf[ngx_http_levee_sticky_module.ctx_index];

        if (scf == NULL || !scf->registry) {
            continue;
        }

        if (!scf->set) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "levee_sticky_registry needs levee_sticky in "
                          "upstream \"%V\" in %s:%ui", &uscfp[i]->host,
                          uscfp[i]->file_name, uscfp[i]->line);
            return NGX_ERROR;
        }

        if (lmcf == NULL || !lmcf->sidecar_set) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "levee_sticky_registry in upstream \"%V\" needs "
                          "levee_sidecar in the http block in %s:%ui",
                          &uscfp[i]->host, uscfp[i]->file_name,
                          uscfp[i]->line);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* On the request path: memory only, no I/O, no allocation. */
static void
ngx_http_levee_sticky_count_record(levee::status::RegistryResult result)
{
    if (ngx_levee_status_block != NULL) {
        levee::status::add(ngx_levee_status_block->registry[result]);
    }
}


void
ngx_http_levee_sticky_record(ngx_http_levee_sticky_peer_data_t *sp,
    ngx_str_t *server)
{
    RegistryBuffer::Put                put;
    ngx_http_levee_sticky_srv_conf_t  *scf = sp->conf;

    if (!scf->registry || ngx_http_levee_sticky_buffer == NULL) {
        return;
    }

    if (sp->key.len > NGX_HTTP_LEVEE_REGISTRY_MAX_KEY) {
        ngx_http_levee_sticky_dropped++;
        ngx_http_levee_sticky_count_record(levee::status::kRegistryOversized);
        return;
    }

    put = ngx_http_levee_sticky_buffer->put(sp->hash, sp->key.data,
                                            sp->key.len, server->data,
                                            server->len,
                                            (uint32_t) scf->registry_ttl,
                                            (int64_t) ngx_current_msec);

    ngx_http_levee_sticky_count_record(
        put == RegistryBuffer::Put::kAdded ? levee::status::kRegistryAdded
        : put == RegistryBuffer::Put::kUpdated ? levee::status::kRegistryUpdated
        : levee::status::kRegistryFull);

    if (ngx_http_levee_sticky_timer.timer_set
        && ngx_http_levee_sticky_schedule.flush_now(
               put, ngx_http_levee_sticky_buffer->size(),
               ngx_http_levee_sticky_buffer->max_keys()))
    {
        ngx_del_timer(&ngx_http_levee_sticky_timer);
        ngx_add_timer(&ngx_http_levee_sticky_timer, 1);
    }
}


static void
ngx_http_levee_sticky_on_hello(Levee__Hello *hello, void *data)
{
    hello->n_registry_ttl_ms = ngx_http_levee_sticky_nttls;
    hello->registry_ttl_ms = ngx_http_levee_sticky_ttls;
}


static void
ngx_http_levee_sticky_declare(uint32_t ttl_ms)
{
    size_t  i;

    for (i = 0; i < ngx_http_levee_sticky_nttls; i++) {
        if (ngx_http_levee_sticky_ttls[i] == ttl_ms) {
            return;
        }
    }

    ngx_http_levee_sticky_ttls[ngx_http_levee_sticky_nttls++] = ttl_ms;
}


ngx_int_t
ngx_http_levee_sticky_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                         i;
    ngx_msec_t                         interval;
    ngx_http_upstream_srv_conf_t     **uscfp;
    ngx_http_upstream_main_conf_t     *umcf;
    ngx_http_levee_sticky_srv_conf_t  *scf;

    if (ngx_process != NGX_PROCESS_WORKER && ngx_process != NGX_PROCESS_SINGLE) {
        return NGX_OK;
    }

    umcf = (ngx_http_upstream_main_conf_t *)
               ngx_http_cycle_get_module_main_conf(cycle,
                                                   ngx_http_upstream_module);
    if (umcf == NULL) {
        return NGX_OK;
    }

    interval = 0;
    uscfp = (ngx_http_upstream_srv_conf_t **) umcf->upstreams.elts;

    ngx_http_levee_sticky_nttls = 0;
    ngx_http_levee_sticky_ttls = (uint32_t *)
        ngx_pcalloc(cycle->pool, (umcf->upstreams.nelts + 1) * sizeof(uint32_t));
    if (ngx_http_levee_sticky_ttls == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < umcf->upstreams.nelts; i++) {
        if (uscfp[i]->srv_conf == NULL) {
            continue;
        }

        scf = (ngx_http_levee_sticky_srv_conf_t *)
                  uscfp[i]->srv_conf[ngx_http_levee_sticky_module.ctx_index];

        if (scf != NULL && scf->registry && scf->set) {
            interval = interval ? ngx_min(interval, scf->registry_flush)
                                : scf->registry_flush;
            ngx_http_levee_sticky_declare((uint32_t) scf->registry_ttl);
        }
    }

    if (interval == 0) {
        return NGX_OK;
    }

    try {
        ngx_http_levee_sticky_buffer = new RegistryBuffer(
                                         NGX_HTTP_LEVEE_REGISTRY_KEYS,
                                         NGX_HTTP_LEVEE_REGISTRY_KEY_BYTES);
    } catch (const std::bad_alloc &) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "levee_sticky_registry: out of memory for the buffer");
        return NGX_ERROR;
    }

    if (ngx_levee_link_on_frame(LEVEE__FRAME__BODY_REGISTRY_ACK,
                                ngx_http_levee_sticky_on_ack, NULL)
        != NGX_OK
        || ngx_levee_link_on_hello(ngx_http_levee_sticky_on_hello, NULL) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_levee_sticky_interval = interval;
    ngx_http_levee_sticky_dummy.fd = (ngx_socket_t) -1;
    ngx_http_levee_sticky_timer.handler = ngx_http_levee_sticky_flush;
    ngx_http_levee_sticky_timer.log = cycle->log;
    ngx_http_levee_sticky_timer.data = &ngx_http_levee_sticky_dummy;
    ngx_http_levee_sticky_timer.cancelable = 1;

    ngx_add_timer(&ngx_http_levee_sticky_timer, interval);

    return NGX_OK;
}


void
ngx_http_levee_sticky_exit_process(ngx_cycle_t *cycle)
{
    delete ngx_http_levee_sticky_buffer;
    ngx_http_levee_sticky_buffer = NULL;
}


/* One frame of `n` records of one TTL. */
static ngx_int_t
ngx_http_levee_sticky_send(uint32_t ttl_ms,
    const RegistryBuffer::Record *records, size_t n)
{
    size_t                 i, len;
    Levee__Frame           frame = LEVEE__FRAME__INIT;
    Levee__RegistryBatch   batch = LEVEE__REGISTRY_BATCH__INIT;
    Levee__RegistryEntry   entries[NGX_HTTP_LEVEE_REGISTRY_BATCH];
    Levee__RegistryEntry  *ptrs[NGX_HTTP_LEVEE_REGISTRY_BATCH];
    /* the frame wants NUL-terminated servers; peer names are not */
    u_char                 servers[NGX_HTTP_LEVEE_REGISTRY_BATCH][NGX_SOCKADDR_STRLEN + 1];

    for (i = 0; i < n; i++) {
        len = ngx_min(records[i].server.size(), (size_t) NGX_SOCKADDR_STRLEN);
        ngx_memcpy(servers[i], records[i].server.data(), len);
        servers[i][len] = '\0';

        levee__registry_entry__init(&entries[i]);
        entries[i].key.data = (uint8_t *) records[i].key.data();
        entries[i].key.len = records[i].key.size();
        entries[i].server = (char *) servers[i];
        ptrs[i] = &entries[i];
    }

    batch.ttl_ms = ttl_ms;
    batch.n_entries = n;
    batch.entries = ptrs;
    frame.body_case = LEVEE__FRAME__BODY_REGISTRY_BATCH;
    frame.registry_batch = &batch;

    return ngx_levee_link_send(&frame, NULL);
}


/* Sends the buffer, one frame per TTL and NGX_HTTP_LEVEE_REGISTRY_BATCH keys. */
static void
ngx_http_levee_sticky_flush_buffer(RegistryBuffer *buf)
{
    FlushTally              tally;
    RegistryBuffer::Record  scratch[NGX_HTTP_LEVEE_REGISTRY_BATCH];

    tally = levee::sticky::flush_batches(*buf, (int64_t) ngx_current_msec,
                scratch, NGX_HTTP_LEVEE_REGISTRY_BATCH,
                [](uint32_t ttl, const RegistryBuffer::Record *records,
                   size_t n)
                {
                    return ngx_http_levee_sticky_send(ttl, records, n)
                           == NGX_OK;
                });

    ngx_http_levee_sticky_dropped += tally.dropped;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "levee sticky registry: %uL keys sent", tally.sent);

    buf->clear();
}


static void
ngx_http_levee_sticky_flush(ngx_event_t *ev)
{
    uint64_t         dropped, since;
    RegistryBuffer  *buf = ngx_http_levee_sticky_buffer;

    ngx_http_levee_sticky_schedule.fired();

    if (ngx_exiting || ngx_quit || ngx_terminate || buf == NULL) {
        return;
    }

    switch (levee::sticky::flush_step(buf->size(), buf->max_keys(),
                                      ngx_levee_link_ready()))
    {
    case FlushStep::kSend:
        ngx_http_levee_sticky_flush_buffer(buf);
        break;

    case FlushStep::kDiscard:
        ngx_http_levee_sticky_dropped += buf->size();
        buf->clear();
        break;

    case FlushStep::kNothing:
    case FlushStep::kHold:
        break;
    }

    dropped = ngx_http_levee_sticky_dropped + buf->dropped();
    since = ngx_http_levee_sticky_report.due(dropped,
                                             (int64_t) ngx_current_msec);

    if (since) {
        ngx_log_error(NGX_LOG_NOTICE, ev->log, 0,
                      "levee_sticky_registry: %uL choices not recorded since "
                      "the last report (buffer full, key longer than %d "
                      "bytes or leveed away), %uL in all",
                      since, NGX_HTTP_LEVEE_REGISTRY_MAX_KEY, dropped);
    }

    ngx_add_timer(ev, ngx_http_levee_sticky_interval);
}


/* Records are not resent: the next request of a key records it again. */
static void
ngx_http_levee_sticky_on_ack(const Levee__Frame *frame, void *data)
{
    const Levee__RegistryAck  *ack = frame->registry_ack;

    switch (ngx_http_levee_sticky_acks.on_ack(ack->ok)) {

    case AckWatch::Change::kRecovered:
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "levee_sticky_registry: writes succeed again");
        break;

    case AckWatch::Change::kFailing:
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "levee_sticky_registry: leveed could not write "
                      "%s", ack->error && ack->error[0] ? ack->error
                                                        : "the registry");
        break;

    case AckWatch::Change::kNone:
        break;
    }
}
