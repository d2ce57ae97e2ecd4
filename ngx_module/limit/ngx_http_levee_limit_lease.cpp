/*
 * The lease client of the global scope, one per worker: a timer that every
 * `sync` interval asks leveed for quota for the keys requests used, applies
 * the grants to the keys' entries, takes keys out of global counting while
 * leveed or their Redis master is away, and reports full zones.
 */

#include "core/limit/lease.hpp"
#include "core/link/frame_bounds.hpp"
#include "ngx_http_levee_limit.h"
#include "ngx_levee_link.h"

using levee::limit::Entry;
using levee::limit::GlobalPart;
using levee::limit::Table;


/* Keys per lease frame: bounds the frame and the time the mutex is held. */
#define NGX_HTTP_LEVEE_LIMIT_BATCH        levee::link::kLeaseBatchEntries
/* Bytes of keys per lease frame: any one key (at most 65535 bytes) fits. */
#define NGX_HTTP_LEVEE_LIMIT_KEYS         levee::link::kLeaseBatchKeyBytes


static ngx_event_t        ngx_http_levee_limit_timer;
static ngx_connection_t   ngx_http_levee_limit_dummy;
static ngx_uint_t         ngx_http_levee_limit_global_ok;
static ngx_uint_t         ngx_http_levee_limit_expedited;
static ngx_uint_t         ngx_http_levee_limit_unanswered;
static ngx_uint_t         ngx_http_levee_limit_failing;
static ngx_msec_t         ngx_http_levee_limit_last_stats;
static ngx_uint_t         ngx_http_levee_limit_late;
static ngx_msec_t         ngx_http_levee_limit_late_logged;
static ngx_http_levee_limit_main_conf_t  *ngx_http_levee_limit_mcf;

/* the global zones as every hello declares them: leveed grants leases for
 * these buckets only */
static Levee__LimitZone  **ngx_http_levee_limit_declared;
static size_t              ngx_http_levee_limit_ndeclared;


/* True while this worker's link to leveed is ready. */
ngx_flag_t
ngx_http_levee_limit_link_ready(void)
{
    return ngx_http_levee_limit_global_ok;
}


/* A key's first miss asks for quota at the next tick, not a sync later;
 * once per tick, however many keys miss. */
void
ngx_http_levee_limit_ask_now(void)
{
    if (ngx_http_levee_limit_expedited || !ngx_http_levee_limit_timer.timer_set) {
        return;
    }

    ngx_http_levee_limit_expedited = 1;
    ngx_del_timer(&ngx_http_levee_limit_timer);
    ngx_add_timer(&ngx_http_levee_limit_timer, 1);
}


/* A request levee_limit_fail decided because its key's lease was late:
 * what a slow leveed costs in accuracy, so it is counted and said. */
void
ngx_http_levee_limit_count_late(void)
{
    ngx_http_levee_limit_late++;
}


static void
ngx_http_levee_limit_log_late(ngx_log_t *log)
{
    if (ngx_http_levee_limit_late == 0
        || ngx_current_msec - ngx_http_levee_limit_late_logged < 1000)
    {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "levee_limit: %ui requests decided by levee_limit_fail because "
                  "their key's lease was not answered within %d ms",
                  ngx_http_levee_limit_late, NGX_HTTP_LEVEE_LIMIT_FIRST_WAIT);

    ngx_http_levee_limit_late = 0;
    ngx_http_levee_limit_late_logged = ngx_current_msec;
}


static void
ngx_http_levee_limit_log_stats(ngx_http_levee_limit_zone_t *zone, ngx_log_t *log)
{
    uint64_t  evictions, expired, count;

    ngx_shmtx_lock(&zone->shpool->mutex);
    evictions = zone->sh->evictions;
    expired = zone->sh->expired;
    count = zone->sh->count;
    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (evictions == zone->logged_evictions) {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "levee_limit_zone \"%V\" is full: %uL keys evicted since the last "
                  "report, %uL in all; %uL idle keys reclaimed; %uL keys tracked in %uz bytes",
                  &zone->name, evictions - zone->logged_evictions, evictions, expired,
                  count, zone->shm_zone->shm.size);

    zone->logged_evictions = evictions;
}


static void
ngx_http_levee_limit_sync_zone(ngx_http_levee_limit_zone_t *zone, ngx_log_t *log)
{
    ngx_uint_t                 i, n, visited, unanswered;
    uint32_t                   now;
    ngx_msec_t                 timeout;
    levee::limit::LeaseTurn    turn;
    Entry                     *e;
    GlobalPart                *g;
    Levee__Frame               frame = LEVEE__FRAME__INIT;
    Levee__LimitLeaseRequest   req = LEVEE__LIMIT_LEASE_REQUEST__INIT;
    Levee__LimitLeaseEntry     entries[NGX_HTTP_LEVEE_LIMIT_BATCH];
    uint32_t                   demands[NGX_HTTP_LEVEE_LIMIT_BATCH];
    Levee__LimitLeaseEntry    *ptrs[NGX_HTTP_LEVEE_LIMIT_BATCH];
    u_char                    *k;

    /* keys are copied out so that the frame is encoded outside the mutex,
     * into one worker-local buffer: the frame is sent before the next zone
     * reuses it, so nothing is allocated per tick */
    static u_char              keys[NGX_HTTP_LEVEE_LIMIT_KEYS];

    /* pending_ms holds 32 bits of the clock: compare modulo 2^32 */
    now = (uint32_t) ngx_current_msec | 1;
    timeout = ngx_max(1000, 4 * zone->sync);
    n = 0;
    unanswered = 0;
    k = keys;

    Table  t = ngx_http_levee_limit_table(zone);

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (visited = 0; visited < NGX_HTTP_LEVEE_LIMIT_BATCH * 2 && n < NGX_HTTP_LEVEE_LIMIT_BATCH;
         visited++)
    {
        e = t.pop_dirty();
        if (e == NULL) {
            break;
        }

        g = t.global(e);

        /* leveed answers a lease it cannot serve within kLeaseDeadlineMs
         * (500 ms) with a failure: timeout is for leveed itself */
        turn = levee::limit::lease_turn(*e, *g, now, timeout, zone->gcra.capacity(),
                                        zone->refill_per_sync);
        if (turn.waiting) {
            t.mark_dirty(e);
            continue;
        }

        unanswered += turn.unanswered;

        if (turn.want == 0) {
            continue;
        }

        if (k + e->len > keys + NGX_HTTP_LEVEE_LIMIT_KEYS) {
            t.mark_dirty(e);
            break;
        }

        ngx_memcpy(k, t.key(e), e->len);

        levee__limit_lease_entry__init(&entries[n]);
        entries[n].zone = (char *) zone->name.data;
        entries[n].key.data = k;
        entries[n].key.len = e->len;
        entries[n].period_us = zone->gcra.period_us;
        entries[n].capacity = (uint32_t) zone->gcra.capacity();
        entries[n].want = turn.want;
        ptrs[n] = &entries[n];
        n++;
        k += e->len;

        /* kept until the frame is on its way: a send that fails gives it back */
        demands[n - 1] = g->demand;
        g->demand = 0;
        g->pending_ms = now;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (unanswered && !ngx_http_levee_limit_unanswered) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "levee_limit_zone \"%V\": %ui leases unanswered for %M ms; "
                      "levee_limit_fail decides for these keys", &zone->name,
                      unanswered, timeout);
    }

    ngx_http_levee_limit_unanswered = unanswered ? 1 : 0;

    if (n > 0) {
        req.n_entries = n;
        req.entries = ptrs;
        frame.body_case = LEVEE__FRAME__BODY_LIMIT_LEASE;
        frame.limit_lease = &req;

        if (ngx_levee_link_send(&frame, NULL) != NGX_OK) {
            /* not sent: let the next tick ask again */
            ngx_shmtx_lock(&zone->shpool->mutex);

            for (i = 0; i < n; i++) {
                e = t.find(levee::limit::hash_key(zone->sh->seed, entries[i].key.data, entries[i].key.len),
                           entries[i].key.data, (uint16_t) entries[i].key.len);
                if (e != NULL) {
                    t.global(e)->pending_ms = 0;
                    t.global(e)->demand += demands[i];
                    t.mark_dirty(e);
                }
            }

            ngx_shmtx_unlock(&zone->shpool->mutex);
        }
    }
}


static void
ngx_http_levee_limit_tick(ngx_event_t *ev)
{
    ngx_uint_t                     i;
    ngx_http_levee_limit_zone_t  **zones;

    ngx_http_levee_limit_expedited = 0;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    zones = (ngx_http_levee_limit_zone_t **) ngx_http_levee_limit_mcf->zones.elts;

    for (i = 0; i < ngx_http_levee_limit_mcf->zones.nelts; i++) {
        if (zones[i]->sh == NULL) {
            continue;
        }

        if (zones[i]->global && ngx_levee_link_ready()) {
            ngx_http_levee_limit_sync_zone(zones[i], ev->log);
        }
    }

    ngx_http_levee_limit_log_late(ev->log);

    if (ngx_worker == 0 && ngx_current_msec - ngx_http_levee_limit_last_stats >= 1000) {
        ngx_http_levee_limit_last_stats = ngx_current_msec;

        for (i = 0; i < ngx_http_levee_limit_mcf->zones.nelts; i++) {
            if (zones[i]->sh != NULL) {
                ngx_http_levee_limit_log_stats(zones[i], ev->log);
            }
        }
    }

    ngx_add_timer(ev, ngx_http_levee_limit_mcf->tick);
}


static ngx_http_levee_limit_zone_t *
ngx_http_levee_limit_find_zone(const char *name)
{
    size_t                         len;
    ngx_uint_t                     i;
    ngx_http_levee_limit_zone_t  **zones;

    len = ngx_strlen(name);
    zones = (ngx_http_levee_limit_zone_t **) ngx_http_levee_limit_mcf->zones.elts;

    for (i = 0; i < ngx_http_levee_limit_mcf->zones.nelts; i++) {
        if (zones[i]->name.len == len && ngx_strncmp(zones[i]->name.data, name, len) == 0) {
            return zones[i];
        }
    }

    return NULL;
}


static void
ngx_http_levee_limit_on_reply(const Levee__Frame *frame, void *data)
{
    ngx_uint_t                    i, failed;
    Entry                        *e;
    Levee__LimitLeaseGrant       *grant;
    ngx_http_levee_limit_zone_t  *zone;
    const Levee__LimitLeaseReply *reply = frame->limit_lease_reply;

    failed = 0;

    for (i = 0; i < reply->n_grants; i++) {
        grant = reply->grants[i];

        zone = ngx_http_levee_limit_find_zone(grant->zone);
        if (zone == NULL || !zone->global || zone->sh == NULL) {
            continue;
        }

        /* no key is longer: cut to 16 bits, it would name another key */
        if (grant->key.len > 0xffff) {
            continue;
        }

        if (grant->failed) {
            failed++;
        }

        Table  t = ngx_http_levee_limit_table(zone);

        ngx_shmtx_lock(&zone->shpool->mutex);

        e = t.find(levee::limit::hash_key(zone->sh->seed, grant->key.data, grant->key.len),
                   grant->key.data, (uint16_t) grant->key.len);
        if (e != NULL
            && levee::limit::lease_apply(*e, *t.global(e), grant->granted, grant->failed))
        {
            t.mark_dirty(e);
        }

        ngx_shmtx_unlock(&zone->shpool->mutex);
    }

    if ((failed != 0) != (ngx_http_levee_limit_failing != 0)) {
        if (failed) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "levee_limit: global counting unavailable for %ui keys, "
                          "levee_limit_fail decides for them: %s", failed,
                          reply->error && reply->error[0] ? reply->error
                                                          : "Redis did not answer");

        } else {
            ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                          "levee_limit: global counting resumed");
        }

        ngx_http_levee_limit_failing = failed;
    }
}


static void
ngx_http_levee_limit_on_state(ngx_flag_t ready, void *data)
{
    ngx_uint_t                     i;
    ngx_http_levee_limit_zone_t  **zones;

    /* once per worker: every reconnect to the same leveed would repeat it */
    static ngx_flag_t              warned_standalone;

    /* a lost link takes every key out of global counting; a failing lease
     * only its own key (kEntryUnavailable) */
    ngx_http_levee_limit_global_ok = ready ? 1 : 0;

    if (!ready || warned_standalone || !ngx_levee_link_standalone()) {
        return;
    }

    warned_standalone = 1;
    zones = (ngx_http_levee_limit_zone_t **) ngx_http_levee_limit_mcf->zones.elts;

    for (i = 0; i < ngx_http_levee_limit_mcf->zones.nelts; i++) {
        if (zones[i]->global) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "levee_limit_zone \"%V\" is scope=global but leveed "
                          "is standalone: N nginx hosts each admit the full rate",
                          &zones[i]->name);
        }
    }
}


static void
ngx_http_levee_limit_on_hello(Levee__Hello *hello, void *data)
{
    hello->n_limit_zones = ngx_http_levee_limit_ndeclared;
    hello->limit_zones = ngx_http_levee_limit_declared;
}


/* One declaration per global zone, as sync_zone() fills its lease entries. */
static ngx_int_t
ngx_http_levee_limit_declare(ngx_cycle_t *cycle, ngx_http_levee_limit_main_conf_t *lmcf)
{
    ngx_uint_t                     i, n;
    Levee__LimitZone              *decl;
    ngx_http_levee_limit_zone_t  **zones;

    zones = (ngx_http_levee_limit_zone_t **) lmcf->zones.elts;

    decl = (Levee__LimitZone *) ngx_pcalloc(cycle->pool,
                                            lmcf->zones.nelts * sizeof(Levee__LimitZone));
    ngx_http_levee_limit_declared = (Levee__LimitZone **)
        ngx_pcalloc(cycle->pool, lmcf->zones.nelts * sizeof(Levee__LimitZone *));
    if (decl == NULL || ngx_http_levee_limit_declared == NULL) {
        return NGX_ERROR;
    }

    n = 0;

    for (i = 0; i < lmcf->zones.nelts; i++) {
        if (!zones[i]->global) {
            continue;
        }

        levee__limit_zone__init(&decl[n]);
        decl[n].name = (char *) zones[i]->name.data;
        decl[n].period_us = zones[i]->gcra.period_us;
        decl[n].capacity = (uint32_t) zones[i]->gcra.capacity();
        ngx_http_levee_limit_declared[n] = &decl[n];
        n++;
    }

    ngx_http_levee_limit_ndeclared = n;

    return ngx_levee_link_on_hello(ngx_http_levee_limit_on_hello, NULL);
}


ngx_int_t
ngx_http_levee_limit_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                         i, global;
    ngx_http_levee_limit_zone_t      **zones;
    ngx_http_levee_limit_main_conf_t  *lmcf;

    if (ngx_process != NGX_PROCESS_WORKER && ngx_process != NGX_PROCESS_SINGLE) {
        return NGX_OK;
    }

    lmcf = (ngx_http_levee_limit_main_conf_t *)
               ngx_http_cycle_get_module_main_conf(cycle, ngx_http_levee_limit_module);
    if (lmcf == NULL || lmcf->zones.nelts == 0) {
        return NGX_OK;
    }

    ngx_http_levee_limit_mcf = lmcf;
    zones = (ngx_http_levee_limit_zone_t **) lmcf->zones.elts;
    global = 0;

    for (i = 0; i < lmcf->zones.nelts; i++) {
        global |= zones[i]->global;
    }

    if (global) {
        if (ngx_http_levee_limit_declare(cycle, lmcf) != NGX_OK
            || ngx_levee_link_on_frame(LEVEE__FRAME__BODY_LIMIT_LEASE_REPLY,
                                    ngx_http_levee_limit_on_reply, NULL) != NGX_OK
            || ngx_levee_link_on_state(ngx_http_levee_limit_on_state, NULL) != NGX_OK)
        {
            return NGX_ERROR;
        }

        ngx_http_levee_limit_global_ok = ngx_levee_link_ready();
    }

    ngx_http_levee_limit_dummy.fd = (ngx_socket_t) -1;
    ngx_http_levee_limit_timer.handler = ngx_http_levee_limit_tick;
    ngx_http_levee_limit_timer.log = cycle->log;
    ngx_http_levee_limit_timer.data = &ngx_http_levee_limit_dummy;
    ngx_http_levee_limit_timer.cancelable = 1;
    ngx_http_levee_limit_last_stats = ngx_current_msec;

    ngx_add_timer(&ngx_http_levee_limit_timer, lmcf->tick);

    return NGX_OK;
}
