/*
 * levee_status: one page in the Prometheus text format with what every
 * worker counted, read from shared memory, so that any worker answering a
 * scrape gives the whole instance. The limit and heartbeat zones keep their
 * own counters; the link to leveed, sticky picks, the sticky registry and
 * heartbeat batch sizes are counted in the levee_status zone, which exists
 * only when some location has levee_status.
 */

#include <new>

#include "ngx_http_levee_status.h"
#include "ngx_http_levee_module.h"


#define NGX_HTTP_LEVEE_STATUS_ZONE_SIZE  (128 * 1024)


typedef struct {
    ngx_str_t                    upstream;
    ngx_str_t                    server;
} ngx_http_levee_status_server_t;


typedef struct {
    ngx_shm_zone_t              *shm_zone;
    ngx_array_t                  servers;   /* ngx_http_levee_status_server_t */
} ngx_http_levee_status_main_conf_t;


static void *ngx_http_levee_status_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_levee_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_levee_status_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_levee_status_handler(ngx_http_request_t *r);
static void ngx_http_levee_status_write(ngx_http_request_t *r,
    levee::status::PromText *out);
static void ngx_http_levee_status_write_sticky(
    ngx_http_levee_status_main_conf_t *smcf, levee::status::Block *b,
    levee::status::PromText *out);


levee::status::Block  *ngx_levee_status_block;


/* each worker's link counters, one family each, labelled by worker */
typedef struct {
    const char                          *name;
    const char                          *type;
    const char                          *help;
    uint64_t levee::status::LinkCounters::*field;
} ngx_http_levee_status_link_family_t;


static const ngx_http_levee_status_link_family_t
    ngx_http_levee_status_link_families[] = {
    { "levee_sidecar_link_up", "gauge",
      "1 while leveed has accepted the worker's hello.",
      &levee::status::LinkCounters::up },
    { "levee_sidecar_connects_total", "counter",
      "Links to leveed established (hello accepted); more than one per "
      "worker means reconnects.",
      &levee::status::LinkCounters::connects },
    { "levee_sidecar_disconnects_total", "counter",
      "Established links to leveed that were lost.",
      &levee::status::LinkCounters::losses },
    { "levee_sidecar_frames_sent_total", "counter",
      "Frames sent to leveed.",
      &levee::status::LinkCounters::frames_sent },
    { "levee_sidecar_frames_received_total", "counter",
      "Frames received from leveed.",
      &levee::status::LinkCounters::frames_received },
    { NULL, NULL, NULL, NULL }
};


static ngx_command_t  ngx_http_levee_status_commands[] = {

    { ngx_string("levee_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_levee_status,
      0,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_levee_status_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_http_levee_status_create_main_conf, /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


extern "C" {

ngx_module_t  ngx_http_levee_status_module = {
    NGX_MODULE_V1,
    &ngx_http_levee_status_module_ctx,     /* module context */
    ngx_http_levee_status_commands,        /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};

}


static void *
ngx_http_levee_status_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_levee_status_main_conf_t  *smcf;

    smcf = (ngx_http_levee_status_main_conf_t *)
               ngx_pcalloc(cf->pool, sizeof(ngx_http_levee_status_main_conf_t));
    if (smcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&smcf->servers, cf->pool, 16,
                       sizeof(ngx_http_levee_status_server_t))
        != NGX_OK)
    {
        return NULL;
    }

    /* a configuration without levee_status counts nothing in the zone */
    ngx_levee_status_block = NULL;

    return smcf;
}


static char *
ngx_http_levee_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t                           name = ngx_string("levee_status");
    ngx_http_core_loc_conf_t           *clcf;
    ngx_http_levee_status_main_conf_t  *smcf;

    smcf = (ngx_http_levee_status_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_levee_status_module);

    if (smcf->shm_zone == NULL) {
        smcf->shm_zone = ngx_shared_memory_add(cf, &name,
                                               NGX_HTTP_LEVEE_STATUS_ZONE_SIZE,
                                               &ngx_http_levee_status_module);
        if (smcf->shm_zone == NULL) {
            return (char *) NGX_CONF_ERROR;
        }

        smcf->shm_zone->init = ngx_http_levee_status_init_zone;
        smcf->shm_zone->data = smcf;
    }

    clcf = (ngx_http_core_loc_conf_t *)
               ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_levee_status_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_levee_status_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t       *shpool;
    levee::status::Block  *block;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data != NULL || shm_zone->shm.exists) {
        /* a reload keeps counting where the old configuration left off */
        block = (levee::status::Block *) shpool->data;

        if (block->magic == levee::status::kBlockMagic) {
            ngx_levee_status_block = block;
            return NGX_OK;
        }
    }

    block = (levee::status::Block *)
                ngx_slab_calloc(shpool, sizeof(levee::status::Block));
    if (block == NULL) {
        return NGX_ERROR;
    }

    block->magic = levee::status::kBlockMagic;
    shpool->data = block;
    ngx_levee_status_block = block;

    return NGX_OK;
}


ngx_uint_t
ngx_http_levee_status_add_servers(ngx_conf_t *cf, ngx_str_t *upstream,
    ngx_http_upstream_rr_peers_t *peers)
{
    ngx_uint_t                          first;
    ngx_http_upstream_rr_peer_t        *peer;
    ngx_http_levee_status_server_t     *s;
    ngx_http_levee_status_main_conf_t  *smcf;

    smcf = (ngx_http_levee_status_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf,
                                                  ngx_http_levee_status_module);

    first = smcf->servers.nelts;

    if (first + peers->number > levee::status::kMaxStickyServers) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "levee_status counts the picks of at most %uz "
                           "sticky servers: those of upstream \"%V\" are "
                           "not counted",
                           levee::status::kMaxStickyServers, upstream);
        return NGX_CONF_UNSET_UINT;
    }

    for (peer = peers->peer; peer; peer = peer->next) {
        s = (ngx_http_levee_status_server_t *) ngx_array_push(&smcf->servers);
        if (s == NULL) {
            return NGX_CONF_UNSET_UINT;
        }

        s->upstream = *upstream;
        s->server = peer->name;
    }

    return first;
}


void
ngx_http_levee_status_count_pick(ngx_uint_t index)
{
    if (ngx_levee_status_block != NULL
        && index < levee::status::kMaxStickyServers)
    {
        levee::status::add(ngx_levee_status_block->sticky_picks[index]);
    }
}


static ngx_int_t
ngx_http_levee_status_handler(ngx_http_request_t *r)
{
    size_t        len;
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    try {
        levee::status::PromText  text;

        ngx_http_levee_status_write(r, &text);

        len = text.text().size();

        b = ngx_create_temp_buf(r->pool, len ? len : 1);
        if (b == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        b->last = ngx_cpymem(b->pos, text.text().data(), len);

    } catch (const std::bad_alloc &) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "levee_status: out of memory");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static void
ngx_http_levee_status_write(ngx_http_request_t *r, levee::status::PromText *out)
{
    char                                worker[NGX_INT_T_LEN + 1];
    ngx_uint_t                          i, n;
    ngx_core_conf_t                    *ccf;
    levee::status::Block               *b;
    const ngx_http_levee_status_link_family_t  *f;
    ngx_http_levee_main_conf_t         *lmcf;
    ngx_http_levee_status_main_conf_t  *smcf;

    using levee::status::load;

    out->family("levee_build_info", "gauge",
                "Always 1; the labels say which module nginx runs.");
    out->sample("levee_build_info", {{"version", NGX_HTTP_LEVEE_VERSION},
                                     {"nginx_version", NGINX_VERSION}},
                (uint64_t) 1);

    ngx_http_levee_limit_status(r, out);
    ngx_http_levee_heartbeat_status(r, out);

    b = ngx_levee_status_block;
    if (b == NULL) {
        return;
    }

    smcf = (ngx_http_levee_status_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_levee_status_module);

    if (smcf->servers.nelts) {
        ngx_http_levee_status_write_sticky(smcf, b, out);
    }

    lmcf = (ngx_http_levee_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_levee_module);

    if (!lmcf->sidecar_set) {
        return;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(ngx_cycle->conf_ctx,
                                           ngx_core_module);
    n = ngx_min((ngx_uint_t) ccf->worker_processes,
                levee::status::kMaxWorkers);

    for (f = ngx_http_levee_status_link_families; f->name; f++) {
        out->family(f->name, f->type, f->help);

        for (i = 0; i < n; i++) {
            ngx_sprintf((u_char *) worker, "%ui%Z", i);
            out->sample(f->name, {{"worker", worker}}, load(b->link[i].*f->field));
        }
    }
}


static void
ngx_http_levee_status_write_sticky(ngx_http_levee_status_main_conf_t *smcf,
    levee::status::Block *b, levee::status::PromText *out)
{
    ngx_uint_t                       i;
    ngx_http_levee_status_server_t  *s;

    using levee::status::load;

    s = (ngx_http_levee_status_server_t *) smcf->servers.elts;

    out->family("levee_sticky_picks_total", "counter",
                "Requests sent to each server by levee_sticky.");

    for (i = 0; i < smcf->servers.nelts; i++) {
        out->sample("levee_sticky_picks_total",
                    {{"upstream", {(const char *) s[i].upstream.data,
                                   s[i].upstream.len}},
                     {"server", {(const char *) s[i].server.data,
                                 s[i].server.len}}},
                    load(b->sticky_picks[i]));
    }

    out->family("levee_sticky_registry_records_total", "counter",
                "Connections recorded for levee_sticky_registry, by result: "
                "added (a new key in the buffer, a miss), updated (a key "
                "already waiting, a hit), full and oversized (dropped).");
    out->sample("levee_sticky_registry_records_total", {{"result", "added"}},
                load(b->registry[levee::status::kRegistryAdded]));
    out->sample("levee_sticky_registry_records_total", {{"result", "updated"}},
                load(b->registry[levee::status::kRegistryUpdated]));
    out->sample("levee_sticky_registry_records_total", {{"result", "full"}},
                load(b->registry[levee::status::kRegistryFull]));
    out->sample("levee_sticky_registry_records_total", {{"result", "oversized"}},
                load(b->registry[levee::status::kRegistryOversized]));
}
