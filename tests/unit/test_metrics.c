/*
 * test_metrics.c - the /metrics exposition (src/http/metrics.c): the text is
 * parsed back line by line and checked against the Prometheus text format
 * 0.0.4 (every family typed before its samples, counters ending in _total,
 * cumulative buckets that end in +Inf and agree with _count, bounded label
 * values) and against the figures that were recorded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http/http.h"
#include "http/metrics.h"
#include "util/util.h"

/* The value of the sample whose name and labels are exactly series
 * ("name" or "name{a=\"b\",...}"); NAN when absent. */
static double sample(const char *text, const char *series) {
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') return strtod(p + n + 1, NULL);
    }
    return NAN;
}

static char *render(metrics *m, const store_queue_stats *qs, const store_leader_info *leader,
                    double now) {
    metrics_scrape sc = {.stats = qs, .leader = leader, .max_active_users = 3,
                         .concurrency_limit = 8, .state_free_bytes = 1e9,
                         .state_size_bytes = 4e9, .now = now};
    size_t len;
    char *text = metrics_render(m, &sc, &len);
    assert_int_equal(strlen(text), len);
    return text;
}

/* Checks every line of the exposition: comments are HELP or TYPE, a family
 * is typed once and before its samples, sample lines parse, counters end in
 * _total, histogram buckets are cumulative and end with +Inf = _count. */
static void check_format(const char *text) {
    regex_t sample_re;
    assert_int_equal(regcomp(&sample_re,
                             "^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"[^\"\\\\]*\""
                             "(,[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"\\\\]*\")*)\\})? "
                             "(-?[0-9.]+(e[-+]?[0-9]+)?|NaN|\\+Inf)$",
                             REG_EXTENDED),
                     0);
    char typed[128][96];
    char types[128][16];
    int n_typed = 0;
    char *copy = ts_strdup(text), *save = NULL;
    double last_bucket = -1;
    char last_key[256] = "";
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[96], type[16];
        if (line[0] == '#') {
            if (sscanf(line, "# TYPE %95s %15s", name, type) == 2) {
                for (int i = 0; i < n_typed; i++)
                    if (strcmp(typed[i], name) == 0) fail_msg("%s typed twice", name);
                assert_true(n_typed < 128);
                ts_strlcpy(typed[n_typed], name, sizeof(typed[0]));
                ts_strlcpy(types[n_typed++], type, sizeof(types[0]));
                if (strcmp(type, "counter") == 0 && !strstr(name, "_total"))
                    fail_msg("counter %s does not end in _total", name);
                if (strcmp(type, "counter") && strcmp(type, "gauge") && strcmp(type, "histogram"))
                    fail_msg("unknown type %s", type);
            } else if (strncmp(line, "# HELP ", 7) != 0) {
                fail_msg("a comment that is neither HELP nor TYPE: %s", line);
            }
            continue;
        }
        regmatch_t mt[2];
        if (regexec(&sample_re, line, 2, mt, 0) != 0) fail_msg("not a sample line: %s", line);
        int len = (int)(mt[1].rm_eo - mt[1].rm_so);
        snprintf(name, sizeof(name), "%.*s", len, line);
        /* The family: the name without a histogram's suffix. */
        char family[96];
        ts_strlcpy(family, name, sizeof(family));
        bool bucket = false;
        for (int i = 0; i < n_typed; i++) {
            size_t fl = strlen(typed[i]);
            if (strcmp(types[i], "histogram") == 0 && strncmp(name, typed[i], fl) == 0 &&
                (strcmp(name + fl, "_bucket") == 0 || strcmp(name + fl, "_sum") == 0 ||
                 strcmp(name + fl, "_count") == 0)) {
                ts_strlcpy(family, typed[i], sizeof(family));
                bucket = strcmp(name + fl, "_bucket") == 0;
            }
        }
        bool known = false;
        for (int i = 0; i < n_typed; i++) known = known || strcmp(typed[i], family) == 0;
        if (!known) fail_msg("sample %s before (or without) its TYPE", name);
        double v = strtod(strrchr(line, ' ') + 1, NULL);
        assert_true(v >= 0 || strstr(name, "lease_seconds"));
        if (bucket) { /* cumulative within one label set: the line up to le= */
            const char *le = strstr(line, "le=\"");
            assert_non_null(le);
            char key[256];
            snprintf(key, sizeof(key), "%.*s", (int)(le - line), line);
            if (strcmp(key, last_key) == 0 && v < last_bucket)
                fail_msg("buckets not cumulative at %s", line);
            last_bucket = v;
            ts_strlcpy(last_key, key, sizeof(last_key));
        }
        /* Never a raw path, a user or a workflow id in a label. */
        assert_null(strstr(line, "/api/workflows/1"));
        assert_null(strstr(line, "alice"));
    }
    free(copy);
    regfree(&sample_re);
}

static void test_line_and_cpus(void **state) {
    (void)state;
    metrics *m = metrics_create_shared();
    assert_non_null(m);
    store_queue_stats qs = {.active_users = 2, .waiting_users = 1, .queued_workflows = 4,
                            .running_cpus = 6, .running_jobs = 3, .oldest_queued_at = 1000.0};
    store_leader_info leader = {.owner = "host:1:2", .term = 7, .expires_in = 3.5};
    char *text = render(m, &qs, &leader, 1090.5);
    check_format(text);
    assert_true(sample(text, "tessera_store_up") == 1);
    assert_true(sample(text, "tessera_admission_queue_depth") == 4);
    assert_true(fabs(sample(text, "tessera_admission_oldest_wait_seconds") - 90.5) < 1e-6);
    assert_true(sample(text, "tessera_active_users") == 2);
    assert_true(sample(text, "tessera_waiting_users") == 1);
    assert_true(sample(text, "tessera_running_cpus") == 6);
    assert_true(sample(text, "tessera_free_cpus") == 2);
    assert_true(sample(text, "tessera_concurrency_limit") == 8);
    assert_true(sample(text, "tessera_running_jobs") == 3);
    assert_true(sample(text, "tessera_state_dir_free_bytes") == 1e9);
    assert_true(sample(text, "tessera_state_dir_size_bytes") == 4e9);
    assert_true(sample(text, "tessera_leader_up") == 1);
    assert_true(sample(text, "tessera_leader_term") == 7);
    assert_true(sample(text, "tessera_leader_info{owner=\"host:1:2\"}") == 1);
    free(text);

    /* Nobody waits: age 0. Over-committed cpus: free 0, never negative. A
     * lapsed lease: no leader. */
    qs = (store_queue_stats){.running_cpus = 9};
    leader.expires_in = -2;
    text = render(m, &qs, &leader, 1090.5);
    check_format(text);
    assert_true(sample(text, "tessera_admission_oldest_wait_seconds") == 0);
    assert_true(sample(text, "tessera_free_cpus") == 0);
    assert_true(sample(text, "tessera_leader_up") == 0);
    free(text);

    /* A store that cannot be read: store_up 0, no line gauges (not zeros
     * that would look like an empty line), the process's counters still. */
    text = render(m, NULL, NULL, 1090.5);
    check_format(text);
    assert_true(sample(text, "tessera_store_up") == 0);
    assert_true(isnan(sample(text, "tessera_admission_queue_depth")));
    assert_true(isnan(sample(text, "tessera_leader_up")));
    assert_false(isnan(sample(text, "tessera_websocket_connections")));
    free(text);
    metrics_destroy(m);
}

/* The route index of a method and pattern in the route table. */
static int route_of(const char *method, const char *pattern) {
    for (size_t i = 0; i < http_routes_count; i++)
        if (strcmp(http_routes[i].method, method) == 0 && strcmp(http_routes[i].pattern, pattern) == 0)
            return (int)i;
    fail_msg("no route %s %s", method, pattern);
    return -1;
}

static void test_http_by_route_template(void **state) {
    (void)state;
    metrics *m = metrics_create_shared();
    int get = route_of("GET", "/api/workflows/{id}");
    metrics_http(m, get, 200, 0.002);
    metrics_http(m, get, 200, 0.2);
    metrics_http(m, get, 503, 7.0);
    metrics_http(m, -1, 404, 0.0001); /* a path no route matches */
    metrics_http(m, -1, 200, 0.0001); /* a file of the web UI */
    metrics_http(m, -1, 304, 0.0001);
    char *text = render(m, NULL, NULL, 0);
    check_format(text);
    const char *l = "method=\"GET\",route=\"/api/workflows/{id}\"";
    char series[256];
    snprintf(series, sizeof(series), "tessera_http_requests_total{%s,status=\"200\"}", l);
    assert_true(sample(text, series) == 2);
    snprintf(series, sizeof(series), "tessera_http_requests_total{%s,status=\"503\"}", l);
    assert_true(sample(text, series) == 1);
    assert_true(sample(text, "tessera_http_requests_total{method=\"other\",route=\"unmatched\","
                             "status=\"404\"}") == 1);
    assert_true(sample(text, "tessera_http_requests_total{method=\"other\",route=\"static\","
                             "status=\"200\"}") == 1);
    assert_true(sample(text, "tessera_http_request_duration_seconds_count{method=\"other\","
                             "route=\"static\"}") == 2);
    snprintf(series, sizeof(series), "tessera_http_request_duration_seconds_bucket{%s,le=\"0.0025\"}", l);
    assert_true(sample(text, series) == 1);
    snprintf(series, sizeof(series), "tessera_http_request_duration_seconds_bucket{%s,le=\"0.25\"}", l);
    assert_true(sample(text, series) == 2);
    snprintf(series, sizeof(series), "tessera_http_request_duration_seconds_bucket{%s,le=\"5\"}", l);
    assert_true(sample(text, series) == 2);
    snprintf(series, sizeof(series), "tessera_http_request_duration_seconds_bucket{%s,le=\"+Inf\"}", l);
    assert_true(sample(text, series) == 3);
    snprintf(series, sizeof(series), "tessera_http_request_duration_seconds_count{%s}", l);
    assert_true(sample(text, series) == 3);
    snprintf(series, sizeof(series), "tessera_http_request_duration_seconds_sum{%s}", l);
    assert_true(fabs(sample(text, series) - 7.202) < 1e-3);
    /* Routes not yet called have no latency series (but the family is typed). */
    assert_non_null(strstr(text, "# TYPE tessera_http_request_duration_seconds histogram"));
    assert_null(strstr(text, "route=\"/api/slides\""));
    free(text);
    metrics_destroy(m);
}

static void test_failure_reasons(void **state) {
    (void)state;
    assert_null(metrics_failure_reason("succeeded", 0));
    assert_null(metrics_failure_reason("cancelled", 143));
    assert_null(metrics_failure_reason(NULL, 0));
    assert_string_equal(metrics_failure_reason("failed", 1), "exit_status");
    assert_string_equal(metrics_failure_reason("failed", 137), "signal");
    assert_string_equal(metrics_failure_reason("failed", -1), "start_failed");
    assert_string_equal(metrics_failure_reason("timeout", 143), "timeout");
    assert_string_equal(metrics_failure_reason("interrupted", -1), "interrupted");
}

/* Job timings, outcomes and failures, recorded in a child process as the
 * scheduler does (the region is shared across fork), read by the parent. */
static void test_jobs_across_fork(void **state) {
    (void)state;
    metrics *m = metrics_create_shared();
    pid_t pid = fork();
    if (pid == 0) {
        metrics_job_wait(m, "noop", 0.3);
        metrics_job_run(m, "noop", 2.0);
        metrics_job_end(m, "noop", "succeeded", 0);
        metrics_job_end(m, "noop", "failed", 2);
        metrics_job_end(m, "tissue_mask", "timeout", 143);
        metrics_job_end(m, "tissue_mask", "failed", 137);
        metrics_job_end(m, "tissue_mask", "cancelled", 143);
        metrics_job_end(m, "tissue_mask", "bogus", 0); /* not counted */
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    char *text = render(m, NULL, NULL, 0);
    check_format(text);
    assert_true(sample(text, "tessera_job_wait_seconds_bucket{job_type=\"noop\",le=\"0.1\"}") == 0);
    assert_true(sample(text, "tessera_job_wait_seconds_bucket{job_type=\"noop\",le=\"0.5\"}") == 1);
    assert_true(sample(text, "tessera_job_run_seconds_count{job_type=\"noop\"}") == 1);
    assert_true(fabs(sample(text, "tessera_job_run_seconds_sum{job_type=\"noop\"}") - 2.0) < 1e-6);
    assert_true(sample(text, "tessera_jobs_finished_total{job_type=\"noop\",outcome=\"succeeded\"}") == 1);
    assert_true(sample(text, "tessera_jobs_finished_total{job_type=\"noop\",outcome=\"failed\"}") == 1);
    assert_true(sample(text, "tessera_job_failures_total{job_type=\"noop\",reason=\"exit_status\"}") == 1);
    assert_true(sample(text, "tessera_job_failures_total{job_type=\"noop\",reason=\"signal\"}") == 0);
    assert_true(sample(text, "tessera_job_failures_total{job_type=\"tissue_mask\",reason=\"timeout\"}") == 1);
    assert_true(sample(text, "tessera_job_failures_total{job_type=\"tissue_mask\",reason=\"signal\"}") == 1);
    assert_true(sample(text, "tessera_jobs_finished_total{job_type=\"tissue_mask\",outcome=\"cancelled\"}") == 1);
    /* Cancelled is no failure; an unknown outcome is counted nowhere. */
    double failures = 0;
    const char *reasons[] = {"exit_status", "signal", "start_failed", "timeout", "interrupted"};
    for (int i = 0; i < 5; i++) {
        char series[128];
        snprintf(series, sizeof(series), "tessera_job_failures_total{job_type=\"tissue_mask\",reason=\"%s\"}",
                 reasons[i]);
        failures += sample(text, series);
    }
    assert_true(failures == 2);
    assert_null(strstr(text, "bogus"));
    free(text);
    metrics_destroy(m);
}

/* Store calls and event delivery, the families the cluster view reads. */
static void test_store_and_events(void **state) {
    (void)state;
    metrics *m = metrics_create_shared();
    metrics_store_call(m, "submit", 0.004, TS_OK);
    metrics_store_call(m, "submit", 0.3, STORE_UNAVAILABLE);
    metrics_store_call(m, "get", 0.0001, STORE_NOTFOUND); /* an answer, not a failure */
    metrics_ws_connections(m, 2);
    metrics_ws_connections(m, -1);
    metrics_events_delivered(m, 5);
    metrics_event_delay(m, 0.02);
    metrics_event_fanout(m, 0.07);
    metrics_view_read(m, true);
    metrics_view_read(m, true);
    metrics_view_read(m, false);
    metrics_submit_commit(m);
    char *text = render(m, NULL, NULL, 0);
    check_format(text);
    assert_true(sample(text, "tessera_store_call_seconds_count{call=\"submit\"}") == 2);
    assert_true(sample(text, "tessera_store_call_errors_total{call=\"submit\"}") == 1);
    assert_true(sample(text, "tessera_store_call_errors_total{call=\"get\"}") == 0);
    assert_true(sample(text, "tessera_websocket_connections") == 1);
    assert_true(sample(text, "tessera_events_delivered_total") == 5);
    assert_true(sample(text, "tessera_workflow_reads_total{result=\"hit\"}") == 2);
    assert_true(sample(text, "tessera_workflow_reads_total{result=\"miss\"}") == 1);
    assert_true(sample(text, "tessera_submit_commits_total") == 1);
    assert_true(sample(text, "tessera_event_delivery_seconds_bucket{le=\"0.025\"}") == 1);
    assert_true(sample(text, "tessera_event_delivery_seconds_count") == 1);
    assert_true(sample(text, "tessera_event_fanout_seconds_bucket{le=\"0.05\"}") == 0);
    assert_true(sample(text, "tessera_event_fanout_seconds_bucket{le=\"0.1\"}") == 1);
    assert_true(sample(text, "tessera_event_fanout_seconds_count") == 1);
    free(text);
    metrics_destroy(m);
}

/* The Slurm executor's figures appear once the scheduler has set them,
 * well-formed, with their Prometheus names. */
static void test_slurm(void **state) {
    (void)state;
    metrics *m = metrics_create_shared();
    char *text = render(m, NULL, NULL, 0);
    assert_null(strstr(text, "tessera_slurm_"));
    free(text);
    exec_slurm_stats st = {.submitted = 7, .submit_failures = 1, .squeue_calls = 40,
                           .squeue_failures = 2, .squeue_seconds_sum = 1.5,
                           .squeue_seconds_last = 0.02, .sacct_calls = 1, .scancel_calls = 3,
                           .waiting = 4, .pending = 2, .running = 1, .reachable = true};
    metrics_slurm(m, &st);
    text = render(m, NULL, NULL, 0);
    check_format(text);
    assert_true(sample(text, "tessera_slurm_submissions_total") == 7);
    assert_true(sample(text, "tessera_slurm_submit_failures_total") == 1);
    assert_true(sample(text, "tessera_slurm_squeue_calls_total") == 40);
    assert_true(sample(text, "tessera_slurm_squeue_failures_total") == 2);
    assert_true(sample(text, "tessera_slurm_squeue_seconds_total") == 1.5);
    assert_true(sample(text, "tessera_slurm_up") == 1);
    assert_true(sample(text, "tessera_slurm_jobs{state=\"waiting\"}") == 4);
    assert_true(sample(text, "tessera_slurm_jobs{state=\"pending\"}") == 2);
    assert_true(sample(text, "tessera_slurm_jobs{state=\"running\"}") == 1);
    free(text);
    /* The same for the Operations page. */
    metrics_scrape sc = {.state_free_bytes = -1};
    json_t *o = metrics_json(m, &sc);
    json_t *sl = json_object_get(o, "slurm");
    assert_true(json_is_true(json_object_get(sl, "up")));
    assert_int_equal(json_integer_value(json_object_get(sl, "submissions")), 7);
    assert_int_equal(json_integer_value(json_object_get(sl, "submit_failures")), 1);
    assert_int_equal(json_integer_value(json_object_get(sl, "pending")), 2);
    assert_int_equal(json_integer_value(json_object_get(sl, "running")), 1);
    json_decref(o);
    /* Unreachable; then no longer leading: nothing at all. */
    st.reachable = false;
    metrics_slurm(m, &st);
    text = render(m, NULL, NULL, 0);
    assert_true(sample(text, "tessera_slurm_up") == 0);
    free(text);
    metrics_slurm(m, NULL);
    text = render(m, NULL, NULL, 0);
    assert_null(strstr(text, "tessera_slurm_"));
    free(text);
    o = metrics_json(m, &sc);
    assert_true(json_is_null(json_object_get(o, "slurm")));
    json_decref(o);
    metrics_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_and_cpus),
        cmocka_unit_test(test_http_by_route_template),
        cmocka_unit_test(test_failure_reasons),
        cmocka_unit_test(test_jobs_across_fork),
        cmocka_unit_test(test_store_and_events),
        cmocka_unit_test(test_slurm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
