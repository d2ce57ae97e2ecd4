/*
 * Fakes of the nginx functions the glue calls while nginx reads its
 * configuration. They follow nginx's documented behaviour only as far as the
 * glue relies on it; whatever else the glue reaches fails the test
 * (nginx_unreached.c).
 */

#include "nginx_stubs.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>


extern "C" {

/* nginx's globals that the glue names */
volatile ngx_cycle_t               *ngx_cycle;
volatile ngx_msec_t                 ngx_current_msec;
volatile ngx_time_t                *ngx_cached_time;
ngx_uint_t                          ngx_process;
ngx_uint_t                          ngx_worker;
ngx_pid_t                           ngx_pid;
ngx_uint_t                          ngx_exiting;
sig_atomic_t                        ngx_quit;
sig_atomic_t                        ngx_terminate;
ngx_uint_t                          ngx_pagesize = 4096;
ngx_rbtree_t                        ngx_event_timer_rbtree;
ngx_queue_t                         ngx_posted_events;
ngx_http_output_header_filter_pt    ngx_http_top_header_filter;
ngx_module_t                        ngx_core_module;
ngx_module_t                        ngx_http_module;
ngx_module_t                        ngx_http_core_module;
ngx_module_t                        ngx_http_upstream_module;

}


namespace {

/* Everything the pools handed out, freed by levee_stubs_reset(). */
std::vector<void *>            allocations;
std::vector<ngx_shm_zone_t *>  shm_zones;
std::string                    last_message;
ngx_uint_t                     last_level;
ngx_uint_t                     message_count;


void *
track(void *p)
{
    if (p == NULL) {
        fail_msg("out of memory");
    }
    allocations.push_back(p);
    return p;
}


void
append_number(std::string &out, unsigned long long v, bool negative, bool hex)
{
    char  buf[32];

    snprintf(buf, sizeof(buf), hex ? "%s%llx" : "%s%llu", negative ? "-" : "", v);
    out += buf;
}


/* the next argument, of the type the conversion names */
#define NGX_FAKE_ARG(utype, stype)                                            \
    if (is_unsigned || hex) {                                                 \
        u = va_arg(args, utype);                                              \
    } else {                                                                  \
        s = va_arg(args, stype);                                              \
    }


/*
 * nginx's format: %V ngx_str_t *, %s, %*s, and integers named by their
 * type (%i ngx_int_t, %ui, %d int, %z ssize_t, %uz, %L int64_t, %uL,
 * %M ngx_msec_t, %l long, %ul, %T time_t); u is unsigned, x is hex.
 */
std::string
format(const char *fmt, va_list args)
{
    std::string  out;

    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            out += *p;
            continue;
        }

        bool  is_unsigned = false, hex = false, with_len = false;

        for (p++; *p == 'u' || *p == 'x' || *p == 'X' || *p == '*'; p++) {
            is_unsigned |= (*p == 'u');
            hex |= (*p == 'x' || *p == 'X');
            with_len |= (*p == '*');
        }

        long long           s = 0;
        unsigned long long  u = 0;
        bool                number = true;

        switch (*p) {
        case 'V': {
            ngx_str_t *v = va_arg(args, ngx_str_t *);
            out.append((const char *) v->data, v->len);
            number = false;
            break;
        }
        case 's': {
            size_t len = with_len ? va_arg(args, size_t) : 0;
            const char *v = va_arg(args, const char *);
            out.append(v, with_len ? len : strlen(v));
            number = false;
            break;
        }
        case 'c':
            out += (char) va_arg(args, int);
            number = false;
            break;
        case '%':
            out += '%';
            number = false;
            break;
        case 'd':
            NGX_FAKE_ARG(unsigned int, int);
            break;
        case 'i':
            NGX_FAKE_ARG(ngx_uint_t, ngx_int_t);
            break;
        case 'z':
            NGX_FAKE_ARG(size_t, ssize_t);
            break;
        case 'L':
            NGX_FAKE_ARG(uint64_t, int64_t);
            break;
        case 'l':
            NGX_FAKE_ARG(unsigned long, long);
            break;
        case 'M':
            u = va_arg(args, ngx_msec_t);
            is_unsigned = true;
            break;
        case 'T':
            s = va_arg(args, time_t);
            break;
        default:
            fail_msg("the fake nginx cannot format \"%%%c\" in \"%s\"", *p, fmt);
        }

        if (number) {
            if (is_unsigned || hex) {
                append_number(out, u, false, hex);
            } else {
                append_number(out, s < 0 ? 0ULL - (unsigned long long) s : (unsigned long long) s,
                              s < 0, false);
            }
        }
    }

    return out;
}


void
record(ngx_uint_t level, const char *fmt, va_list args)
{
    last_message = format(fmt, args);
    last_level = level;
    message_count++;
}


} // namespace


extern "C" {

void *
ngx_palloc(ngx_pool_t *pool, size_t size)
{
    /* not zeroed in nginx either: make a missed initialisation visible */
    return memset(track(malloc(size ? size : 1)), 0xa5, size);
}


void *
ngx_pnalloc(ngx_pool_t *pool, size_t size)
{
    return ngx_palloc(pool, size);
}


void *
ngx_pcalloc(ngx_pool_t *pool, size_t size)
{
    return track(calloc(1, size ? size : 1));
}


ngx_array_t *
ngx_array_create(ngx_pool_t *p, ngx_uint_t n, size_t size)
{
    ngx_array_t *a = (ngx_array_t *) ngx_palloc(p, sizeof(ngx_array_t));

    if (ngx_array_init(a, p, n, size) != NGX_OK) {
        return NULL;
    }

    return a;
}


void *
ngx_array_push(ngx_array_t *a)
{
    if (a->nelts == a->nalloc) {
        void *elts = ngx_palloc(a->pool, 2 * a->nalloc * a->size);
        memcpy(elts, a->elts, a->nelts * a->size);
        a->elts = elts;
        a->nalloc *= 2;
    }

    return (u_char *) a->elts + a->size * a->nelts++;
}


ngx_int_t
ngx_atoi(u_char *line, size_t n)
{
    ngx_int_t  value = 0;

    if (n == 0) {
        return NGX_ERROR;
    }

    for (size_t i = 0; i < n; i++) {
        if (line[i] < '0' || line[i] > '9' || value > (NGX_MAX_INT_T_VALUE - 9) / 10) {
            return NGX_ERROR;
        }
        value = value * 10 + (line[i] - '0');
    }

    return value;
}


/* "512", "64k", "16m": bytes (nginx's sizes have no larger unit) */
ssize_t
ngx_parse_size(ngx_str_t *line)
{
    ngx_str_t  digits = *line;
    ssize_t    scale = 1;

    if (digits.len > 0) {
        switch (digits.data[digits.len - 1]) {
        case 'k': case 'K': scale = 1024; digits.len--; break;
        case 'm': case 'M': scale = 1024 * 1024; digits.len--; break;
        }
    }

    ngx_int_t n = ngx_atoi(digits.data, digits.len);
    if (n == NGX_ERROR || n > NGX_MAX_SIZE_T_VALUE / scale) {
        return NGX_ERROR;
    }

    return n * scale;
}


/*
 * nginx's time syntax: "250ms", "10s", "1h 30m"; units y M w d h m s ms from
 * the most significant to the least, a number without one is seconds. In
 * milliseconds, or seconds (no "ms") when is_sec.
 */
ngx_int_t
ngx_parse_time(ngx_str_t *line, ngx_uint_t is_sec)
{
    static const struct { const char *unit; ngx_int_t ms; } units[] = {
        { "y", 365 * 86400000LL }, { "M", 30 * 86400000LL }, { "w", 7 * 86400000LL },
        { "d", 86400000 }, { "h", 3600000 }, { "ms", 1 }, { "m", 60000 }, { "s", 1000 },
    };

    u_char     *p = line->data, *end = line->data + line->len;
    ngx_int_t   total = 0, last = NGX_MAX_INT_T_VALUE;

    if (p == end) {
        return NGX_ERROR;
    }

    while (p < end) {
        ngx_int_t  n = 0, scale = 0;
        u_char    *start = p;

        while (p < end && *p >= '0' && *p <= '9') {
            n = n * 10 + (*p++ - '0');
            if (n > NGX_MAX_INT32_VALUE) {
                return NGX_ERROR;
            }
        }

        if (p == start) {
            return NGX_ERROR;
        }

        if (p == end) {
            scale = 1000;

        } else {
            for (const auto &u : units) {
                size_t ulen = strlen(u.unit);
                if ((size_t) (end - p) >= ulen && memcmp(p, u.unit, ulen) == 0) {
                    scale = u.ms;
                    p += ulen;
                    break;
                }
            }
        }

        if (scale == 0 || scale >= last || (is_sec && scale < 1000)) {
            return NGX_ERROR;
        }

        last = scale;
        total += n * scale;

        while (p < end && *p == ' ') {
            p++;
        }
    }

    return is_sec ? total / 1000 : total;
}


void ngx_cdecl
ngx_conf_log_error(ngx_uint_t level, ngx_conf_t *cf, ngx_err_t err, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    record(level, fmt, args);
    va_end(args);
}


void
ngx_log_error_core(ngx_uint_t level, ngx_log_t *log, ngx_err_t err, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    record(level, fmt, args);
    va_end(args);
}


ngx_shm_zone_t *
ngx_shared_memory_add(ngx_conf_t *cf, ngx_str_t *name, size_t size, void *tag)
{
    ngx_shm_zone_t *zone = (ngx_shm_zone_t *) ngx_pcalloc(cf->pool, sizeof(ngx_shm_zone_t));

    zone->shm.name = *name;
    zone->shm.size = size;
    zone->tag = tag;
    shm_zones.push_back(zone);

    return zone;
}


/*
 * Keeps the source text, and, as nginx, gives `lengths` only to a value
 * with a variable in it.
 */
ngx_int_t
ngx_http_compile_complex_value(ngx_http_compile_complex_value_t *ccv)
{
    static uintptr_t  script_end;

    ngx_memzero(ccv->complex_value, sizeof(ngx_http_complex_value_t));
    ccv->complex_value->value = *ccv->value;

    if (memchr(ccv->value->data, '$', ccv->value->len) != NULL) {
        ccv->complex_value->lengths = &script_end;
        ccv->complex_value->values = &script_end;
    }

    return NGX_OK;
}

}


void
levee_stubs_reset(void)
{
    for (void *p : allocations) {
        free(p);
    }
    allocations.clear();
    shm_zones.clear();
    last_message.clear();
    last_level = 0;
    message_count = 0;
}


const char *
levee_last_message(void)
{
    return last_message.c_str();
}


ngx_uint_t
levee_last_level(void)
{
    return last_level;
}


ngx_uint_t
levee_message_count(void)
{
    return message_count;
}


ngx_uint_t
levee_shm_count(void)
{
    return shm_zones.size();
}


ngx_shm_zone_t *
levee_shm_zone(ngx_uint_t i)
{
    assert_true(i < shm_zones.size());
    return shm_zones[i];
}
