/*
 * ngx_http_levee_module: distributed rate limits, sticky hashing and
 * heartbeat absorption at the edge. This file holds the directive table and
 * the module's life cycle; each capability lives in its own folder.
 */

#include "ngx_http_levee_module.h"
#include "ngx_levee_link.h"


static void *ngx_http_levee_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_levee_sidecar(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_levee_init_process(ngx_cycle_t *cycle);
static void ngx_http_levee_exit_process(ngx_cycle_t *cycle);


static ngx_command_t  ngx_http_levee_commands[] = {

    { ngx_string("levee_sidecar"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_levee_sidecar,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_levee_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_http_levee_create_main_conf,       /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


extern "C" {

ngx_module_t  ngx_http_levee_module = {
    NGX_MODULE_V1,
    &ngx_http_levee_module_ctx,            /* module context */
    ngx_http_levee_commands,               /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_levee_init_process,           /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_levee_exit_process,           /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};

}


static void *
ngx_http_levee_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_levee_main_conf_t  *lmcf;

    lmcf = (ngx_http_levee_main_conf_t *) ngx_pcalloc(cf->pool, sizeof(ngx_http_levee_main_conf_t));
    if (lmcf == NULL) {
        return NULL;
    }

    return lmcf;
}


/* levee_sidecar unix:/path/to/leveed.sock; */
static char *
ngx_http_levee_sidecar(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_levee_main_conf_t *lmcf = (ngx_http_levee_main_conf_t *) conf;

    ngx_str_t   *value;
    const char  *err;

    if (lmcf->sidecar_set) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;

    err = levee::link::parse_sidecar_url((const char *) value[1].data, value[1].len,
                                  (char *) lmcf->sidecar_path);
    if (err != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid levee_sidecar address \"%V\": %s",
                           &value[1], err);
        return (char *) NGX_CONF_ERROR;
    }

    lmcf->sidecar_set = 1;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_levee_conf_msec(ngx_str_t *arg, const char *name, ngx_msec_t min,
    ngx_msec_t max, ngx_msec_t *ms, ngx_str_t *time)
{
    size_t     len;
    ngx_int_t  t;
    ngx_str_t  v;

    len = ngx_strlen(name);

    if (arg->len < len || ngx_strncmp(arg->data, name, len) != 0) {
        return NGX_DECLINED;
    }

    v.data = arg->data + len;
    v.len = arg->len - len;

    if (time != NULL) {
        *time = v;
    }

    t = ngx_parse_time(&v, 0);
    if (t == NGX_ERROR || (ngx_msec_t) t < min || (ngx_msec_t) t > max) {
        return NGX_ERROR;
    }

    *ms = (ngx_msec_t) t;

    return NGX_OK;
}


ngx_int_t
ngx_http_levee_add_handler_last(ngx_conf_t *cf, ngx_http_phases phase,
    ngx_http_handler_pt handler)
{
    ngx_array_t                *handlers;
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = (ngx_http_core_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    handlers = &cmcf->phases[phase].handlers;

    if (ngx_array_push(handlers) == NULL) {
        return NGX_ERROR;
    }

    h = (ngx_http_handler_pt *) handlers->elts;

    ngx_memmove(&h[1], &h[0], (handlers->nelts - 1) * sizeof(ngx_http_handler_pt));
    h[0] = handler;

    return NGX_OK;
}


ngx_shm_zone_t *
ngx_http_levee_replaced_zone(ngx_shm_zone_t *shm_zone)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_shm_zone_t   *zones;

    /* in ngx_init_cycle(), ngx_cycle is still the running (old) cycle */
    part = &((ngx_cycle_t *) ngx_cycle)->shared_memory.part;
    zones = (ngx_shm_zone_t *) part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            zones = (ngx_shm_zone_t *) part->elts;
            i = 0;
        }

        if (zones[i].tag == shm_zone->tag
            && zones[i].shm.name.len == shm_zone->shm.name.len
            && ngx_strncmp(zones[i].shm.name.data, shm_zone->shm.name.data,
                           shm_zone->shm.name.len) == 0
            && zones[i].shm.addr != shm_zone->shm.addr)
        {
            return &zones[i];
        }
    }
}


static ngx_int_t
ngx_http_levee_init_process(ngx_cycle_t *cycle)
{
    ngx_http_levee_main_conf_t  *lmcf;

    if (ngx_process != NGX_PROCESS_WORKER && ngx_process != NGX_PROCESS_SINGLE) {
        return NGX_OK;
    }

    lmcf = (ngx_http_levee_main_conf_t *)
               ngx_http_cycle_get_module_main_conf(cycle, ngx_http_levee_module);
    if (lmcf == NULL || !lmcf->sidecar_set) {
        return NGX_OK;
    }

    return ngx_levee_link_start(cycle, (const char *) lmcf->sidecar_path);
}


static void
ngx_http_levee_exit_process(ngx_cycle_t *cycle)
{
    ngx_levee_link_stop();
}


void
ngx_http_levee_zone_seed(ngx_log_t *log, levee::hash::Seed *seed)
{
    if (levee::hash::random_seed(seed)) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, log, ngx_errno,
                  "getrandom() failed, the levee zone's hash seed comes "
                  "from random()");

    seed->k0 = ((uint64_t) ngx_random() << 32) ^ (uint64_t) ngx_random();
    seed->k1 = ((uint64_t) ngx_random() << 32) ^ (uint64_t) ngx_random();
}
