/* ngx_http_levee_module: shared declarations of the module's nginx glue. */
#ifndef NGX_HTTP_LEVEE_MODULE_H
#define NGX_HTTP_LEVEE_MODULE_H

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}

#include "core/hash/keyed_hash.hpp"
#include "core/link/sidecar_url.hpp"

#include "levee_version.h"

#define NGX_HTTP_LEVEE_VERSION LEVEE_VERSION

typedef struct {
    ngx_flag_t  sidecar_set;
    u_char      sidecar_path[levee::link::kSidecarPathMax + 1];
} ngx_http_levee_main_conf_t;

extern "C" ngx_module_t ngx_http_levee_module;

/*
 * Reads `arg` as the directive parameter "NAME=TIME" (`name` includes the
 * '='): NGX_DECLINED when arg is another parameter; NGX_ERROR when TIME is
 * not a time from `min` to `max` milliseconds; else NGX_OK with it in *ms.
 * `time`, when not NULL, gets the TIME part for the caller's message: each
 * directive says what was wrong in its own words.
 */
ngx_int_t ngx_http_levee_conf_msec(ngx_str_t *arg, const char *name,
    ngx_msec_t min, ngx_msec_t max, ngx_msec_t *ms, ngx_str_t *time);

/*
 * Adds a handler to a phase so that it runs after every handler already
 * there. nginx runs a phase's handlers from the last added to the first, and
 * a dynamic module's postconfiguration comes after every built-in module's:
 * pushed at the end, a handler would run before realip's location-level
 * handler and see the proxy's address. Put at the front, it sees what
 * realip, set, map and the rewrite module produced, as limit_req does.
 */
ngx_int_t ngx_http_levee_add_handler_last(ngx_conf_t *cf,
    ngx_http_phases phase, ngx_http_handler_pt handler);

/*
 * From a zone's init handler called with no old data: the zone of the
 * running configuration that this one replaces because its size changed
 * (nginx then gives a new, empty zone), or NULL (first start, a new zone).
 * The old zone is still mapped in the master while the new cycle starts.
 */
ngx_shm_zone_t *ngx_http_levee_replaced_zone(ngx_shm_zone_t *shm_zone);

/*
 * The secret seed of a new zone's hash table, from the kernel's CSPRNG; if
 * that fails (no getrandom(2)), from random(3), with a warning: a weak seed
 * still spreads keys, it only lets a patient client guess chains.
 */
void ngx_http_levee_zone_seed(ngx_log_t *log, levee::hash::Seed *seed);

#endif
