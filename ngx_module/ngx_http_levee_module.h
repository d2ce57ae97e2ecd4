/* ngx_http_levee_module: shared declarations of the module's nginx glue. */
#ifndef NGX_HTTP_LEVEE_MODULE_H
#define NGX_HTTP_LEVEE_MODULE_H

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}

#include "sidecar_url.h"

#define NGX_HTTP_LEVEE_VERSION "0.1.0"

typedef struct {
    ngx_flag_t  sidecar_set;
    u_char      sidecar_path[LEVEE_SIDECAR_PATH_MAX + 1];
} ngx_http_levee_main_conf_t;

extern "C" ngx_module_t ngx_http_levee_module;

#endif
