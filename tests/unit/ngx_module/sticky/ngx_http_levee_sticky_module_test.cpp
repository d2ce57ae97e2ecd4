/*
 * levee_sticky and levee_sticky_registry in upstream blocks as nginx reads
 * them, and the postconfiguration that checks the registry's needs.
 */

#include "conf_harness.h"


static void
sticky_becomes_the_upstream_balancer(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    levee_conf_fails(h, "levee_sticky key=$cookie_uid",
                     "\"levee_sticky\" directive is not allowed here");

    ngx_http_upstream_srv_conf_t *uscf = levee_conf_upstream(h, "backend");
    assert_int_equal(levee_conf_directive(h, "levee_sticky key=$cookie_uid method=ketama "
                                             "bounded_load=1.25 fallback=next"), NGX_OK);

    assert_non_null(uscf->peer.init_upstream);
    /* the server parameters round robin understands stay allowed */
    assert_int_equal(uscf->flags, NGX_HTTP_UPSTREAM_CREATE | NGX_HTTP_UPSTREAM_WEIGHT
                                  | NGX_HTTP_UPSTREAM_MAX_CONNS | NGX_HTTP_UPSTREAM_MAX_FAILS
                                  | NGX_HTTP_UPSTREAM_FAIL_TIMEOUT | NGX_HTTP_UPSTREAM_DOWN
                                  | NGX_HTTP_UPSTREAM_BACKUP);
    assert_int_equal(levee_message_count(), 1);     /* the refusal in http{} */

    levee_conf_fails(h, "levee_sticky key=$cookie_uid", "\"levee_sticky\" directive is duplicate");
}


static void
sticky_after_another_balancer_warns(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    ngx_http_upstream_srv_conf_t *uscf = levee_conf_upstream(h, "backend");
    uscf->peer.init_upstream = (ngx_http_upstream_init_pt) 0x1;   /* "hash $x;" before */

    assert_int_equal(levee_conf_directive(h, "levee_sticky key=$cookie_uid"), NGX_OK);
    assert_string_equal(levee_last_message(), "load balancing method redefined");
    assert_int_equal(levee_last_level(), NGX_LOG_WARN);
    assert_ptr_not_equal(uscf->peer.init_upstream, (ngx_http_upstream_init_pt) 0x1);
}


static void
sticky_parameter_errors(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    static const struct {
        const char  *line;
        const char  *message;
    } cases[] = {
        { "levee_sticky method=maglev", "levee_sticky needs key=, e.g. key=$cookie_uid" },
        { "levee_sticky key=", "invalid levee_sticky key \"key=\": empty, expected e.g. "
                               "key=$cookie_uid" },
        { "levee_sticky key=uid", "invalid levee_sticky key \"key=uid\": must contain a "
                                  "variable, e.g. key=$cookie_uid" },
        { "levee_sticky key=$a method=round_robin", "invalid levee_sticky method "
          "\"round_robin\": expected maglev, ketama or rendezvous" },
        { "levee_sticky key=$a bounded_load=0.5", "invalid levee_sticky bounded_load \"0.5\": "
          "expected a factor from 1 to 100 with at most 3 decimals, e.g. 1.25" },
        { "levee_sticky key=$a fallback=maybe", "invalid levee_sticky fallback \"maybe\": "
          "expected next or off" },
        { "levee_sticky key=$a bounded_load=1.25 fallback=off",
          "levee_sticky bounded_load needs fallback=next" },
        { "levee_sticky key=$a sticky", "invalid levee_sticky parameter \"sticky\"" },
    };

    for (const auto &c : cases) {
        ngx_http_upstream_srv_conf_t *uscf = levee_conf_upstream(h, "backend");
        levee_conf_fails(h, c.line, c.message);
        assert_null(uscf->peer.init_upstream);
    }
}


static void
registry_parameters(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    static const struct {
        const char  *line;
        const char  *message;
    } cases[] = {
        { "levee_sticky_registry yes", "invalid levee_sticky_registry \"yes\": expected on "
                                       "or off" },
        { "levee_sticky_registry off ttl=1h", "levee_sticky_registry off takes no parameters, "
                                              "\"ttl=1h\" given" },
        { "levee_sticky_registry on ttl=500ms", "invalid levee_sticky_registry ttl \"500ms\": "
          "expected a time from 1s to 24d, e.g. ttl=1h" },
        { "levee_sticky_registry on flush=61s", "invalid levee_sticky_registry flush \"61s\": "
          "expected a time from 1ms to 60s, e.g. flush=500ms" },
        { "levee_sticky_registry on ttl=1s flush=600ms",
          "levee_sticky_registry ttl must be at least twice the flush interval" },
        { "levee_sticky_registry on every=1s", "invalid levee_sticky_registry parameter "
                                               "\"every=1s\"" },
    };

    for (const auto &c : cases) {
        levee_conf_upstream(h, "backend");
        levee_conf_fails(h, c.line, c.message);
    }

    levee_conf_upstream(h, "backend");
    assert_int_equal(levee_conf_directive(h, "levee_sticky_registry on ttl=1s flush=500ms"),
                     NGX_OK);
    levee_conf_fails(h, "levee_sticky_registry off",
                     "\"levee_sticky_registry\" directive is duplicate");

    levee_conf_upstream(h, "other");
    assert_int_equal(levee_conf_directive(h, "levee_sticky_registry off"), NGX_OK);
}


static void
registry_needs_sticky_and_sidecar(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    levee_conf_upstream(h, "plain");                                  /* line 1 */
    levee_conf_upstream(h, "backend");                                /* line 2 */
    assert_int_equal(levee_conf_directive(h, "levee_sticky_registry on"), NGX_OK);

    assert_int_equal(levee_conf_postconfiguration(h), NGX_ERROR);
    assert_string_equal(levee_last_message(), "levee_sticky_registry needs levee_sticky in "
                        "upstream \"backend\" in " LEVEE_TEST_CONF_FILE ":2");
    assert_int_equal(levee_last_level(), NGX_LOG_EMERG);

    assert_int_equal(levee_conf_directive(h, "levee_sticky key=$cookie_uid"), NGX_OK);
    assert_int_equal(levee_conf_postconfiguration(h), NGX_ERROR);
    assert_string_equal(levee_last_message(), "levee_sticky_registry in upstream \"backend\" "
                        "needs levee_sidecar in the http block in " LEVEE_TEST_CONF_FILE ":2");

    h->cf.cmd_type = NGX_HTTP_MAIN_CONF;                    /* back in http{} */
    assert_int_equal(levee_conf_directive(h, "levee_sidecar unix:/run/leveed.sock"), NGX_OK);
    assert_int_equal(levee_conf_postconfiguration(h), NGX_OK);
}


static void
registry_off_needs_nothing(void **state)
{
    levee_conf_t *h = (levee_conf_t *) *state;

    levee_conf_upstream(h, "backend");
    assert_int_equal(levee_conf_directive(h, "levee_sticky_registry off"), NGX_OK);
    assert_int_equal(levee_conf_postconfiguration(h), NGX_OK);
    assert_int_equal(levee_message_count(), 0);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        levee_conf_test(sticky_becomes_the_upstream_balancer),
        levee_conf_test(sticky_after_another_balancer_warns),
        levee_conf_test(sticky_parameter_errors),
        levee_conf_test(registry_parameters),
        levee_conf_test(registry_needs_sticky_and_sidecar),
        levee_conf_test(registry_off_needs_nothing),
    };

    return cmocka_run_group_tests_name("ngx_http_levee_sticky_module", tests, NULL, NULL);
}
