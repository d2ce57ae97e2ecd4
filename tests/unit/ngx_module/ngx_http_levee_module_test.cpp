/* levee_sidecar and the "NAME=TIME" parameter reader the capabilities share. */

#include "conf_harness.h"

#include "ngx_http_levee_module.h"



static ngx_http_levee_main_conf_t *
main_conf(void **state)
{
    return (ngx_http_levee_main_conf_t *)
               levee_conf_main((levee_conf_t *) *state, &ngx_http_levee_module);
}


static void
sidecar_sets_the_socket_path(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    assert_int_equal(levee_conf_directive(h, "levee_sidecar unix:/run/levee/leveed.sock"), NGX_OK);

    assert_true(main_conf(state)->sidecar_set);
    assert_string_equal((char *) main_conf(state)->sidecar_path, "/run/levee/leveed.sock");
    assert_int_equal(levee_message_count(), 0);
}


static void
sidecar_twice_is_duplicate(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    assert_int_equal(levee_conf_directive(h, "levee_sidecar unix:/run/a.sock"), NGX_OK);
    assert_int_equal(levee_conf_directive(h, "levee_sidecar unix:/run/b.sock"), NGX_ERROR);

    assert_string_equal(levee_last_message(), "\"levee_sidecar\" directive is duplicate");
    assert_string_equal((char *) main_conf(state)->sidecar_path, "/run/a.sock");
}


static void
sidecar_bad_addresses_say_why(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    static const struct {
        const char  *line;
        const char  *message;
    } cases[] = {
        { "levee_sidecar 127.0.0.1:7000",
          "invalid levee_sidecar address \"127.0.0.1:7000\": only unix domain sockets are "
          "supported, expected \"unix:/path/to/leveed.sock\"" },
        { "levee_sidecar unix:",
          "invalid levee_sidecar address \"unix:\": missing socket path after \"unix:\"" },
        { "levee_sidecar unix:run/leveed.sock",
          "invalid levee_sidecar address \"unix:run/leveed.sock\": socket path must be absolute" },
        { "levee_sidecar unix:/" "0123456789012345678901234567890123456789"
          "0123456789012345678901234567890123456789" "01234567890123456789012345678",
          "invalid levee_sidecar address \"unix:/" "0123456789012345678901234567890123456789"
          "0123456789012345678901234567890123456789" "01234567890123456789012345678\": "
          "socket path is longer than 107 bytes (the limit of sun_path)" },
    };

    for (const auto &c : cases) {
        assert_int_equal(levee_conf_directive(h, c.line), NGX_ERROR);
        assert_string_equal(levee_last_message(), c.message);
        assert_int_equal(levee_last_level(), NGX_LOG_EMERG);
        assert_false(main_conf(state)->sidecar_set);
    }
}


static void
sidecar_takes_one_address_in_http_only(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    assert_int_equal(levee_conf_directive(h, "levee_sidecar"), NGX_ERROR);
    assert_string_equal(levee_last_message(),
                        "invalid number of arguments in \"levee_sidecar\" directive");

    assert_int_equal(levee_conf_directive(h, "levee_sidecar unix:/a.sock unix:/b.sock"),
                     NGX_ERROR);
    assert_string_equal(levee_last_message(),
                        "invalid number of arguments in \"levee_sidecar\" directive");

    levee_conf_location(h);
    assert_int_equal(levee_conf_directive(h, "levee_sidecar unix:/a.sock"), NGX_ERROR);
    assert_string_equal(levee_last_message(), "\"levee_sidecar\" directive is not allowed here");
}


static ngx_int_t
conf_msec(const char *text, ngx_msec_t min, ngx_msec_t max, ngx_msec_t *ms, ngx_str_t *time)
{
    ngx_str_t  arg;

    arg.data = (u_char *) text;
    arg.len = strlen(text);

    return ngx_http_levee_conf_msec(&arg, "sync=", min, max, ms, time);
}


static void
conf_msec_reads_a_time_in_range(void **state)
{
    ngx_msec_t  ms = 0;
    ngx_str_t   time = ngx_null_string;

    assert_int_equal(conf_msec("sync=250ms", 1, 1000, &ms, &time), NGX_OK);
    assert_int_equal(ms, 250);
    assert_int_equal(time.len, 5);
    assert_memory_equal(time.data, "250ms", 5);

    assert_int_equal(conf_msec("sync=1s", 1, 1000, &ms, NULL), NGX_OK);
    assert_int_equal(ms, 1000);

    /* the bounds are included; no unit is seconds, as everywhere in nginx */
    assert_int_equal(conf_msec("sync=1ms", 1, 1000, &ms, NULL), NGX_OK);
    assert_int_equal(ms, 1);
    assert_int_equal(conf_msec("sync=1", 1, 1000, &ms, NULL), NGX_OK);
    assert_int_equal(ms, 1000);
}


static void
conf_msec_refuses_out_of_range_and_non_times(void **state)
{
    ngx_msec_t  ms = 7;
    ngx_str_t   time = ngx_null_string;

    assert_int_equal(conf_msec("sync=0", 1, 1000, &ms, NULL), NGX_ERROR);
    assert_int_equal(conf_msec("sync=1001ms", 1, 1000, &ms, NULL), NGX_ERROR);
    assert_int_equal(conf_msec("sync=2s", 1, 1000, &ms, NULL), NGX_ERROR);
    assert_int_equal(conf_msec("sync=2", 1, 1000, &ms, NULL), NGX_ERROR);
    assert_int_equal(conf_msec("sync=", 1, 1000, &ms, NULL), NGX_ERROR);

    /* the caller words its message with the TIME part */
    assert_int_equal(conf_msec("sync=fast", 1, 1000, &ms, &time), NGX_ERROR);
    assert_int_equal(time.len, 4);
    assert_memory_equal(time.data, "fast", 4);

    assert_int_equal(ms, 7);
}


static void
conf_msec_declines_other_parameters(void **state)
{
    ngx_msec_t  ms = 7;
    ngx_str_t   time = ngx_null_string;

    assert_int_equal(conf_msec("size=10m", 1, 1000, &ms, &time), NGX_DECLINED);
    assert_int_equal(conf_msec("sync", 1, 1000, &ms, &time), NGX_DECLINED);
    assert_int_equal(conf_msec("syn", 1, 1000, &ms, &time), NGX_DECLINED);
    assert_int_equal(conf_msec("", 1, 1000, &ms, &time), NGX_DECLINED);

    assert_int_equal(ms, 7);
    assert_null(time.data);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        levee_conf_test(sidecar_sets_the_socket_path),
        levee_conf_test(sidecar_twice_is_duplicate),
        levee_conf_test(sidecar_bad_addresses_say_why),
        levee_conf_test(sidecar_takes_one_address_in_http_only),
        cmocka_unit_test(conf_msec_reads_a_time_in_range),
        cmocka_unit_test(conf_msec_refuses_out_of_range_and_non_times),
        cmocka_unit_test(conf_msec_declines_other_parameters),
    };

    return cmocka_run_group_tests_name("ngx_http_levee_module", tests, NULL, NULL);
}
