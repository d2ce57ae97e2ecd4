/*
 * What nginx does around a module while it reads nginx.conf: the http block's
 * configurations, location and upstream blocks, a line run as
 * ngx_conf_handler() runs it, the postconfiguration handlers.
 */

#include "conf_harness.h"

#include <cstring>


namespace {

/* in the order of ngx_module_name in ngx_module/config */
ngx_module_t  *levee_modules[] = {
    &ngx_http_levee_module,
    &ngx_http_levee_sticky_module,
    &ngx_http_levee_limit_module,
    &ngx_http_levee_heartbeat_module,
    &ngx_http_levee_status_module,
    NULL
};


void
create_loc_confs(levee_conf_t *h)
{
    h->ctx.loc_conf = (void **) ngx_pcalloc(h->cf.pool, h->nmodules * sizeof(void *));
    h->ctx.loc_conf[0] = ngx_pcalloc(h->cf.pool, sizeof(ngx_http_core_loc_conf_t));

    for (ngx_uint_t i = LEVEE_CONF_BUILTIN; i < h->nmodules; i++) {
        ngx_http_module_t *m = (ngx_http_module_t *) h->modules[i]->ctx;
        if (m->create_loc_conf) {
            h->ctx.loc_conf[i] = m->create_loc_conf(&h->cf);
            assert_non_null(h->ctx.loc_conf[i]);
        }
    }
}


/* Whether `n` arguments (the name included) suit the directive's type. */
bool
arguments_fit(ngx_uint_t type, ngx_uint_t n)
{
    if (type & NGX_CONF_ANY) {
        return true;
    }
    if (type & NGX_CONF_FLAG) {
        return n == 2;
    }
    if (type & NGX_CONF_1MORE) {
        return n >= 2;
    }
    if (type & NGX_CONF_2MORE) {
        return n >= 3;
    }
    /* NGX_CONF_NOARGS is bit 0, NGX_CONF_TAKE1 bit 1, ... */
    return n <= NGX_CONF_MAX_ARGS && (type & (1u << (n - 1)));
}


void
create_srv_confs(levee_conf_t *h)
{
    h->ctx.srv_conf = (void **) ngx_pcalloc(h->cf.pool, h->nmodules * sizeof(void *));

    for (ngx_uint_t i = LEVEE_CONF_BUILTIN; i < h->nmodules; i++) {
        ngx_http_module_t *m = (ngx_http_module_t *) h->modules[i]->ctx;
        if (m->create_srv_conf) {
            h->ctx.srv_conf[i] = m->create_srv_conf(&h->cf);
            assert_non_null(h->ctx.srv_conf[i]);
        }
    }
}

} // namespace


void
levee_conf_init(levee_conf_t *h)
{
    ngx_module_t  **modules = levee_modules;

    ngx_memzero(h, sizeof(levee_conf_t));
    levee_stubs_reset();

    h->nmodules = LEVEE_CONF_BUILTIN;
    while (modules[h->nmodules - LEVEE_CONF_BUILTIN] != NULL) {
        h->nmodules++;
    }

    h->cf.pool = (ngx_pool_t *) ngx_pcalloc(NULL, sizeof(ngx_pool_t));
    h->cf.temp_pool = h->cf.pool;
    h->modules = (ngx_module_t **) ngx_pcalloc(h->cf.pool, h->nmodules * sizeof(ngx_module_t *));
    h->modules[0] = &ngx_http_core_module;
    h->modules[1] = &ngx_http_upstream_module;
    for (ngx_uint_t i = LEVEE_CONF_BUILTIN; i < h->nmodules; i++) {
        h->modules[i] = modules[i - LEVEE_CONF_BUILTIN];
    }
    for (ngx_uint_t i = 0; i < h->nmodules; i++) {
        h->modules[i]->ctx_index = i;
        h->modules[i]->index = i;
    }

    h->log.log_level = NGX_LOG_INFO;
    h->cycle.pool = h->cf.pool;
    h->cycle.log = &h->log;
    h->cycle.modules = h->modules;
    h->cycle.modules_n = h->nmodules;
    ngx_cycle = &h->cycle;

    h->file.file.name.data = (u_char *) LEVEE_TEST_CONF_FILE;
    h->file.file.name.len = sizeof(LEVEE_TEST_CONF_FILE) - 1;

    h->cf.args = ngx_array_create(h->cf.pool, NGX_CONF_MAX_ARGS, sizeof(ngx_str_t));
    h->cf.cycle = &h->cycle;
    h->cf.log = &h->log;
    h->cf.conf_file = &h->file;
    h->cf.ctx = &h->ctx;
    h->cf.module_type = NGX_HTTP_MODULE;
    h->cf.cmd_type = NGX_HTTP_MAIN_CONF;

    /* as ngx_http_block(): every module's main and srv conf, then loc */
    h->ctx.main_conf = (void **) ngx_pcalloc(h->cf.pool, h->nmodules * sizeof(void *));

    ngx_http_core_main_conf_t *cmcf = (ngx_http_core_main_conf_t *)
        ngx_pcalloc(h->cf.pool, sizeof(ngx_http_core_main_conf_t));
    for (ngx_uint_t p = 0; p <= NGX_HTTP_LOG_PHASE; p++) {
        assert_int_equal(ngx_array_init(&cmcf->phases[p].handlers, h->cf.pool, 1,
                                        sizeof(ngx_http_handler_pt)), NGX_OK);
    }
    h->ctx.main_conf[0] = cmcf;

    ngx_http_upstream_main_conf_t *umcf = (ngx_http_upstream_main_conf_t *)
        ngx_pcalloc(h->cf.pool, sizeof(ngx_http_upstream_main_conf_t));
    assert_int_equal(ngx_array_init(&umcf->upstreams, h->cf.pool, 4,
                                    sizeof(ngx_http_upstream_srv_conf_t *)), NGX_OK);
    h->ctx.main_conf[1] = umcf;

    for (ngx_uint_t i = LEVEE_CONF_BUILTIN; i < h->nmodules; i++) {
        ngx_http_module_t *m = (ngx_http_module_t *) h->modules[i]->ctx;
        if (m->create_main_conf) {
            h->ctx.main_conf[i] = m->create_main_conf(&h->cf);
            assert_non_null(h->ctx.main_conf[i]);
        }
    }

    create_srv_confs(h);
    create_loc_confs(h);
}


void
levee_conf_free(levee_conf_t *h)
{
    levee_stubs_reset();
    ngx_cycle = NULL;
    ngx_memzero(h, sizeof(levee_conf_t));
}


int
levee_conf_setup(void **state)
{
    static levee_conf_t  h;

    levee_conf_init(&h);
    *state = &h;

    return 0;
}


int
levee_conf_teardown(void **state)
{
    levee_conf_free((levee_conf_t *) *state);

    return 0;
}


void
levee_conf_location(levee_conf_t *h)
{
    h->cf.cmd_type = NGX_HTTP_LOC_CONF;
    create_loc_confs(h);
}


ngx_http_upstream_srv_conf_t *
levee_conf_upstream(levee_conf_t *h, const char *name)
{
    ngx_http_upstream_srv_conf_t   *uscf, **slot;
    ngx_http_upstream_main_conf_t  *umcf;

    h->file.line++;
    h->cf.cmd_type = NGX_HTTP_UPS_CONF;
    create_srv_confs(h);
    create_loc_confs(h);

    uscf = (ngx_http_upstream_srv_conf_t *)
               ngx_pcalloc(h->cf.pool, sizeof(ngx_http_upstream_srv_conf_t));
    uscf->host.data = (u_char *) name;
    uscf->host.len = strlen(name);
    uscf->file_name = h->file.file.name.data;
    uscf->line = h->file.line;
    uscf->srv_conf = h->ctx.srv_conf;
    h->ctx.srv_conf[1] = uscf;

    umcf = (ngx_http_upstream_main_conf_t *) h->ctx.main_conf[1];
    slot = (ngx_http_upstream_srv_conf_t **) ngx_array_push(&umcf->upstreams);
    *slot = uscf;

    return uscf;
}


ngx_int_t
levee_conf_directive(levee_conf_t *h, const char *line)
{
    ngx_str_t  *value;

    h->file.line++;
    h->cf.args->nelts = 0;

    for (const char *p = line; *p; ) {
        while (*p == ' ') {
            p++;
        }
        const char *start = p;
        while (*p && *p != ' ') {
            p++;
        }
        if (p == start) {
            break;
        }

        /* nginx ends every word with a NUL, past its len */
        value = (ngx_str_t *) ngx_array_push(h->cf.args);
        value->len = p - start;
        value->data = (u_char *) ngx_pnalloc(h->cf.pool, value->len + 1);
        ngx_memcpy(value->data, start, value->len);
        value->data[value->len] = '\0';
    }

    value = (ngx_str_t *) h->cf.args->elts;

    for (ngx_uint_t i = LEVEE_CONF_BUILTIN; i < h->nmodules; i++) {
        for (ngx_command_t *cmd = h->modules[i]->commands; cmd && cmd->name.len; cmd++) {
            if (cmd->name.len != value[0].len
                || ngx_strcmp(cmd->name.data, value[0].data) != 0)
            {
                continue;
            }

            if (!(cmd->type & h->cf.cmd_type)) {
                ngx_conf_log_error(NGX_LOG_EMERG, &h->cf, 0,
                                   "\"%s\" directive is not allowed here", value[0].data);
                return NGX_ERROR;
            }

            if (!arguments_fit(cmd->type, h->cf.args->nelts)) {
                ngx_conf_log_error(NGX_LOG_EMERG, &h->cf, 0,
                                   "invalid number of arguments in \"%s\" directive",
                                   value[0].data);
                return NGX_ERROR;
            }

            /* cmd->conf is the offset of main_conf, srv_conf or loc_conf */
            void **confs = *(void ***) ((char *) h->cf.ctx + cmd->conf);
            char  *rv = cmd->set(&h->cf, cmd, confs[h->modules[i]->ctx_index]);

            if (rv == NGX_CONF_OK) {
                return NGX_OK;
            }

            if (rv != NGX_CONF_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, &h->cf, 0, "\"%s\" directive %s",
                                   value[0].data, rv);
            }

            return NGX_ERROR;
        }
    }

    fail_msg("no module under test has the directive \"%s\"", (char *) value[0].data);
    return NGX_ERROR;
}


ngx_http_request_t *
levee_conf_request(levee_conf_t *h)
{
    ngx_http_request_t *r = (ngx_http_request_t *)
                                ngx_pcalloc(h->cf.pool, sizeof(ngx_http_request_t));

    r->pool = h->cf.pool;
    r->main = r;
    r->ctx = (void **) ngx_pcalloc(h->cf.pool, h->nmodules * sizeof(void *));
    r->main_conf = h->ctx.main_conf;
    r->srv_conf = h->ctx.srv_conf;
    r->loc_conf = h->ctx.loc_conf;

    return r;
}


ngx_int_t
levee_conf_postconfiguration(levee_conf_t *h)
{
    for (ngx_uint_t i = LEVEE_CONF_BUILTIN; i < h->nmodules; i++) {
        ngx_http_module_t *m = (ngx_http_module_t *) h->modules[i]->ctx;
        if (m->postconfiguration && m->postconfiguration(&h->cf) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


void *
levee_conf_main(levee_conf_t *h, ngx_module_t *module)
{
    return h->ctx.main_conf[module->ctx_index];
}


void *
levee_conf_loc(levee_conf_t *h, ngx_module_t *module)
{
    return h->ctx.loc_conf[module->ctx_index];
}
