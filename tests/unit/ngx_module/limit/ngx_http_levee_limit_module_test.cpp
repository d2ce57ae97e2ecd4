/*
 * levee_limit_zone and levee_limit as nginx reads them, and the
 * postconfiguration that checks them against levee_sidecar.
 */

#include "conf_harness.h"

#include <string>


static void
zone_gets_its_shared_memory(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    assert_int_equal(levee_conf_directive(h, "levee_limit_zone one key=$binary_remote_addr "
                                             "rate=10r/s"), NGX_OK);
    assert_int_equal(levee_conf_directive(h, "levee_limit_zone two key=$host rate=1r/m "
                                             "size=1m burst=3"), NGX_OK);

    assert_int_equal(levee_message_count(), 0);
    assert_int_equal(levee_shm_count(), 2);

    ngx_shm_zone_t *one = levee_shm_zone(0), *two = levee_shm_zone(1);
    assert_string_equal(std::string((char *) one->shm.name.data, one->shm.name.len).c_str(),
                        "levee_limit:one");
    assert_int_equal(one->shm.size, 16 * 1024 * 1024);
    assert_ptr_equal(one->tag, &ngx_http_levee_limit_module);
    assert_non_null(one->init);
    assert_string_equal(std::string((char *) two->shm.name.data, two->shm.name.len).c_str(),
                        "levee_limit:two");
    assert_int_equal(two->shm.size, 1024 * 1024);
}


/*
 * A global zone warns when its burst is below what the rate refills in one
 * sync interval, and names that number: rate, unit and sync as the zone
 * understood them. 10 requests a second for 1 s is 11 (one more for the
 * rounding), above the 6 that burst=5 holds.
 */
static void
rate_units_scale_to_the_same_rate(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    static const char *rates[] = { "10r/s", "600r/m", "36000r/h", "864000r/d" };
    ngx_uint_t         n = 0;

    for (const char *rate : rates) {
        std::string line = "levee_limit_zone z" + std::to_string(n++) + " key=$uri rate=" + rate
                           + " burst=5 scope=global sync=1s";
        std::string warning = "levee_limit_zone \"z" + std::to_string(n - 1) + "\": burst=5 is "
                              "below what the rate refills in one sync interval (11); global "
                              "admission will stay under the rate";

        assert_int_equal(levee_conf_directive(h, line.c_str()), NGX_OK);
        assert_string_equal(levee_last_message(), warning.c_str());
        assert_int_equal(levee_last_level(), NGX_LOG_WARN);
    }

    /* a burst that holds one interval's refill is not warned about */
    assert_int_equal(levee_conf_directive(h, "levee_limit_zone full key=$uri rate=10r/s "
                                             "burst=10 scope=global sync=1s"), NGX_OK);
    assert_int_equal(levee_message_count(), 4);
}


static void
zone_rate_errors_name_the_supported_range(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    levee_conf_fails(h, "levee_limit_zone one key=$uri rate=1000001r/s",
                     "invalid rate \"rate=1000001r/s\": the supported rates are 1r/d to "
                     "1000000r/s");
    levee_conf_fails(h, "levee_limit_zone one key=$uri rate=0r/m",
                     "invalid rate \"rate=0r/m\": the supported rates are 1r/d to 1000000r/s");
    levee_conf_fails(h, "levee_limit_zone one key=$uri rate=5r/w",
                     "invalid rate \"rate=5r/w\": the unit must be r/s, r/m, r/h or r/d");
    levee_conf_fails(h, "levee_limit_zone one key=$uri rate=fast",
                     "invalid rate \"rate=fast\": expected a rate like \"100r/s\", \"1000r/m\", "
                     "\"500r/h\" or \"100r/d\"");

    /* the bucket may not outlast a year: 1001 requests at 1 a day */
    levee_conf_fails(h, "levee_limit_zone one key=$uri rate=1r/d burst=1000",
                     "levee_limit_zone \"one\": the bucket, (burst + 1) / rate, would span more "
                     "than 365 days, the most a zone supports; lower burst or raise the rate");

    assert_int_equal(levee_shm_count(), 0);
}


static void
zone_parameter_errors(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    levee_conf_fails(h, "levee_limit_zone one rate=1r/s",
                     "levee_limit_zone \"one\" needs key= and rate=");
    levee_conf_fails(h, "levee_limit_zone one key=$uri",
                     "levee_limit_zone \"one\" needs key= and rate=");
    levee_conf_fails(h, "levee_limit_zone one key= rate=1r/s", "invalid parameter \"key=\"");
    levee_conf_fails(h, "levee_limit_zone one key=$uri rate=1r/s burst=many",
                     "invalid burst \"burst=many\": a number is expected");
    levee_conf_fails(h, "levee_limit_zone one key=$uri rate=1r/s burst=1000001",
                     "invalid burst \"burst=1000001\": the number is too large");
    levee_conf_fails(h, "levee_limit_zone one key=$uri rate=1r/s size=lots",
                     "invalid parameter \"size=lots\"");
    levee_conf_fails(h, "levee_limit_zone one key=$uri rate=1r/s size=16k",
                     "levee_limit_zone \"one\" is too small: \"size=16k\" leaves no room for one "
                     "key; the minimum is 32k");
    /* the table links its entries by 32-bit offsets into the zone */
    levee_conf_fails(h, "levee_limit_zone one key=$uri rate=1r/s size=4096m",
                     "levee_limit_zone \"one\" is too large: \"size=4096m\" is beyond what the "
                     "table's 32-bit offsets address; the size is from 32k to 4095m");
    levee_conf_fails(h, "levee_limit_zone one key=$uri rate=1r/s size=4194304k",
                     "levee_limit_zone \"one\" is too large: \"size=4194304k\" is beyond what the "
                     "table's 32-bit offsets address; the size is from 32k to 4095m");
    levee_conf_fails(h, "levee_limit_zone "
                        "n123456789n123456789n123456789n123456789n123456789n123456789n123456789"
                        "n123456789n123456789n123456789n123456789n123456789n123456789n123456789"
                        "n123456789n123456789n123456789n123456789n123456789n123456789n123456789"
                        "n123456789n123456789n123456789n123456789n123456 key=$uri rate=1r/s",
                     "levee_limit_zone name \""
                     "n123456789n123456789n123456789n123456789n123456789n123456789n123456789"
                     "n123456789n123456789n123456789n123456789n123456789n123456789n123456789"
                     "n123456789n123456789n123456789n123456789n123456789n123456789n123456789"
                     "n123456789n123456789n123456789n123456789n123456\" is longer than 256 bytes");
    levee_conf_fails(h, "levee_limit_zone one key=$uri rate=1r/s sync=0",
                     "invalid parameter \"sync=0\"");
    levee_conf_fails(h, "levee_limit_zone one key=$uri rate=1r/s scope=planet",
                     "invalid parameter \"scope=planet\"");
    levee_conf_fails(h, "levee_limit_zone one",
                     "invalid number of arguments in \"levee_limit_zone\" directive");
    /* an entry's key length is 16 bits */
    levee_conf_fails(h, "levee_limit_zone one key=$uri rate=1r/s max_key=0",
                     "invalid max_key \"max_key=0\": the longest key kept is from 1 to 65535 "
                     "bytes");
    levee_conf_fails(h, "levee_limit_zone one key=$uri rate=1r/s max_key=64k",
                     "invalid max_key \"max_key=64k\": the longest key kept is from 1 to 65535 "
                     "bytes");
    levee_conf_fails(h, "levee_limit_zone one key=$uri rate=1r/s max_key=long",
                     "invalid max_key \"max_key=long\": the longest key kept is from 1 to 65535 "
                     "bytes");
    levee_conf_fails(h, "levee_limit_zone one key=$uri rate=1r/s long_key=truncate",
                     "invalid parameter \"long_key=truncate\"");
    levee_conf_fails(h, "levee_limit_zone one key=$uri rate=1r/s new_keys=many",
                     "invalid new_keys \"new_keys=many\": expected a rate like \"100r/s\", "
                     "\"1000r/m\", \"500r/h\" or \"100r/d\"");
    levee_conf_fails(h, "levee_limit_zone one key=$uri rate=1r/s new_keys=0r/s",
                     "invalid new_keys \"new_keys=0r/s\": the supported rates are 1r/d to "
                     "1000000r/s");

    assert_int_equal(levee_shm_count(), 0);
    assert_int_equal(levee_conf_directive(h, "levee_limit_zone one key=$uri rate=1r/s "
                                             "size=32k"), NGX_OK);
    assert_int_equal(levee_conf_directive(h, "levee_limit_zone two key=$uri rate=1r/s "
                                             "max_key=1 long_key=refuse new_keys=1r/d"), NGX_OK);
    assert_int_equal(levee_conf_directive(h, "levee_limit_zone three key=$uri rate=1r/s "
                                             "max_key=65535 long_key=hash new_keys=1000000r/s"),
                     NGX_OK);
}


static void
zone_declared_twice_says_where_first(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    assert_int_equal(levee_conf_directive(h, "levee_limit_zone api key=$uri rate=1r/s"), NGX_OK);
    assert_int_equal(levee_conf_directive(h, "levee_limit_zone web key=$uri rate=1r/s"), NGX_OK);
    levee_conf_fails(h, "levee_limit_zone api key=$host rate=5r/s",
                     "levee_limit_zone \"api\" is already declared in " LEVEE_TEST_CONF_FILE ":1");

    levee_conf_location(h);
    levee_conf_fails(h, "levee_limit_zone other key=$uri rate=1r/s",
                     "\"levee_limit_zone\" directive is not allowed here");
}


static void
limit_parameters(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    assert_int_equal(levee_conf_directive(h, "levee_limit_zone a key=$uri rate=10r/s"), NGX_OK);
    assert_int_equal(levee_conf_directive(h, "levee_limit_zone b key=$uri rate=10r/s"), NGX_OK);
    assert_int_equal(levee_conf_directive(h, "levee_limit_zone c key=$uri rate=10r/s"), NGX_OK);

    levee_conf_location(h);
    assert_int_equal(levee_conf_directive(h, "levee_limit a burst=20 delay=5 dry_run"), NGX_OK);
    assert_int_equal(levee_conf_directive(h, "levee_limit b nodelay"), NGX_OK);
    assert_int_equal(levee_conf_directive(h, "levee_limit c"), NGX_OK);
    assert_int_equal(levee_message_count(), 0);

    levee_conf_fails(h, "levee_limit a", "\"levee_limit\" directive is duplicate");

    levee_conf_location(h);
    levee_conf_fails(h, "levee_limit a burst=", "invalid burst \"burst=\": a number is expected");
    levee_conf_location(h);
    levee_conf_fails(h, "levee_limit a delay=-1",
                     "invalid delay \"delay=-1\": a number is expected");
    levee_conf_location(h);
    levee_conf_fails(h, "levee_limit a delay=1 delay=2", "invalid delay \"delay=2\"");
    levee_conf_location(h);
    levee_conf_fails(h, "levee_limit a nodelay delay=2", "invalid delay \"delay=2\"");
    levee_conf_location(h);
    levee_conf_fails(h, "levee_limit a delay=2 nodelay", "invalid parameter \"nodelay\"");
    levee_conf_location(h);
    levee_conf_fails(h, "levee_limit a slowly", "invalid parameter \"slowly\"");
}


static void
limit_needs_a_declared_zone(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    levee_conf_location(h);
    levee_conf_fails(h, "levee_limit api",
                     "unknown levee_limit_zone \"api\" (zones are declared with levee_limit_zone "
                     "before they are used)");
    levee_conf_fails(h, "levee_limit", "invalid number of arguments in \"levee_limit\" directive");
}


static void
limit_burst_keeps_the_bucket_under_a_year(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    assert_int_equal(levee_conf_directive(h, "levee_limit_zone slow key=$uri rate=1r/d"), NGX_OK);

    levee_conf_location(h);
    assert_int_equal(levee_conf_directive(h, "levee_limit slow burst=364"), NGX_OK);
    levee_conf_location(h);
    levee_conf_fails(h, "levee_limit slow burst=365",
                     "levee_limit \"slow\": the bucket, (burst + 1) / rate, would span more than "
                     "365 days, the most a zone supports; lower burst or raise the rate");
}


static void
global_zone_refuses_a_location_burst(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;
    const char   *refused = "levee_limit \"g\": burst= and delay= are set on the "
                            "levee_limit_zone of a scope=global zone, whose bucket in Redis "
                            "every nginx shares";

    assert_int_equal(levee_conf_directive(h, "levee_limit_zone g key=$uri rate=100r/s burst=50 "
                                             "scope=global"), NGX_OK);

    levee_conf_location(h);
    levee_conf_fails(h, "levee_limit g burst=10", refused);
    levee_conf_location(h);
    levee_conf_fails(h, "levee_limit g delay=10", refused);

    levee_conf_location(h);
    assert_int_equal(levee_conf_directive(h, "levee_limit g nodelay dry_run"), NGX_OK);
}


static void
global_zone_needs_levee_sidecar(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    assert_int_equal(levee_conf_directive(h, "levee_limit_zone local key=$uri rate=1r/s"), NGX_OK);
    assert_int_equal(levee_conf_directive(h, "levee_limit_zone g key=$uri rate=1r/s "
                                             "scope=global"), NGX_OK);

    assert_int_equal(levee_conf_postconfiguration(h), NGX_ERROR);
    assert_string_equal(levee_last_message(),
                        "levee_limit_zone \"g\" has scope=global, which needs levee_sidecar in "
                        "the http block, in " LEVEE_TEST_CONF_FILE ":2");
    assert_int_equal(levee_last_level(), NGX_LOG_EMERG);
}


static void
postconfiguration_puts_the_handler_first(void **state)
{
    levee_conf_t               *h = (levee_conf_t *) *state;
    ngx_array_t                *handlers;
    ngx_http_handler_pt        *hp, other;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = (ngx_http_core_main_conf_t *) levee_conf_main(h, &ngx_http_core_module);
    handlers = &cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers;

    /* a handler a built-in module added earlier */
    other = (ngx_http_handler_pt) 0x1;
    *(ngx_http_handler_pt *) ngx_array_push(handlers) = other;

    /* levee_sidecar may follow the zones: the check waits for the block's end */
    assert_int_equal(levee_conf_directive(h, "levee_limit_zone g key=$uri rate=1r/s "
                                             "scope=global"), NGX_OK);
    assert_int_equal(levee_conf_directive(h, "levee_sidecar unix:/run/leveed.sock"), NGX_OK);

    ngx_http_top_header_filter = NULL;
    assert_int_equal(levee_conf_postconfiguration(h), NGX_OK);

    /* nginx runs a phase's handlers last to first: first is after the others */
    assert_int_equal(handlers->nelts, 2);
    hp = (ngx_http_handler_pt *) handlers->elts;
    assert_ptr_not_equal(hp[0], other);
    assert_ptr_equal(hp[1], other);
    assert_non_null(ngx_http_top_header_filter);
    assert_int_equal(levee_message_count(), 0);
}


/*
 * The access handler as nginx calls it: a location without levee_limit, and
 * a subrequest (limits apply to the main request only, as limit_req's), are
 * let through without a look at any zone.
 */
static void
handler_lets_unlimited_requests_through(void **state)
{
    levee_conf_t               *h = (levee_conf_t *) *state;
    ngx_http_handler_pt         handler;
    ngx_http_request_t         *r, *sr;
    ngx_http_core_main_conf_t  *cmcf;

    assert_int_equal(levee_conf_directive(h, "levee_limit_zone one key=$uri rate=1r/s"), NGX_OK);
    assert_int_equal(levee_conf_postconfiguration(h), NGX_OK);

    cmcf = (ngx_http_core_main_conf_t *) levee_conf_main(h, &ngx_http_core_module);
    handler = ((ngx_http_handler_pt *) cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers.elts)[0];

    levee_conf_location(h);
    r = levee_conf_request(h);
    assert_int_equal(handler(r), NGX_DECLINED);
    assert_null(r->ctx[ngx_http_levee_limit_module.ctx_index]);

    levee_conf_location(h);
    assert_int_equal(levee_conf_directive(h, "levee_limit one"), NGX_OK);
    r = levee_conf_request(h);
    sr = levee_conf_request(h);
    sr->main = r;
    assert_int_equal(handler(sr), NGX_DECLINED);
    assert_null(sr->ctx[ngx_http_levee_limit_module.ctx_index]);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        levee_conf_test(zone_gets_its_shared_memory),
        levee_conf_test(rate_units_scale_to_the_same_rate),
        levee_conf_test(zone_rate_errors_name_the_supported_range),
        levee_conf_test(zone_parameter_errors),
        levee_conf_test(zone_declared_twice_says_where_first),
        levee_conf_test(limit_parameters),
        levee_conf_test(limit_needs_a_declared_zone),
        levee_conf_test(limit_burst_keeps_the_bucket_under_a_year),
        levee_conf_test(global_zone_refuses_a_location_burst),
        levee_conf_test(global_zone_needs_levee_sidecar),
        levee_conf_test(postconfiguration_puts_the_handler_first),
        levee_conf_test(handler_lets_unlimited_requests_through),
    };

    return cmocka_run_group_tests_name("ngx_http_levee_limit_module", tests, NULL, NULL);
}
