// labels: unit
/* test_serve_util.c: the small parts of `trit serve`: the API key check (tools/serve/util.c), UTF-8
 * validation and repair, the byte buffer, and the Prometheus text of the metrics
 * (tools/serve/metrics.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/metrics.h"
#include "serve/util.h"

Test(serve_util, bearer_key) {
    cr_assert(sv_bearer_ok("Bearer sekrit", "sekrit"));
    cr_assert(sv_bearer_ok("bearer sekrit", "sekrit"), "the scheme in any case");
    cr_assert(sv_bearer_ok("BEARER  sekrit ", "sekrit"), "spaces around the key");
    cr_assert_not(sv_bearer_ok(NULL, "sekrit"));
    cr_assert_not(sv_bearer_ok("", "sekrit"));
    cr_assert_not(sv_bearer_ok("sekrit", "sekrit"), "no scheme");
    cr_assert_not(sv_bearer_ok("Basic sekrit", "sekrit"));
    cr_assert_not(sv_bearer_ok("Bearer sekri", "sekrit"), "a prefix");
    cr_assert_not(sv_bearer_ok("Bearer sekrit2", "sekrit"), "longer");
    cr_assert_not(sv_bearer_ok("Bearer Sekrit", "sekrit"), "the key is case-sensitive");
    cr_assert_not(sv_bearer_ok("Bearer ", "sekrit"));
    cr_assert(sv_const_time_eq("", 0, "", 0));
    cr_assert_not(sv_const_time_eq("a", 1, "", 0));
    cr_assert_not(sv_const_time_eq("ab", 2, "ab\0", 3), "the lengths count");
}

Test(serve_util, utf8) {
    cr_assert(sv_utf8_valid("", 0));
    const char *ok = "plain \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    cr_assert(sv_utf8_valid(ok, strlen(ok)));
    cr_assert_not(sv_utf8_valid("\xc3", 1), "truncated");
    cr_assert_not(sv_utf8_valid("\xc0\xaf", 2), "overlong");
    cr_assert_not(sv_utf8_valid("\xed\xa0\x80", 3), "a surrogate");
    cr_assert_not(sv_utf8_valid("\xf4\x90\x80\x80", 4), "past U+10FFFF");
    cr_assert_not(sv_utf8_valid("\x80", 1), "a lone continuation byte");
    struct sv_buf b = {0};
    /* one U+FFFD per maximal ill-formed subsequence (Unicode's recommendation): \xe2\x82 is one,
     * \xff one, \x80 one */
    sv_buf_add_utf8_lossy(&b, "a\xe2\x82" "b\xff\x80\xc3\xa9", 8);
    cr_assert_str_eq(b.p, "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd\xc3\xa9");
    sv_buf_free(&b);
}

Test(serve_util, buffer) {
    struct sv_buf b = {0};
    for (int i = 0; i < 1000; i++) sv_buf_printf(&b, "%d,", i);
    cr_assert_not(b.failed);
    cr_assert_eq(strncmp(b.p, "0,1,2,", 6), 0);
    cr_assert_eq(b.p[b.n], '\0');
    const size_t n = b.n;
    sv_buf_consume(&b, 2);
    cr_assert_eq(b.n, n - 2);
    cr_assert_eq(strncmp(b.p, "1,2,", 4), 0);
    sv_buf_consume(&b, b.n + 5);
    cr_assert_eq(b.n, 0);
    cr_assert_str_eq(b.p, "");
    sv_buf_free(&b);
}

/* The value of the sample line `name` in text, or -1. */
static double sample(const char *text, const char *name) {
    const size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, name, n) == 0 && p[n] == ' ') return strtod(p + n + 1, NULL);
    return -1.0;
}

Test(serve_util, metrics_text) {
    struct serve_metrics m;
    serve_metrics_init(&m);
    serve_metrics_gauges(&m, 3, 2, 5, 32);
    serve_metrics_tokens(&m, 10, 0);
    serve_metrics_tokens(&m, 0, 7);
    serve_metrics_request(&m, SERVE_OK);
    serve_metrics_request(&m, SERVE_OK);
    serve_metrics_request(&m, SERVE_CANCELLED);
    serve_metrics_preemption(&m);
    serve_metrics_ttft(&m, 0.003);  /* in le=0.005 */
    serve_metrics_ttft(&m, 0.005);  /* le is inclusive */
    serve_metrics_ttft(&m, 1000.0); /* only +Inf */
    serve_metrics_itl(&m, 0.0001);
    struct sv_buf b = {0};
    cr_assert_eq(serve_metrics_render(&m, &b), 0);
    const char *t = b.p;
    cr_assert_eq(sample(t, "trit_requests_waiting"), 3);
    cr_assert_eq(sample(t, "trit_requests_running"), 2);
    cr_assert_eq(sample(t, "trit_kv_blocks_used"), 5);
    cr_assert_eq(sample(t, "trit_kv_blocks_total"), 32);
    cr_assert_eq(sample(t, "trit_prompt_tokens_total"), 10);
    cr_assert_eq(sample(t, "trit_generated_tokens_total"), 7);
    cr_assert_eq(sample(t, "trit_preemptions_total"), 1);
    cr_assert_eq(sample(t, "trit_requests_total{status=\"ok\"}"), 2);
    cr_assert_eq(sample(t, "trit_requests_total{status=\"cancelled\"}"), 1);
    cr_assert_eq(sample(t, "trit_requests_total{status=\"rejected\"}"), 0);
    cr_assert_eq(sample(t, "trit_requests_total{status=\"error\"}"), 0);
    cr_assert_eq(sample(t, "trit_time_to_first_token_seconds_bucket{le=\"0.0025\"}"), 0);
    cr_assert_eq(sample(t, "trit_time_to_first_token_seconds_bucket{le=\"0.005\"}"), 2, "cumulative, inclusive");
    cr_assert_eq(sample(t, "trit_time_to_first_token_seconds_bucket{le=\"60\"}"), 2);
    cr_assert_eq(sample(t, "trit_time_to_first_token_seconds_bucket{le=\"+Inf\"}"), 3);
    cr_assert_eq(sample(t, "trit_time_to_first_token_seconds_count"), 3);
    cr_assert_float_eq(sample(t, "trit_time_to_first_token_seconds_sum"), 1000.008, 1e-9);
    cr_assert_eq(sample(t, "trit_inter_token_latency_seconds_bucket{le=\"0.0005\"}"), 1);
    cr_assert_eq(sample(t, "trit_inter_token_latency_seconds_count"), 1);
    /* every metric has its HELP and TYPE */
    static const char *const names[] = {"trit_requests_waiting", "trit_requests_running", "trit_kv_blocks_used",
                                        "trit_kv_blocks_total", "trit_prompt_tokens_total", "trit_generated_tokens_total",
                                        "trit_requests_total", "trit_time_to_first_token_seconds",
                                        "trit_inter_token_latency_seconds"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char line[96];
        snprintf(line, sizeof line, "# TYPE %s ", names[i]);
        cr_assert(strstr(t, line), "no TYPE line for %s", names[i]);
        snprintf(line, sizeof line, "# HELP %s ", names[i]);
        cr_assert(strstr(t, line), "no HELP line for %s", names[i]);
    }
    cr_assert_eq(t[b.n - 1], '\n');
    sv_buf_free(&b);
    serve_metrics_destroy(&m);
}
