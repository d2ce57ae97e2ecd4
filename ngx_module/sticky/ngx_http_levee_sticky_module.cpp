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
 * (core/sticky_chooser.hpp), built once per configuration from the peer
 * list. Per request: one hash of the key, table look-ups, and the round
 * robin peer state (down, max_fails/fail_timeout, max_conns, conns) read
 * under the upstream zone's read lock. In-flight counts for bounded_load are
 * nginx's own peer->conns: shared by all workers when the upstream has a
 * zone, per worker otherwise.
 */

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}

#include <new>
#include <string>
#include <vector>

#include "bounded_load.hpp"
#include "key_hash.hpp"
#include "sticky_chooser.hpp"


using levee::sticky::Method;
using levee::sticky::StickyChooser;
using levee::sticky::StickyServer;


/* choices of a key tried before the fixed-order scan of every server */
#define NGX_HTTP_LEVEE_STICKY_ATTEMPTS  20


typedef struct {
    StickyChooser                     *chooser;
    ngx_uint_t                         number;
    /* this worker's peers by chooser index, filled on first use (with a
     * zone the peers live in shared memory, not where they were at
     * configuration time) */
    ngx_http_upstream_rr_peer_t      **peer;
} ngx_http_levee_sticky_table_t;


typedef struct {
    ngx_http_complex_value_t           key;
    ngx_uint_t                         method;
    uint32_t                           bounded;   /* thousandths, 0: off */
    ngx_flag_t                         fallback;
    ngx_flag_t                         set;

    ngx_http_levee_sticky_table_t      primary;
    ngx_http_levee_sticky_table_t      backup;
    ngx_http_upstream_rr_peers_t      *peers;     /* what the tables map */
} ngx_http_levee_sticky_srv_conf_t;


typedef struct {
    /* the round robin data must be first */
    ngx_http_upstream_rr_peer_data_t   rrp;
    ngx_http_levee_sticky_srv_conf_t  *conf;
    uint64_t                           hash;
    ngx_flag_t                         in_backup;
} ngx_http_levee_sticky_peer_data_t;


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
static ngx_int_t ngx_http_levee_sticky_get_peer(ngx_peer_connection_t *pc,
    void *data);


static ngx_command_t  ngx_http_levee_sticky_commands[] = {

    { ngx_string("levee_sticky"),
      NGX_HTTP_UPS_CONF|NGX_CONF_1MORE,
      ngx_http_levee_sticky,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_levee_sticky_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

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
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};

}


static ngx_str_t  ngx_http_levee_sticky_methods[] = {
    ngx_string("maglev"),
    ngx_string("ketama"),
    ngx_string("rendezvous"),
    ngx_null_string
};


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

    ngx_str_t                         *value, v;
    ngx_uint_t                         i, m;
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

            for (m = 0; ngx_http_levee_sticky_methods[m].len; m++) {
                if (v.len == ngx_http_levee_sticky_methods[m].len
                    && ngx_strncmp(v.data, ngx_http_levee_sticky_methods[m].data,
                                   v.len) == 0)
                {
                    break;
                }
            }

            if (ngx_http_levee_sticky_methods[m].len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid levee_sticky method \"%V\": "
                                   "expected maglev, ketama or rendezvous",
                                   &v);
                return (char *) NGX_CONF_ERROR;
            }

            scf->method = m;
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
    uint32_t                           home;
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
        return ngx_http_upstream_get_round_robin_peer(pc, &sp->rrp);
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

        auto usable = [&](uint32_t idx, ngx_flag_t bounded) -> bool {
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

        if (scf->fallback) {
            chosen = levee::sticky::pick(*table->chooser, sp->hash,
                                         NGX_HTTP_LEVEE_STICKY_ATTEMPTS,
                                         [&](uint32_t idx) {
                                             return usable(idx, scf->bounded);
                                         });

            if (chosen < 0 && scf->bounded) {
                /* every server at its bound (only while counts race
                 * between workers): the key's own choice order wins */
                chosen = levee::sticky::pick(*table->chooser, sp->hash,
                                             NGX_HTTP_LEVEE_STICKY_ATTEMPTS,
                                             [&](uint32_t idx) {
                                                 return usable(idx, 0);
                                             });
            }

        } else {
            home = table->chooser->choose(sp->hash, 0);
            chosen = usable(home, 0) ? (int64_t) home : -1;
        }

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

    return NGX_OK;
}
