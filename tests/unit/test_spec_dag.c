/*
 * test_spec_dag.c - unit tests for src/core/spec.h's dependency graph:
 * depends_on, branch edges, cycles and their messages, graphs of 10,000
 * jobs (built without recursion), the round trip through spec_to_json, and
 * spec_to_text writing what json_dumps writes of it.
 * The document, its fields and its jobs are in test_spec.c; the helpers of
 * both are in spec_fixture.h.
 */
#include "spec_fixture.h"

/* ------------------------------------------------------------ depends_on */

static void test_rejects_depends_on_that_is_not_an_array(void **state) {
    (void)state;
    expect_job_fail("'depends_on': 'b'", "depends_on",
                    "depends_on: must be an array of job ids, not a string");
}

static void test_rejects_depends_on_element_that_is_not_a_string(void **state) {
    (void)state;
    expect_job_fail("'depends_on': [1]", "depends_on[0]",
                    "depends_on[0]: must be a job id (a string), not an integer");
}

static void test_rejects_self_dependency(void **state) {
    (void)state;
    expect_job_fail("'depends_on': ['a']", "depends_on[0]", "a job cannot depend on itself");
}

static void test_rejects_unknown_dependency(void **state) {
    (void)state;
    expect_fail("{'name': 'w', 'jobs': [{'job_id': 'job-1', 'job_type': 'noop'}, {'job_id': "
                "'job-2', 'job_type': 'noop', 'depends_on': ['job-9']}]}",
                NULL, 422, "jobs[1].depends_on[0]", "job-2",
                "jobs[1] (job \"job-2\"): depends_on[0]: unknown job \"job-9\"");
}

static void test_folds_duplicate_dependencies(void **state) {
    (void)state;
    spec_workflow *wf = parse_ok(
        "{'name': 'w', 'jobs': [{'job_id': 'a', 'job_type': 'noop', 'branch': 'x'}, "
        "{'job_id': 'b', 'job_type': 'noop', 'branch': 'y'}, {'job_id': 'c', 'job_type': 'noop', "
        "'branch': 'z', 'depends_on': ['a', 'b', 'a', 'b', 'a']}]}");
    assert_int_equal(wf->jobs[2].n_depends_on, 2);
    assert_string_equal(wf->jobs[2].depends_on[0], "a");
    assert_string_equal(wf->jobs[2].depends_on[1], "b");
    assert_int_equal(n_edges(wf), 2);
    spec_free(wf);
}

static void test_accepts_forward_dependency_across_branches(void **state) {
    (void)state;
    spec_workflow *wf = parse_ok("{'name': 'w', 'jobs': [{'job_id': 'a', 'job_type': 'noop', "
                                 "'branch': 'x', 'depends_on': ['b']}, {'job_id': 'b', "
                                 "'job_type': 'noop', 'branch': 'y'}]}");
    const uint32_t *p;
    assert_int_equal(preds_of(wf, 0, &p), 1);
    assert_int_equal(p[0], 1);
    spec_free(wf);
}

static void test_builds_branch_edges_across_interleaved_branches(void **state) {
    (void)state;
    spec_workflow *wf =
        parse_ok("{'name': 'w', 'jobs': [{'job_id': 'x1', 'job_type': 'noop', 'branch': 'x'}, "
                 "{'job_id': 'y1', 'job_type': 'noop', 'branch': 'y'}, "
                 "{'job_id': 'x2', 'job_type': 'noop', 'branch': 'x'}, "
                 "{'job_id': 'd1', 'job_type': 'noop'}, "
                 "{'job_id': 'y2', 'job_type': 'noop', 'branch': 'y', 'depends_on': ['x2']}, "
                 "{'job_id': 'x3', 'job_type': 'noop', 'branch': 'x'}]}");
    static const int32_t expected_prev[] = {-1, -1, 0, -1, 1, 2};
    for (size_t i = 0; i < 6; i++) assert_int_equal(wf->dag.branch_prev[i], expected_prev[i]);
    const uint32_t *p;
    assert_int_equal(preds_of(wf, 4, &p), 2); /* y2 <- y1 (branch), y2 <- x2 (explicit) */
    assert_int_equal(p[0], 1);
    assert_int_equal(p[1], 2);
    assert_int_equal(succs_of(wf, 2, &p), 2); /* x2 -> y2, x2 -> x3 */
    assert_int_equal(p[0], 4);
    assert_int_equal(p[1], 5);
    assert_int_equal(preds_of(wf, 3, &p), 0);
    assert_int_equal(n_edges(wf), 4);
    spec_free(wf);
}

static void test_rejects_two_job_cycle(void **state) {
    (void)state;
    expect_fail("{'name': 'w', 'jobs': [{'job_id': 'job-a', 'job_type': 'noop', 'branch': 'x', "
                "'depends_on': ['job-b']}, {'job_id': 'job-b', 'job_type': 'noop', 'branch': 'y', "
                "'depends_on': ['job-a']}]}",
                NULL, 422, "jobs[0].depends_on", "job-a",
                "dependency cycle: job-a -> job-b -> job-a; remove one");
}

static void test_rejects_three_job_cycle(void **state) {
    (void)state;
    spec_error err = expect_fail(
        "{'name': 'w', 'jobs': [{'job_id': 'c', 'job_type': 'noop', 'branch': 'z', 'depends_on': "
        "['a']}, {'job_id': 'a', 'job_type': 'noop', 'branch': 'x', 'depends_on': ['b']}, "
        "{'job_id': 'b', 'job_type': 'noop', 'branch': 'y', 'depends_on': ['c']}]}",
        NULL, 422, "jobs[0].depends_on", "c", "dependency cycle: c -> a -> b -> c");
    assert_null(strstr(err.message, "branch"));
}

static void test_rejects_cycle_through_later_job_of_same_branch(void **state) {
    (void)state;
    spec_error err = expect_fail(
        "{'name': 'w', 'jobs': [{'job_id': 'first', 'job_type': 'noop', 'depends_on': ['second']},"
        " {'job_id': 'second', 'job_type': 'noop'}]}",
        NULL, 422, "jobs[0].depends_on", "first", "dependency cycle: first -> second -> first");
    assert_contains(err.message, "each job also depends on the job listed before it in its branch");
}

/* ------------------------------------------------------------ big graphs */

/* A workflow of n jobs "jNNNNN" built as JSON; branch_of(i) names job i's
 * branch and dep_of(i) one explicit dependency or -1. */
static json_t *big_workflow(size_t n, void (*shape)(size_t i, char *branch, long *dep)) {
    json_t *jobs = json_array();
    for (size_t i = 0; i < n; i++) {
        char id[32], branch[32] = "default";
        long dep = -1;
        if (shape != NULL) shape(i, branch, &dep);
        snprintf(id, sizeof id, "j%05zu", i);
        json_t *job =
            json_pack("{s:s, s:s, s:s}", "job_id", id, "job_type", "noop", "branch", branch);
        if (dep >= 0) {
            char dep_id[32];
            snprintf(dep_id, sizeof dep_id, "j%05ld", dep);
            json_object_set_new(job, "depends_on", json_pack("[s]", dep_id));
        }
        json_array_append_new(jobs, job);
    }
    return json_pack("{s:s, s:o}", "name", "big", "jobs", jobs);
}

static void test_parses_10000_job_single_branch_chain(void **state) {
    (void)state;
    json_t *root = big_workflow(10000, NULL);
    char *text = json_dumps(root, JSON_COMPACT);
    spec_workflow *wf = NULL;
    spec_error err;
    int rc = spec_parse(text, strlen(text), NULL, check_job, NULL, &wf, &err);
    if (rc != 0) fail_msg("%s", err.message);
    assert_int_equal(wf->n_jobs, 10000);
    assert_int_equal(n_edges(wf), 9999);
    for (size_t i = 0; i < 10000; i++) {
        const uint32_t *p;
        assert_int_equal(wf->dag.branch_prev[i], (int32_t)i - 1);
        assert_int_equal(preds_of(wf, i, &p), i > 0 ? 1 : 0);
        if (i > 0) assert_int_equal(p[0], i - 1);
        assert_int_equal(succs_of(wf, i, &p), i < 9999 ? 1 : 0);
        if (i < 9999) assert_int_equal(p[0], i + 1);
    }
    assert_int_equal(spec_find_job(wf, "j09999"), 9999);
    spec_free(wf);
    free(text);
    json_decref(root);
}

/* 100 branches of 100 jobs, listed round-robin: job k of every branch before
 * job k + 1 of any. */
static void shape_interleaved(size_t i, char *branch, long *dep) {
    sprintf(branch, "b%02zu", i % 100);
    (void)dep;
}

static void test_parses_100_interleaved_branches_of_100_jobs(void **state) {
    (void)state;
    json_t *root = big_workflow(10000, shape_interleaved);
    spec_workflow *wf = NULL;
    spec_error err;
    int rc = spec_from_json(root, NULL, check_job, NULL, &wf, &err);
    if (rc != 0) fail_msg("%s", err.message);
    assert_int_equal(n_edges(wf), 100 * 99);
    for (size_t i = 0; i < 10000; i++) {
        const uint32_t *p;
        assert_int_equal(wf->dag.branch_prev[i], i < 100 ? -1 : (int32_t)(i - 100));
        assert_int_equal(preds_of(wf, i, &p), i < 100 ? 0 : 1);
        if (i >= 100) assert_int_equal(p[0], i - 100);
    }
    spec_free(wf);
    json_decref(root);
}

/* Each job in its own branch depending on the next: a 10,000-deep path for
 * the cycle search, which must not recurse. */
static void shape_forward_chain(size_t i, char *branch, long *dep) {
    sprintf(branch, "b%zu", i);
    *dep = i + 1 < 10000 ? (long)i + 1 : -1;
}

static void test_searches_10000_deep_forward_chain_without_recursion(void **state) {
    (void)state;
    json_t *root = big_workflow(10000, shape_forward_chain);
    spec_workflow *wf = NULL;
    spec_error err;
    int rc = spec_from_json(root, NULL, check_job, NULL, &wf, &err);
    if (rc != 0) fail_msg("%s", err.message);
    assert_int_equal(n_edges(wf), 9999);
    spec_free(wf);
    json_decref(root);
}

static void shape_long_cycle(size_t i, char *branch, long *dep) {
    sprintf(branch, "b%zu", i);
    *dep = (long)((i + 1) % 10000);
}

static void test_names_10000_job_cycle_within_message_size(void **state) {
    (void)state;
    json_t *root = big_workflow(10000, shape_long_cycle);
    spec_workflow *wf = NULL;
    spec_error err;
    assert_int_equal(spec_from_json(root, NULL, check_job, NULL, &wf, &err), -1);
    assert_int_equal(err.http_status, 422);
    assert_string_equal(err.job_id, "j00000");
    assert_contains(err.message, "dependency cycle: j00000 -> j00001 -> j00002");
    assert_contains(err.message, "more jobs) -> j00000;");
    assert_true(strlen(err.message) < sizeof err.message - 1);
    json_decref(root);
}

/* -------------------------------------------------------------- to_json */

static void assert_same_workflow(const spec_workflow *a, const spec_workflow *b) {
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->priority, b->priority);
    assert_int_equal(a->n_jobs, b->n_jobs);
    for (size_t i = 0; i < a->n_jobs; i++) {
        const spec_job *x = &a->jobs[i], *y = &b->jobs[i];
        assert_string_equal(x->job_id, y->job_id);
        assert_string_equal(x->job_type, y->job_type);
        assert_true((x->image_path == NULL) == (y->image_path == NULL));
        if (x->image_path != NULL) assert_string_equal(x->image_path, y->image_path);
        assert_string_equal(x->branch, y->branch);
        assert_int_equal(x->n_depends_on, y->n_depends_on);
        for (size_t k = 0; k < x->n_depends_on; k++)
            assert_string_equal(x->depends_on[k], y->depends_on[k]);
        assert_true(json_equal(x->params, y->params));
        assert_int_equal(x->cpus, y->cpus);
        assert_true(x->timeout_s == y->timeout_s);
        assert_int_equal(x->max_retries, y->max_retries);
        assert_true(x->retry_delay_s == y->retry_delay_s);
    }
    size_t edges = a->dag.pred_start[a->dag.n];
    assert_int_equal(edges, b->dag.pred_start[b->dag.n]);
    assert_memory_equal(a->dag.pred_start, b->dag.pred_start, (a->n_jobs + 1) * sizeof(uint32_t));
    assert_memory_equal(a->dag.pred, b->dag.pred, edges * sizeof(uint32_t));
    assert_memory_equal(a->dag.succ, b->dag.succ, edges * sizeof(uint32_t));
}

static void test_round_trips_through_to_json(void **state) {
    (void)state;
    spec_workflow *wf = parse_ok(
        "{'name': 'round trip', 'priority': 7, 'jobs': ["
        "{'job_id': 'a', 'job_type': 'sleep', 'params': {'seconds': 0.25, 'n': [1, {'x': null}]},"
        " 'cpus': 4, 'timeout_s': 90.5, 'max_retries': 3, 'retry_delay_s': 2},"
        "{'job_id': 'b', 'job_type': 'tissue_mask', 'image_path': '/s.svs', 'branch': 'x',"
        " 'depends_on': ['a', 'a']}, {'job_id': 'c', 'job_type': 'noop'}]}");
    json_t *doc = spec_to_json(wf);
    /* Every field present, defaults included. */
    json_t *c = json_array_get(json_object_get(doc, "jobs"), 2);
    assert_string_equal(json_string_value(json_object_get(c, "branch")), "default");
    assert_int_equal(json_integer_value(json_object_get(c, "cpus")), 1);
    assert_true(json_number_value(json_object_get(c, "retry_delay_s")) == 10);
    assert_true(json_is_array(json_object_get(c, "depends_on")));
    assert_true(json_is_object(json_object_get(c, "params")));

    spec_workflow *again = NULL;
    spec_error err;
    int rc = spec_from_json(doc, NULL, check_job, NULL, &again, &err);
    if (rc != 0) fail_msg("%s", err.message);
    assert_same_workflow(wf, again);
    json_decref(doc);
    spec_free(again);
    spec_free(wf);
}

/* spec_to_text is json_dumps(spec_to_json(wf), JSON_COMPACT), byte for
 * byte: the stored form of a spec does not depend on which wrote it. */
static void assert_text_is_dumped_document(const char *json) {
    spec_workflow *wf = NULL;
    spec_error err;
    if (spec_parse(json, strlen(json), NULL, NULL, NULL, &wf, &err) != 0)
        fail_msg("unexpected rejection: %s", err.message);
    json_t *doc = spec_to_json(wf);
    char *want = json_dumps(doc, JSON_COMPACT);
    size_t len = 0;
    char *got = spec_to_text(wf, &len);
    assert_non_null(got);
    assert_string_equal(got, want);
    assert_int_equal(len, strlen(want));
    free(got);
    free(want);
    json_decref(doc);
    spec_free(wf);
}

static void test_writes_the_same_text_as_the_dumped_document(void **state) {
    (void)state;
    /* defaults only */
    assert_text_is_dumped_document("{\"name\": \"w\", \"jobs\": [{\"job_id\": \"a\","
                                   " \"job_type\": \"noop\"}]}");
    /* every field; strings with every control character, quotes,
     * backslashes, a slash, DEL, UTF-8 of 2, 3 and 4 bytes and U+2028;
     * numbers that are not whole or too large for an integer */
    char name[64 * 8] = "";
    for (int c = 1; c < 0x20; c++) snprintf(name + strlen(name), 8, "\\u%04x", c);
    char json[4096];
    snprintf(json, sizeof(json),
             "{\"name\": \"%s \\\" \\\\ / \x7f \xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x98\x80\","
             " \"priority\": -3, \"jobs\": ["
             "{\"job_id\": \"a\", \"job_type\": \"t\\\"\\\\\\n\","
             " \"params\": {\"r\": 0.1, \"big\": 1e300, \"s\": \"\\u0001x\\t\","
             " \"\xc3\xa9\": [true, null, -0.0, 12345678901234]},"
             " \"cpus\": 2, \"timeout_s\": 0.1, \"max_retries\": 3, \"retry_delay_s\": 1e-7},"
             "{\"job_id\": \"b\", \"job_type\": \"noop\", \"image_path\": \"/d/\\\"x\\u0007.svs\","
             " \"branch\": \"left\", \"depends_on\": [\"a\"], \"timeout_s\": 2591999.75,"
             " \"retry_delay_s\": 2.5}]}",
             name);
    assert_text_is_dumped_document(json);
}

static void test_keeps_params_independent_of_the_document(void **state) {
    (void)state;
    json_t *root = json_pack("{s:s, s:[{s:s, s:s, s:{s:i}}]}", "name", "w", "jobs", "job_id", "a",
                             "job_type", "noop", "params", "n", 1);
    spec_workflow *wf = NULL;
    spec_error err;
    assert_int_equal(spec_from_json(root, NULL, check_job, NULL, &wf, &err), 0);
    json_t *params = json_object_get(json_array_get(json_object_get(root, "jobs"), 0), "params");
    json_object_set_new(params, "n", json_integer(2));
    assert_int_equal(json_integer_value(json_object_get(wf->jobs[0].params, "n")), 1);
    json_decref(root);
    spec_free(wf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rejects_depends_on_that_is_not_an_array),
        cmocka_unit_test(test_rejects_depends_on_element_that_is_not_a_string),
        cmocka_unit_test(test_rejects_self_dependency),
        cmocka_unit_test(test_rejects_unknown_dependency),
        cmocka_unit_test(test_folds_duplicate_dependencies),
        cmocka_unit_test(test_accepts_forward_dependency_across_branches),
        cmocka_unit_test(test_builds_branch_edges_across_interleaved_branches),
        cmocka_unit_test(test_rejects_two_job_cycle),
        cmocka_unit_test(test_rejects_three_job_cycle),
        cmocka_unit_test(test_rejects_cycle_through_later_job_of_same_branch),
        cmocka_unit_test(test_parses_10000_job_single_branch_chain),
        cmocka_unit_test(test_parses_100_interleaved_branches_of_100_jobs),
        cmocka_unit_test(test_searches_10000_deep_forward_chain_without_recursion),
        cmocka_unit_test(test_names_10000_job_cycle_within_message_size),
        cmocka_unit_test(test_round_trips_through_to_json),
        cmocka_unit_test(test_writes_the_same_text_as_the_dumped_document),
        cmocka_unit_test(test_keeps_params_independent_of_the_document),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
