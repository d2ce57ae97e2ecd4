/*
 * What levee_status shows of limit zones: each zone counts its decisions
 * and keys in its own shared memory, so every worker's requests are there.
 */

#include "ngx_http_levee_limit.h"
#include "status/ngx_http_levee_status.h"


static const char  *ngx_http_levee_limit_outcome_names[] = {
    "passed", "delayed", "rejected", "dry_run", "unavailable"
};


void
ngx_http_levee_limit_status(ngx_http_request_t *r, levee::status::PromText *out)
{
    ngx_uint_t                         i, o, n;
    std::string_view                   name;
    ngx_http_levee_limit_zone_t      **zones, *z;
    ngx_http_levee_limit_main_conf_t  *lmcf;

    using levee::status::load;

    static_assert(sizeof(ngx_http_levee_limit_outcome_names)
                  / sizeof(ngx_http_levee_limit_outcome_names[0])
                  == levee::limit::kOutcomes, "a name for every outcome");

    lmcf = (ngx_http_levee_limit_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_levee_limit_module);

    if (lmcf == NULL || lmcf->zones.nelts == 0) {
        return;
    }

    zones = (ngx_http_levee_limit_zone_t **) lmcf->zones.elts;
    n = lmcf->zones.nelts;

#define zone_name(z)  std::string_view((const char *) (z)->name.data, (z)->name.len)

    out->family("levee_limit_requests_total", "counter",
                "Requests a zone decided, by outcome: passed, delayed, "
                "rejected, dry_run (would have been delayed or rejected), "
                "unavailable (the global count was away: levee_limit_fail "
                "decided).");
    for (i = 0; i < n; i++) {
        z = zones[i];
        name = zone_name(z);
        for (o = 0; o < levee::limit::kOutcomes; o++) {
            out->sample("levee_limit_requests_total",
                        {{"zone", name},
                         {"outcome", ngx_http_levee_limit_outcome_names[o]}},
                        load(z->sh->outcomes[o]));
        }
    }

    out->family("levee_limit_first_lease_waits_total", "counter",
                "Requests that waited for a global key's first lease.");
    for (i = 0; i < n; i++) {
        out->sample("levee_limit_first_lease_waits_total",
                    {{"zone", zone_name(zones[i])}},
                    load(zones[i]->sh->first_lease_waits));
    }

    out->family("levee_limit_new_keys_over_budget_total", "counter",
                "New keys past the zone's new_keys budget, decided by the one "
                "overflow entry they share instead of an entry each.");
    for (i = 0; i < n; i++) {
        out->sample("levee_limit_new_keys_over_budget_total",
                    {{"zone", zone_name(zones[i])}},
                    load(zones[i]->sh->new_keys_over_budget));
    }

    out->family("levee_limit_long_keys_total", "counter",
                "Keys longer than the zone's max_key, by action: hash "
                "(replaced by their SHA-256) or refuse.");
    for (i = 0; i < n; i++) {
        z = zones[i];
        name = zone_name(z);
        out->sample("levee_limit_long_keys_total", {{"zone", name}, {"action", "hash"}},
                    load(z->sh->long_keys[(int) levee::limit::LongKey::kHash]));
        out->sample("levee_limit_long_keys_total", {{"zone", name}, {"action", "refuse"}},
                    load(z->sh->long_keys[(int) levee::limit::LongKey::kRefuse]));
    }

    out->family("levee_limit_keys", "gauge", "Keys held in the zone.");
    for (i = 0; i < n; i++) {
        out->sample("levee_limit_keys", {{"zone", zone_name(zones[i])}},
                    load(zones[i]->sh->count));
    }

    out->family("levee_limit_evictions_total", "counter",
                "Keys dropped to make room while their state still "
                "mattered: the zone is too small.");
    for (i = 0; i < n; i++) {
        out->sample("levee_limit_evictions_total",
                    {{"zone", zone_name(zones[i])}},
                    load(zones[i]->sh->evictions));
    }

    out->family("levee_limit_shm_used_bytes", "gauge",
                "Bytes of the zone's shared memory in use (whole pages).");
    for (i = 0; i < n; i++) {
        z = zones[i];
        out->sample("levee_limit_shm_used_bytes", {{"zone", zone_name(z)}},
                    (uint64_t) (z->shm_zone->shm.size
                                - z->shpool->pfree * ngx_pagesize));
    }

    out->family("levee_limit_shm_size_bytes", "gauge",
                "Size of the zone's shared memory.");
    for (i = 0; i < n; i++) {
        out->sample("levee_limit_shm_size_bytes",
                    {{"zone", zone_name(zones[i])}},
                    (uint64_t) zones[i]->shm_zone->shm.size);
    }

#undef zone_name
}
