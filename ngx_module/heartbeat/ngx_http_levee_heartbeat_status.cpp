/*
 * What levee_status shows of heartbeats: the presence table's own counters,
 * read under its lock so that one scrape sees one instant.
 */

#include "ngx_http_levee_heartbeat.h"
#include "status/ngx_http_levee_status.h"


void
ngx_http_levee_heartbeat_status(ngx_http_request_t *r,
    levee::status::PromText *out)
{
    levee::status::Block           *b;
    levee::presence::Header         h;
    ngx_http_levee_hb_main_conf_t  *hmcf;

    hmcf = (ngx_http_levee_hb_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_levee_heartbeat_module);

    if (hmcf == NULL || hmcf->shpool == NULL || hmcf->base == NULL) {
        return;
    }

    ngx_shmtx_lock(&hmcf->shpool->mutex);
    h = ngx_http_levee_hb_table(hmcf).header();
    ngx_shmtx_unlock(&hmcf->shpool->mutex);

    out->family("levee_heartbeats_absorbed_total", "counter",
                "Beats answered 204 and stored for leveed.");
    out->sample("levee_heartbeats_absorbed_total", {}, h.c.beats);

    out->family("levee_heartbeats_coalesced_total", "counter",
                "Absorbed beats that updated a user already waiting to be "
                "flushed.");
    out->sample("levee_heartbeats_coalesced_total", {}, h.c.coalesced);

    out->family("levee_heartbeats_rejected_total", "counter",
                "Beats refused, by reason: full (no memory in the zone), "
                "backlog (too many users wait for leveed), bad_key.");
    out->sample("levee_heartbeats_rejected_total", {{"reason", "full"}},
                h.c.full);
    out->sample("levee_heartbeats_rejected_total", {{"reason", "backlog"}},
                h.c.backlog);
    out->sample("levee_heartbeats_rejected_total", {{"reason", "bad_key"}},
                h.c.bad_key);

    out->family("levee_heartbeat_records_sent_total", "counter",
                "Presence records sent to leveed, resends included.");
    out->sample("levee_heartbeat_records_sent_total", {}, h.c.sent);

    out->family("levee_heartbeat_records_flushed_total", "counter",
                "Presence records leveed acknowledged.");
    out->sample("levee_heartbeat_records_flushed_total", {}, h.c.acked);

    out->family("levee_heartbeat_records_resent_total", "counter",
                "Records sent again: a refused batch, a lost link, a dead "
                "worker, a timeout.");
    out->sample("levee_heartbeat_records_resent_total", {}, h.c.requeued);

    out->family("levee_heartbeat_batches_total", "counter",
                "Batches of presence records sent to leveed.");
    out->sample("levee_heartbeat_batches_total", {}, h.c.batches);

    out->family("levee_heartbeat_users", "gauge",
                "Users held in the heartbeat zone.");
    out->sample("levee_heartbeat_users", {}, h.count);

    out->family("levee_heartbeat_backlog_users", "gauge",
                "Users whose last beat leveed has not acknowledged yet.");
    out->sample("levee_heartbeat_backlog_users", {}, h.dirty);

    out->family("levee_heartbeat_shm_used_bytes", "gauge",
                "Bytes of the heartbeat zone's table in use.");
    out->sample("levee_heartbeat_shm_used_bytes", {}, h.bytes);

    out->family("levee_heartbeat_shm_size_bytes", "gauge",
                "Size of the heartbeat zone.");
    out->sample("levee_heartbeat_shm_size_bytes", {}, (uint64_t) hmcf->size);

    b = ngx_levee_status_block;
    if (b == NULL) {
        return;
    }

    out->family("levee_heartbeat_flush_batch_records", "histogram",
                "Records in each heartbeat batch sent to leveed.");
    levee::status::write_histogram(*out, "levee_heartbeat_flush_batch_records",
                                   {},
                                   {b->batch_buckets,
                                    levee::status::kBatchBounds,
                                    levee::status::kBatchBuckets,
                                    levee::status::load(b->batch_count),
                                    (double) levee::status::load(
                                                 b->batch_records)});
}
