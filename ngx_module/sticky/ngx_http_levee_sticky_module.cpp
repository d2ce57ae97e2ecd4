/*
 * ngx_http_levee_sticky_module: the levee_sticky upstream balancing method.
 *
 *     upstream ws {
 *         levee_sticky key=$cookie_uid [method=maglev|ketama|rendezvous]
 *                      [bounded_load=1.25] [fallback=next|off];
 *         server ...;
 *     }
 *
 * The choice of a server per key is made by the nginx-free core
 * (core/sticky/sticky_chooser.hpp), built once per configuration from the
 * peer list. Per request: one hash of the key, table look-ups, and the round
 * robin peer state (down, max_fails/fail_timeout, max_conns, conns) read
 * under the upstream zone's read lock. In-flight counts for bounded_load are
 * nginx's own peer->conns: shared by all workers when the upstream has a
 * zone, per worker otherwise.
 *
 *     levee_sticky_registry on [ttl=1h] [flush=500ms];
 *
 * records the server chosen for each key in the Redis Cluster, through
 * leveed, as `levee:registry:{KEY}` = "host:port" with the TTL: its directive is
 * parsed here, the recording and flushing live in
 * ngx_http_levee_sticky_registry.cpp.
 */

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}

#include <new>
#include <string>
#include <vector>

#include "core/sticky/bounded_load.hpp"
#include "core/sticky/key_hash.hpp"
#include "core/sticky/sticky_chooser.hpp"
#include "ngx_http_levee_module.h"
#include "ngx_http_levee_sticky.h"
#include "status/ngx_http_levee_status.h"


using levee::sticky::Method;
using levee::sticky::StickyChooser;
using levee::sticky::StickyServer;


/* choices of a key tried before the fixed-order scan of every server */
#define NGX_HTTP_LEVEE_STICKY_ATTEMPTS  20


static void *ngx_http_levee_sticky_create_conf(ngx_conf_t *cf);
static char *ngx_http_levee_sticky(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_levee_sticky_init(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_levee_sticky_build(ngx_conf_t *cf,
    ngx_http_levee_sticky_srv_conf_t *scf, ngx_http_upstream_rr_peers_t *peers,
    ngx_http_levee_sticky_table_t *table);
static void ngx_http_levee_sticky_cleanup(void *data);
static ngx_int_t ngx_http_levee_sticky_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static void ngx_http_levee_sticky_map_peers(
    ngx_http_levee_sticky_srv_conf_t *scf, ngx_http_upstream_rr_peers_t *peers);
static void ngx_http_levee_sticky_count_pick(
    ngx_http_levee_sticky_table_t *table, ngx_uint_t chosen);
static ngx_int_t ngx_http_levee_sticky_get_peer(ngx_peer_connection_t *pc,
    void *data);
static char *ngx_http_levee_sticky_registry(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);


static ngx_command_t  ngx_http_levee_sticky_commands[] = {

    { ngx_string("levee_sticky"),
      NGX_HTTP_UPS_CONF|NGX_CONF_1MORE,
      ngx_http_levee_sticky,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("levee_sticky_registry"),
      NGX_HTTP_UPS_CONF|NGX_CONF_1MORE,
      ngx_http_levee_sticky_registry,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_levee_sticky_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_levee_sticky_postconf,        /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    ngx_http_levee_sticky_create_conf,     /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


extern "C" {

ngx_module_t  ngx_http_levee_sticky_module = {
    NGX_MODULE_V1,
    &ngx_http_levee_sticky_module_ctx,     /* module context */
    ngx_http_levee_sticky_commands,        /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_levee_sticky_init_process,    /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_levee_sticky_exit_process,    /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};

}


static void *
ngx_http_levee_sticky_create_conf(ngx_conf_t *cf)
{
    ngx_http_levee_sticky_srv_conf_t  *scf;

    scf = (ngx_http_levee_sticky_srv_conf_t *)
              ngx_pcalloc(cf->pool, sizeof(ngx_http_levee_sticky_srv_conf_t));
    if (scf == NULL) {
        return NULL;
    }

    return scf;
}


/* levee_sticky key=$var [method=..] [bounded_load=F] [fallback=next|off]; */
static char *
ngx_http_levee_sticky(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_levee_sticky_srv_conf_t *scf =
                                     (ngx_http_levee_sticky_srv_conf_t *) conf;

    Method                             method;
    ngx_str_t                         *value, v;
    ngx_uint_t                         i;
    ngx_flag_t                         have_key, bounded_set, fallback_set;
    ngx_http_upstream_srv_conf_t      *uscf;
    ngx_http_compile_complex_value_t   ccv;

    if (scf->set) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;

    have_key = 0;
    bounded_set = 0;
    fallback_set = 0;
    scf->method = (ngx_uint_t) Method::kMaglev;
    scf->fallback = 1;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "key=", 4) == 0) {
            v.data = value[i].data + 4;
            v.len = value[i].len - 4;

            if (v.len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid levee_sticky key \"%V\": "
                                   "empty, expected e.g. key=$cookie_uid",
                                   &value[i]);
                return (char *) NGX_CONF_ERROR;
            }

            ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

            ccv.cf = cf;
            ccv.value = &v;
            ccv.complex_value = &scf->key;

            if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
                return (char *) NGX_CONF_ERROR;
            }

            /* a constant key would send every request to one server */
            if (scf->key.lengths == NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid levee_sticky key \"%V\": "
                                   "must contain a variable, e.g. "
                                   "key=$cookie_uid", &value[i]);
                return (char *) NGX_CONF_ERROR;
            }

            have_key = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "method=", 7) == 0) {
            v.data = value[i].data + 7;
            v.len = value[i].len - 7;

            if (!levee::sticky::parse_method((const char *) v.data, v.len,
                                             &method))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid levee_sticky method \"%V\": "
                                   "expected maglev, ketama or rendezvous",
                                   &v);
                return (char *) NGX_CONF_ERROR;
            }

            scf->method = (ngx_uint_t) method;
            continue;
        }

        if (ngx_strncmp(value[i].data, "bounded_load=", 13) == 0) {
            v.data = value[i].data + 13;
            v.len = value[i].len - 13;

            if (!levee::sticky::parse_load_factor((const char *) v.data, v.len,
                                                  &scf->bounded))
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid levee_sticky bounded_load \"%V\": "
                                   "expected a factor from 1 to 100 with at "
                                   "most 3 decimals, e.g. 1.25", &v);
                return (char *) NGX_CONF_ERROR;
            }

            bounded_set = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "fallback=", 9) == 0) {
            v.data = value[i].data + 9;
            v.len = value[i].len - 9;

            if (v.len == 4 && ngx_strncmp(v.data, "next", 4) == 0) {
                scf->fallback = 1;

            } else if (v.len == 3 && ngx_strncmp(v.data, "off", 3) == 0) {
                scf->fallback = 0;

            } else {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid levee_sticky fallback \"%V\": "
                                   "expected next or off", &v);
                return (char *) NGX_CONF_ERROR;
            }

            fallback_set = 1;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid levee_sticky parameter \"%V\"", &value[i]);
        return (char *) NGX_CONF_ERROR;
    }

    if (!have_key) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "levee_sticky needs key=, e.g. key=$cookie_uid");
        return (char *) NGX_CONF_ERROR;
    }

    /* a full server can only be avoided by going to the next choice */
    if (bounded_set && fallback_set && !scf->fallback) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "levee_sticky bounded_load needs fallback=next");
        return (char *) NGX_CONF_ERROR;
    }

    uscf = (ngx_http_upstream_srv_conf_t *)
               ngx_http_conf_get_module_srv_conf(cf, ngx_http_upstream_module);

    if (uscf->peer.init_upstream) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "load balancing method redefined");
    }

    uscf->peer.init_upstream = ngx_http_levee_sticky_init;

    uscf->flags = NGX_HTTP_UPSTREAM_CREATE
                  |NGX_HTTP_UPSTREAM_WEIGHT
                  |NGX_HTTP_UPSTREAM_MAX_CONNS
                  |NGX_HTTP_UPSTREAM_MAX_FAILS
                  |NGX_HTTP_UPSTREAM_FAIL_TIMEOUT
                  |NGX_HTTP_UPSTREAM_DOWN
                  |NGX_HTTP_UPSTREAM_BACKUP;

    scf->set = 1;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_levee_sticky_init(ngx_conf_t *cf, ngx_http_upstream_srv_conf_t *us)
{
    ngx_http_upstream_rr_peers_t      *peers;
    ngx_http_levee_sticky_srv_conf_t  *scf;

    if (ngx_http_upstream_init_round_robin(cf, us) != NGX_OK) {
        return NGX_ERROR;
    }

    us->peer.init = ngx_http_levee_sticky_init_peer;

    scf = (ngx_http_levee_sticky_srv_conf_t *)
              ngx_http_conf_upstream_srv_conf(us, ngx_http_levee_sticky_module);
    peers = (ngx_http_upstream_rr_peers_t *) us->peer.data;

    if (ngx_http_levee_sticky_build(cf, scf, peers, &scf->primary) != NGX_OK) {
        return NGX_ERROR;
    }

    if (peers->next
        && ngx_http_levee_sticky_build(cf, scf, peers->next, &scf->backup)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* Built once per configuration, in the master; workers inherit it. */
static ngx_int_t
ngx_http_levee_sticky_build(ngx_conf_t *cf,
    ngx_http_levee_sticky_srv_conf_t *scf, ngx_http_upstream_rr_peers_t *peers,
    ngx_http_levee_sticky_table_t *table)
{
    std::string                   err;
    ngx_pool_cleanup_t           *cln;
    ngx_http_upstream_rr_peer_t  *peer;

    table->number = peers->number;
    table->stat_base = ngx_http_levee_status_add_servers(cf, peers->name, peers);

    table->peer = (ngx_http_upstream_rr_peer_t **)
        ngx_pcalloc(cf->pool, peers->number * sizeof(ngx_http_upstream_rr_peer_t *));
    if (table->peer == NULL) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    try {
        std::vector<StickyServer>  servers;

        for (peer = peers->peer; peer; peer = peer->next) {
            servers.push_back({std::string((const char *) peer->name.data,
                                           peer->name.len),
                               (uint32_t) peer->weight});
        }

        table->chooser = levee::sticky::make_sticky_chooser(
                             (Method) scf->method, servers, &err).release();

    } catch (const std::bad_alloc &) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "levee_sticky: out of memory building the table");
        return NGX_ERROR;
    }

    if (table->chooser == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "levee_sticky in upstream \"%V\": %s",
                           peers->name, err.c_str());
        return NGX_ERROR;
    }

    cln->handler = ngx_http_levee_sticky_cleanup;
    cln->data = table->chooser;

    return NGX_OK;
}


static void
ngx_http_levee_sticky_cleanup(void *data)
{
    delete (StickyChooser *) data;
}


static ngx_int_t
ngx_http_levee_sticky_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_str_t                           key;
    ngx_http_levee_sticky_srv_conf_t   *scf;
    ngx_http_levee_sticky_peer_data_t  *sp;

    sp = (ngx_http_levee_sticky_peer_data_t *)
             ngx_palloc(r->pool, sizeof(ngx_http_levee_sticky_peer_data_t));
    if (sp == NULL) {
        return NGX_ERROR;
    }

    r->upstream->peer.data = &sp->rrp;

    if (ngx_http_upstream_init_round_robin_peer(r, us) != NGX_OK) {
        return NGX_ERROR;
    }

    scf = (ngx_http_levee_sticky_srv_conf_t *)
              ngx_http_conf_upstream_srv_conf(us, ngx_http_levee_sticky_module);

    if (ngx_http_complex_value(r, &scf->key, &key) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "levee sticky key:\"%V\"", &key);

    /* no key, no stickiness: plain round robin, as nginx's hash does */
    if (key.len == 0) {
        return NGX_OK;
    }

    if (scf->peers != sp->rrp.peers) {
        ngx_http_levee_sticky_map_peers(scf, sp->rrp.peers);
    }

    sp->conf = scf;
    sp->hash = levee::sticky::key_hash(key.data, key.len);
    sp->in_backup = 0;
    sp->key = key;

    r->upstream->peer.get = ngx_http_levee_sticky_get_peer;

    return NGX_OK;
}


/* Once per worker (and per zone change): chooser index -> this worker's peer. */
static void
ngx_http_levee_sticky_map_peers(ngx_http_levee_sticky_srv_conf_t *scf,
    ngx_http_upstream_rr_peers_t *peers)
{
    ngx_uint_t                    i;
    ngx_http_upstream_rr_peer_t  *peer;

    ngx_http_upstream_rr_peers_rlock(peers);

    for (peer = peers->peer, i = 0; peer && i < scf->primary.number;
         peer = peer->next, i++)
    {
        scf->primary.peer[i] = peer;
    }

    if (peers->next) {
        for (peer = peers->next->peer, i = 0; peer && i < scf->backup.number;
             peer = peer->next, i++)
        {
            scf->backup.peer[i] = peer;
        }
    }

    ngx_http_upstream_rr_peers_unlock(peers);

    scf->peers = peers;
}


static ngx_inline ngx_flag_t
ngx_http_levee_sticky_usable(ngx_http_upstream_rr_peer_t *peer, time_t now)
{
    if (peer->down) {
        return 0;
    }

    if (peer->max_fails
        && peer->fails >= peer->max_fails
        && now - peer->checked <= peer->fail_timeout)
    {
        return 0;
    }

    if (peer->max_conns && peer->conns >= peer->max_conns) {
        return 0;
    }

    return 1;
}


static ngx_int_t
ngx_http_levee_sticky_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_levee_sticky_peer_data_t *sp =
                                    (ngx_http_levee_sticky_peer_data_t *) data;

    time_t                             now;
    int64_t                            chosen;
    ngx_int_t                          rc;
    uintptr_t                          m;
    ngx_uint_t                         i, n, total, weight;
    ngx_http_upstream_rr_peer_t       *peer;
    ngx_http_upstream_rr_peers_t      *peers;
    ngx_http_levee_sticky_table_t     *table;
    ngx_http_levee_sticky_srv_conf_t  *scf;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                   "levee sticky get peer, try: %ui", pc->tries);

    scf = sp->conf;
    peers = sp->rrp.peers;

    if (peers->single) {
        rc = ngx_http_upstream_get_round_robin_peer(pc, &sp->rrp);

        if (rc == NGX_OK) {
            ngx_http_levee_sticky_count_pick(&scf->primary, 0);
            ngx_http_levee_sticky_record(sp, pc->name);
        }

        return rc;
    }

    pc->cached = 0;
    pc->connection = NULL;

    now = ngx_time();

    ngx_http_upstream_rr_peers_rlock(peers);

    for ( ;; ) {
        table = sp->in_backup ? &scf->backup : &scf->primary;

        /* bounded loads: in flight and weight of the servers that can
         * take requests now; one pass over the peers */
        total = 0;
        weight = 0;

        if (scf->bounded) {
            for (i = 0; i < table->number; i++) {
                peer = table->peer[i];

                if (ngx_http_levee_sticky_usable(peer, now)) {
                    total += peer->conns;
                    weight += peer->weight;
                }
            }
        }

        auto usable = [&](uint32_t idx, bool bounded) -> bool {
            ngx_http_upstream_rr_peer_t  *p = table->peer[idx];

            if (sp->rrp.tried[idx / (8 * sizeof(uintptr_t))]
                & ((uintptr_t) 1 << idx % (8 * sizeof(uintptr_t))))
            {
                return false;
            }

            if (!ngx_http_levee_sticky_usable(p, now)) {
                return false;
            }

            return !bounded
                   || p->conns + 1 <= levee::sticky::bounded_capacity(
                                          total, p->weight, weight,
                                          scf->bounded);
        };

        chosen = levee::sticky::pick_for_key(*table->chooser, sp->hash,
                                             NGX_HTTP_LEVEE_STICKY_ATTEMPTS,
                                             scf->fallback, scf->bounded != 0,
                                             usable);

        if (chosen >= 0) {
            break;
        }

        if (sp->in_backup || peers->next == NULL) {
            ngx_http_upstream_rr_peers_unlock(peers);
            pc->name = peers->name;
            return NGX_BUSY;
        }

        /* primary servers exhausted: the backup servers, by the same key */

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                       "levee sticky backup servers");

        ngx_http_upstream_rr_peers_unlock(peers);

        sp->in_backup = 1;
        sp->rrp.peers = peers->next;
        peers = sp->rrp.peers;

        n = (sp->rrp.peers->number + (8 * sizeof(uintptr_t) - 1))
            / (8 * sizeof(uintptr_t));

        for (i = 0; i < n; i++) {
            sp->rrp.tried[i] = 0;
        }

        ngx_http_upstream_rr_peers_rlock(peers);
    }

    peer = table->peer[chosen];

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                   "levee sticky peer:%L \"%V\"", chosen, &peer->name);

    ngx_http_upstream_rr_peer_lock(peers, peer);

    sp->rrp.current = peer;

    pc->sockaddr = peer->sockaddr;
    pc->socklen = peer->socklen;
    pc->name = &peer->name;

    peer->conns++;

    if (now - peer->checked > peer->fail_timeout) {
        peer->checked = now;
    }

    ngx_http_upstream_rr_peer_unlock(peers, peer);
    ngx_http_upstream_rr_peers_unlock(peers);

    m = (uintptr_t) 1 << chosen % (8 * sizeof(uintptr_t));
    sp->rrp.tried[chosen / (8 * sizeof(uintptr_t))] |= m;

    ngx_http_levee_sticky_count_pick(table, chosen);
    ngx_http_levee_sticky_record(sp, &peer->name);

    return NGX_OK;
}


static void
ngx_http_levee_sticky_count_pick(ngx_http_levee_sticky_table_t *table,
    ngx_uint_t chosen)
{
    if (table->stat_base != NGX_CONF_UNSET_UINT) {
        ngx_http_levee_status_count_pick(table->stat_base + chosen);
    }
}


/* levee_sticky_registry on [ttl=1h] [flush=500ms] | off; */
static char *
ngx_http_levee_sticky_registry(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_levee_sticky_srv_conf_t *scf =
                                     (ngx_http_levee_sticky_srv_conf_t *) conf;

    ngx_str_t   *value, v;
    ngx_int_t    rc;
    ngx_uint_t   i;

    if (scf->registry_set) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        if (cf->args->nelts > 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "levee_sticky_registry off takes no "
                               "parameters, \"%V\" given", &value[2]);
            return (char *) NGX_CONF_ERROR;
        }

        scf->registry_set = 1;
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "on") != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid levee_sticky_registry \"%V\": "
                           "expected on or off", &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    scf->registry = 1;
    scf->registry_ttl = 3600 * 1000;
    scf->registry_flush = 500;

    for (i = 2; i < cf->args->nelts; i++) {

        /* the TTL travels as uint32 milliseconds: at most 49 days */
        rc = ngx_http_levee_conf_msec(&value[i], "ttl=", 1000, 0x7fffffff,
                                      &scf->registry_ttl, &v);
        if (rc == NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid levee_sticky_registry ttl \"%V\": "
                               "expected a time from 1s to 24d, e.g. "
                               "ttl=1h", &v);
            return (char *) NGX_CONF_ERROR;
        }

        if (rc == NGX_OK) {
            continue;
        }

        rc = ngx_http_levee_conf_msec(&value[i], "flush=", 1, 60000,
                                      &scf->registry_flush, &v);
        if (rc == NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid levee_sticky_registry flush "
                               "\"%V\": expected a time from 1ms to 60s, "
                               "e.g. flush=500ms", &v);
            return (char *) NGX_CONF_ERROR;
        }

        if (rc == NGX_OK) {
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid levee_sticky_registry parameter \"%V\"",
                           &value[i]);
        return (char *) NGX_CONF_ERROR;
    }

    /* a record that expires before the next one lands leaves a gap */
    if (scf->registry_ttl < 2 * scf->registry_flush) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "levee_sticky_registry ttl must be at least twice "
                           "the flush interval");
        return (char *) NGX_CONF_ERROR;
    }

    scf->registry_set = 1;

    return NGX_CONF_OK;
}
