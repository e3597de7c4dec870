/*
 * test_router.c - matching a method and path against the route table
 * (src/http/router.c): every route is found from a path of its own shape,
 * placeholders give their segments in order, near misses are 404 (-1), a
 * path served under another method is 405 (-2) with the methods allowed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "http/http.h"
#include "util/util.h"

/* The index of a route in the table, or fails. */
static int route_of(const char *method, const char *pattern) {
    for (size_t i = 0; i < http_routes_count; i++)
        if (strcmp(http_routes[i].method, method) == 0 &&
            strcmp(http_routes[i].pattern, pattern) == 0)
            return (int)i;
    fail_msg("no route %s %s", method, pattern);
    return -1;
}

static int match(const char *method, const char *path, const char **params, char *allow,
                 size_t allow_len) {
    static char buf[512];
    ts_strlcpy(buf, path, sizeof(buf));
    return router_match(method, buf, params, allow, allow_len);
}

/* Each route, asked for its pattern with every {placeholder} replaced by a
 * value, is the route found, with the values in order. */
static void test_every_route_matches_its_own_shape(void **state) {
    (void)state;
    for (size_t r = 0; r < http_routes_count; r++) {
        char path[512] = "";
        size_t used = 0;
        int n = 0;
        for (const char *p = http_routes[r].pattern; *p && used < sizeof(path) - 8;) {
            if (*p == '{') {
                used += (size_t)snprintf(path + used, sizeof(path) - used, "v%d", n++);
                p = strchr(p, '}') + 1;
            } else {
                path[used++] = *p++;
                path[used] = '\0';
            }
        }
        const char *params[HTTP_MAX_PARAMS] = {0};
        char allow[128];
        int got = match(http_routes[r].method, path, params, allow, sizeof(allow));
        if (got != (int)r) fail_msg("%s %s: route %d, not %zu", http_routes[r].method, path, got, r);
        for (int k = 0; k < n && k < HTTP_MAX_PARAMS; k++) {
            char want[16];
            snprintf(want, sizeof(want), "v%d", k);
            assert_string_equal(params[k], want);
        }
    }
}

static void test_placeholders_and_near_misses(void **state) {
    (void)state;
    const char *params[HTTP_MAX_PARAMS] = {0};
    char allow[128];
    assert_int_equal(match("GET", "/api/workflows/12/jobs/j1/slide_files/3/4_5.jpeg", params,
                           allow, sizeof(allow)),
                     route_of("GET", "/api/workflows/{id}/jobs/{job_id}/slide_files/{level}/{tile}"));
    assert_string_equal(params[0], "12");
    assert_string_equal(params[1], "j1");
    assert_string_equal(params[2], "3");
    assert_string_equal(params[3], "4_5.jpeg");
    assert_int_equal(match("HEAD", "/api/workflows/7", params, allow, sizeof(allow)),
                     route_of("GET", "/api/workflows/{id}"));
    assert_string_equal(params[0], "7");
    assert_int_equal(match("GET", "/", params, allow, sizeof(allow)), route_of("GET", "/"));
    /* Empty segments are skipped, as before. */
    assert_int_equal(match("GET", "//api//workflows", params, allow, sizeof(allow)),
                     route_of("GET", "/api/workflows"));
    assert_int_equal(match("GET", "/api/workflows/", params, allow, sizeof(allow)), -1);
    assert_int_equal(match("GET", "/api/workflowsX", params, allow, sizeof(allow)), -1);
    assert_int_equal(match("GET", "/api/workflow", params, allow, sizeof(allow)), -1);
    assert_int_equal(match("GET", "/api/workflows/1/extra", params, allow, sizeof(allow)), -1);
    assert_int_equal(match("GET", "/api/workflows/1/jobs", params, allow, sizeof(allow)), -1);
    assert_int_equal(match("GET", "/api", params, allow, sizeof(allow)), -1);
    assert_int_equal(match("PUT", "/api/workflows", params, allow, sizeof(allow)), -2);
    assert_string_equal(allow, "POST, GET");
    assert_int_equal(match("PATCH", "/api/workflows/3", params, allow, sizeof(allow)), -2);
    assert_string_equal(allow, "GET, DELETE");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_route_matches_its_own_shape),
        cmocka_unit_test(test_placeholders_and_near_misses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
