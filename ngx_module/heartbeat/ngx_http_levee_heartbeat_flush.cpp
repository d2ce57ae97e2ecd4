/*
 * Flushing beats to leveed: every worker's timer takes what waits in the
 * presence table and sends it in batches; each batch is settled in the table
 * by what became of it (core/presence/batch_ledger.hpp): acknowledged,
 * refused, lost with the link, or never sent. What got no answer for
 * NGX_HTTP_LEVEE_HB_RESEND_MS, and what a dead worker left in flight, is
 * sent again.
 */

#include "ngx_http_levee_heartbeat.h"
#include "status/ngx_levee_status_block.h"
#include "core/link/frame_bounds.hpp"
#include "core/presence/batch_ledger.hpp"

using levee::presence::BatchLedger;
using levee::presence::BatchOutcome;
using levee::presence::PendingBatch;
using levee::presence::Table;
using levee::presence::Taken;


/* Records per batch frame, and bytes of users and rooms per batch. */
#define NGX_HTTP_LEVEE_HB_BATCH           levee::link::kPresenceBatchRecords
#define NGX_HTTP_LEVEE_HB_BATCH_BYTES     levee::link::kPresenceBatchNameBytes
/*
 * An unanswered batch is sent again after this long. Longer than leveed
 * keeps retrying Redis (15 s), so a slow ack is not duplicated; a lost link
 * and a dead worker are handled at once, without waiting for it.
 */
#define NGX_HTTP_LEVEE_HB_RESEND_MS       20000


/* Worker-local state. */
static ngx_event_t       ngx_http_levee_hb_timer;
static ngx_connection_t  ngx_http_levee_hb_dummy;
static BatchLedger       ngx_http_levee_hb_ledger;
/* the zone's reload count when this worker started (Table::next_cycle) */
static uint32_t          ngx_http_levee_hb_cycles;


static void
ngx_http_levee_hb_settle(PendingBatch *b, BatchOutcome outcome)
{
    ngx_http_levee_hb_main_conf_t  *hmcf = ngx_http_levee_hb_mcf;

    Table  t = ngx_http_levee_hb_table(hmcf);

    ngx_shmtx_lock(&hmcf->shpool->mutex);
    levee::presence::settle_batch(t, *b, outcome);
    ngx_shmtx_unlock(&hmcf->shpool->mutex);

    ngx_free(b->recs);
    b->recs = NULL;
}


/*
 * Sends one batch; NGX_DECLINED when the table had nothing to send. With
 * `sync`, the batch goes through it and is settled by what it returns,
 * instead of through the link with its ack to come.
 */
ngx_int_t
ngx_http_levee_hb_send_batch(ngx_log_t *log, ngx_http_levee_hb_sync_pt sync, void *data)
{
    BatchOutcome                    outcome;
    u_char                         *strings, *p;
    uint32_t                        ttl_ms;
    uint64_t                        request_id;
    ngx_int_t                       rc;
    ngx_uint_t                      i, n;
    Levee__Frame                    frame = LEVEE__FRAME__INIT;
    Levee__PresenceBatch            batch = LEVEE__PRESENCE_BATCH__INIT;
    Levee__PresenceRecord          *records, **ptrs;
    PendingBatch                    b;
    ngx_http_levee_hb_main_conf_t  *hmcf = ngx_http_levee_hb_mcf;

    b.recs = (Taken *) ngx_alloc(NGX_HTTP_LEVEE_HB_BATCH * sizeof(Taken)
                                  + NGX_HTTP_LEVEE_HB_BATCH_BYTES, log);
    if (b.recs == NULL) {
        return NGX_ERROR;
    }

    b.keys = (u_char *) (b.recs + NGX_HTTP_LEVEE_HB_BATCH);

    Table  t = ngx_http_levee_hb_table(hmcf);

    ngx_shmtx_lock(&hmcf->shpool->mutex);
    b.batch = t.next_batch((uint32_t) ngx_worker);
    n = t.take(b.batch, (uint32_t) ngx_current_msec, b.recs, NGX_HTTP_LEVEE_HB_BATCH,
               b.keys, NGX_HTTP_LEVEE_HB_BATCH_BYTES, &ttl_ms);
    ngx_shmtx_unlock(&hmcf->shpool->mutex);

    b.n = n;

    if (n > 0 && ngx_levee_status_block != NULL) {
        levee::status::count_batch(*ngx_levee_status_block, n);
    }

    if (n == 0) {
        ngx_free(b.recs);
        b.recs = NULL;
        return NGX_DECLINED;
    }

    /* protobuf-c wants NUL-terminated strings: a scratch copy for encoding */
    records = (Levee__PresenceRecord *) ngx_alloc(n * (sizeof(Levee__PresenceRecord)
                                                       + sizeof(Levee__PresenceRecord *))
                                                  + NGX_HTTP_LEVEE_HB_BATCH_BYTES + 2 * n, log);
    if (records == NULL) {
        ngx_http_levee_hb_settle(&b, BatchOutcome::kNotSent);
        return NGX_ERROR;
    }

    ptrs = (Levee__PresenceRecord **) (records + n);
    strings = (u_char *) (ptrs + n);
    p = strings;

    for (i = 0; i < n; i++) {
        levee__presence_record__init(&records[i]);
        records[i].user = (char *) p;
        p = ngx_cpymem(p, b.keys + b.recs[i].off, b.recs[i].ulen);
        *p++ = '\0';
        records[i].room = (char *) p;
        p = ngx_cpymem(p, b.keys + b.recs[i].off + b.recs[i].ulen, b.recs[i].rlen);
        *p++ = '\0';
        records[i].last_seen_ms = b.recs[i].last_seen_ms;
        ptrs[i] = &records[i];
    }

    batch.ttl_ms = ttl_ms;
    batch.n_records = n;
    batch.records = ptrs;
    frame.body_case = LEVEE__FRAME__BODY_PRESENCE_BATCH;
    frame.presence_batch = &batch;

    if (sync != NULL) {
        outcome = sync(&frame, data);
        ngx_free(records);
        ngx_http_levee_hb_settle(&b, outcome);
        return outcome == BatchOutcome::kAcknowledged ? NGX_OK : NGX_ERROR;
    }

    rc = ngx_levee_link_send(&frame, &request_id);

    ngx_free(records);

    /* a failed write may have closed the link inside the send: no ack will come */
    if (rc != NGX_OK || !ngx_levee_link_ready()) {
        /* back to the dirty list: the next tick, or another worker, sends it */
        ngx_http_levee_hb_settle(&b, BatchOutcome::kNotSent);
        return NGX_ERROR;
    }

    b.request_id = request_id;
    /* the tick sends only while the ledger has room */
    (void) ngx_http_levee_hb_ledger.add(b);

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

        while (!ngx_http_levee_hb_ledger.full()) {
            if (ngx_http_levee_hb_send_batch(ev->log, NULL, NULL) != NGX_OK) {
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


void
ngx_http_levee_hb_on_ack(const Levee__Frame *frame, void *data)
{
    PendingBatch               b;
    const Levee__PresenceAck  *ack = frame->presence_ack;

    if (!ngx_http_levee_hb_ledger.take(frame->request_id, &b)) {
        /* its link was lost meanwhile: it was sent again already */
        return;
    }

    if (!ack->ok) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "levee_heartbeat: leveed refused a batch of %uz beats, "
                      "sending it again: %s", b.n, ack->error ? ack->error : "");
    }

    ngx_http_levee_hb_settle(&b, ack->ok ? BatchOutcome::kAcknowledged
                                         : BatchOutcome::kRefused);
}


void
ngx_http_levee_hb_on_state(ngx_flag_t ready, void *data)
{
    PendingBatch  b;

    if (ready) {
        return;
    }

    /* what was in flight on the lost connection is sent again on the next one */
    while (ngx_http_levee_hb_ledger.take_any(&b)) {
        ngx_http_levee_hb_settle(&b, BatchOutcome::kLinkLost);
    }

    ngx_http_levee_q_fail_all("leveed connection lost");
}


/*
 * Whether this exiting worker's zone dies with it: no reload since it
 * started kept the zone for newer workers (nginx is stopping, or these are
 * the old workers of a binary upgrade), and no resize moved it elsewhere.
 * Then what this worker sent and has not seen acknowledged waits again.
 */
ngx_flag_t
ngx_http_levee_hb_last_owner(void)
{
    ngx_flag_t                      last;
    ngx_http_levee_hb_main_conf_t  *hmcf = ngx_http_levee_hb_mcf;

    Table  t = ngx_http_levee_hb_table(hmcf);

    ngx_shmtx_lock(&hmcf->shpool->mutex);
    last = !t.header().retired && t.header().cycles == ngx_http_levee_hb_cycles;
    if (last) {
        t.requeue_slot((uint32_t) ngx_worker);
    }
    ngx_shmtx_unlock(&hmcf->shpool->mutex);

    return last;
}


/* Starts the worker's flush timer, after taking over its predecessor's batches. */
ngx_int_t
ngx_http_levee_hb_flush_init(ngx_cycle_t *cycle)
{
    ngx_http_levee_hb_main_conf_t  *hmcf = ngx_http_levee_hb_mcf;

    /* a worker that died left its batches in flight: this one takes its slot */
    Table  t = ngx_http_levee_hb_table(hmcf);

    ngx_shmtx_lock(&hmcf->shpool->mutex);
    t.requeue_slot((uint32_t) ngx_worker);
    ngx_http_levee_hb_cycles = t.header().cycles;
    ngx_shmtx_unlock(&hmcf->shpool->mutex);

    ngx_http_levee_hb_dummy.fd = (ngx_socket_t) -1;
    ngx_http_levee_hb_timer.handler = ngx_http_levee_hb_tick;
    ngx_http_levee_hb_timer.log = cycle->log;
    ngx_http_levee_hb_timer.data = &ngx_http_levee_hb_dummy;
    ngx_http_levee_hb_timer.cancelable = 1;

    ngx_add_timer(&ngx_http_levee_hb_timer, hmcf->flush);

    return NGX_OK;
}
