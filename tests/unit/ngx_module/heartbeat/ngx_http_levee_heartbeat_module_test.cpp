/*
 * levee_heartbeat_zone, levee_heartbeat and levee_presence as nginx reads
 * them, and the postconfiguration that sizes the presence table.
 */

#include "conf_harness.h"

#include <string>


static ngx_http_handler_pt
location_handler(levee_conf_t *h)
{
    return ((ngx_http_core_loc_conf_t *) levee_conf_loc(h, &ngx_http_core_module))->handler;
}


static void
zone_size_is_checked(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;
    const char   *range = "invalid levee_heartbeat_zone size \"%s\": from 64k to 4095m";

    for (const char *size : { "size=32k", "size=4096m", "size=1g", "size=big", "size=" }) {
        char  message[128];

        snprintf(message, sizeof(message), range, size);
        levee_conf_fails(h, ("levee_heartbeat_zone " + std::string(size)).c_str(), message);
    }

    levee_conf_fails(h, "levee_heartbeat_zone size=1m backlog=0",
                     "invalid parameter \"backlog=0\"");
    levee_conf_fails(h, "levee_heartbeat_zone size=1m shards=4",
                     "invalid parameter \"shards=4\"");
    levee_conf_fails(h, "levee_heartbeat_zone",
                     "invalid number of arguments in \"levee_heartbeat_zone\" directive");

    assert_int_equal(levee_conf_directive(h, "levee_heartbeat_zone size=4095m backlog=100"),
                     NGX_OK);
    assert_int_equal(h->file.line, 9);
    levee_conf_fails(h, "levee_heartbeat_zone size=1m",
                     "levee_heartbeat_zone is duplicate (first declared at " LEVEE_TEST_CONF_FILE
                     ":9; one zone serves every location of the http block)");
}


static void
heartbeat_sets_the_location_handler(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    levee_conf_fails(h, "levee_heartbeat key=$arg_user",
                     "\"levee_heartbeat\" directive is not allowed here");

    levee_conf_location(h);
    assert_null(location_handler(h));
    assert_int_equal(levee_conf_directive(h, "levee_heartbeat key=$arg_user room=$arg_room "
                                             "ttl=3m interval=30s interval_max=90s flush=100ms"),
                     NGX_OK);
    assert_non_null(location_handler(h));
    assert_int_equal(levee_message_count(), 1);     /* the refusal in http{} */

    levee_conf_fails(h, "levee_heartbeat key=$arg_user",
                     "\"levee_heartbeat\" directive is duplicate");
}


static void
heartbeat_parameter_errors(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    static const struct {
        const char  *line;
        const char  *message;
    } cases[] = {
        { "levee_heartbeat room=$arg_room", "levee_heartbeat needs key=$variable" },
        { "levee_heartbeat key=", "invalid parameter \"key=\"" },
        { "levee_heartbeat key=$a ttl=soon", "invalid time in \"ttl=soon\"" },
        { "levee_heartbeat key=$a interval=0", "invalid time in \"interval=0\"" },
        { "levee_heartbeat key=$a flush=", "invalid time in \"flush=\"" },
        { "levee_heartbeat key=$a every=1s", "invalid parameter \"every=1s\"" },
        { "levee_heartbeat key=$a interval=60s interval_max=30s",
          "levee_heartbeat: interval_max is shorter than interval" },
    };

    for (const auto &c : cases) {
        levee_conf_location(h);
        levee_conf_fails(h, c.line, c.message);
    }
}


static void
heartbeat_warns_of_a_ttl_within_the_interval(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    levee_conf_location(h);
    assert_int_equal(levee_conf_directive(h, "levee_heartbeat key=$a ttl=60s interval=60s"),
                     NGX_OK);
    assert_string_equal(levee_last_message(), "levee_heartbeat: a ttl not longer than the "
                                              "interval shows users offline between two beats");
    assert_int_equal(levee_last_level(), NGX_LOG_WARN);

    /* interval_max defaults to at least the interval */
    levee_conf_location(h);
    assert_int_equal(levee_conf_directive(h, "levee_heartbeat key=$a ttl=10m interval=5m"),
                     NGX_OK);
    assert_int_equal(levee_message_count(), 1);
}


static void
heartbeat_ttls_are_bounded(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    /* a ttl already in use takes no new slot */
    for (int i = 0; i < 3; i++) {
        levee_conf_location(h);
        assert_int_equal(levee_conf_directive(h, "levee_heartbeat key=$a ttl=180s"), NGX_OK);
    }

    for (int s = 2; s <= 16; s++) {
        std::string line = "levee_heartbeat key=$a interval=1s ttl=" + std::to_string(s) + "s";
        levee_conf_location(h);
        assert_int_equal(levee_conf_directive(h, line.c_str()), NGX_OK);
    }

    levee_conf_location(h);
    levee_conf_fails(h, "levee_heartbeat key=$a interval=1s ttl=17s",
                     "levee_heartbeat: at most 16 different ttl values");
}


static void
presence_sets_the_location_handler(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    levee_conf_location(h);
    assert_int_equal(levee_conf_directive(h, "levee_presence"), NGX_OK);
    ngx_http_handler_pt presence = location_handler(h);
    assert_non_null(presence);
    levee_conf_fails(h, "levee_presence", "\"levee_presence\" directive is duplicate");

    levee_conf_location(h);
    assert_int_equal(levee_conf_directive(h, "levee_presence timeout=250ms"), NGX_OK);
    assert_ptr_equal(location_handler(h), presence);

    levee_conf_location(h);
    assert_int_equal(levee_conf_directive(h, "levee_heartbeat key=$a"), NGX_OK);
    assert_ptr_not_equal(location_handler(h), presence);

    levee_conf_location(h);
    levee_conf_fails(h, "levee_presence timeout=0", "invalid time in \"timeout=0\"");
    levee_conf_location(h);
    levee_conf_fails(h, "levee_presence wait=1s", "invalid parameter \"wait=1s\"");
    levee_conf_location(h);
    levee_conf_fails(h, "levee_presence timeout=1s timeout=2s",
                     "invalid number of arguments in \"levee_presence\" directive");
}


/* Without leveed a beat would be answered 204 and never sent on. */
static void
heartbeat_needs_levee_sidecar(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    levee_conf_location(h);
    assert_int_equal(levee_conf_directive(h, "levee_presence"), NGX_OK);         /* line 1 */
    levee_conf_location(h);
    assert_int_equal(levee_conf_directive(h, "levee_heartbeat key=$a"), NGX_OK);

    assert_int_equal(levee_conf_postconfiguration(h), NGX_ERROR);
    assert_string_equal(levee_last_message(), "levee_presence needs levee_sidecar in the http "
                                              "block in " LEVEE_TEST_CONF_FILE ":1");
    assert_int_equal(levee_last_level(), NGX_LOG_EMERG);
    assert_int_equal(levee_shm_count(), 0);
}


static void
postconfiguration_makes_the_table_only_when_used(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    assert_int_equal(levee_conf_directive(h, "levee_heartbeat_zone size=1m"), NGX_OK);
    assert_int_equal(levee_conf_postconfiguration(h), NGX_OK);
    assert_int_equal(levee_shm_count(), 0);

    assert_int_equal(levee_conf_directive(h, "levee_sidecar unix:/run/leveed.sock"), NGX_OK);
    levee_conf_location(h);
    assert_int_equal(levee_conf_directive(h, "levee_presence"), NGX_OK);
    assert_int_equal(levee_conf_postconfiguration(h), NGX_OK);

    assert_int_equal(levee_shm_count(), 1);
    ngx_shm_zone_t *zone = levee_shm_zone(0);
    assert_string_equal(std::string((char *) zone->shm.name.data, zone->shm.name.len).c_str(),
                        "levee_presence");
    assert_int_equal(zone->shm.size, 1024 * 1024);
    assert_ptr_equal(zone->tag, &ngx_http_levee_heartbeat_module);
    assert_non_null(zone->init);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        levee_conf_test(zone_size_is_checked),
        levee_conf_test(heartbeat_sets_the_location_handler),
        levee_conf_test(heartbeat_parameter_errors),
        levee_conf_test(heartbeat_warns_of_a_ttl_within_the_interval),
        levee_conf_test(heartbeat_ttls_are_bounded),
        levee_conf_test(presence_sets_the_location_handler),
        levee_conf_test(heartbeat_needs_levee_sidecar),
        levee_conf_test(postconfiguration_makes_the_table_only_when_used),
    };

    return cmocka_run_group_tests_name("ngx_http_levee_heartbeat_module", tests, NULL, NULL);
}
