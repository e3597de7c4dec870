/*
 * test_spec.c - unit tests for src/core/spec.h: one test per rule, for the
 * document, its fields and its jobs. The dependency graph (depends_on,
 * cycles, big graphs) and the round trip through spec_to_json are in
 * test_spec_dag.c; the helpers of both are in spec_fixture.h.
 *
 * Documents are written with single quotes for readability; sq() turns them
 * into JSON. Every rejection checks the status, the field path and that the
 * message names the job and the field, because that is what users see.
 */
#include "spec_fixture.h"

/* ----------------------------------------------------------- acceptance */

static void test_accepts_design_compatibility_example(void **state) {
    (void)state;
    spec_workflow *wf = parse_ok(
        "{'name': 'Cell Segmentation Workflow', 'jobs': ["
        "{'job_id': 'job-1', 'job_type': 'cell_segmentation', 'image_path': '/path/to/image.svs',"
        " 'branch': 'branch-1'},"
        "{'job_id': 'job-2', 'job_type': 'tissue_mask', 'image_path': '/path/to/image.svs',"
        " 'branch': 'branch-1', 'depends_on': ['job-1']}]}");
    assert_string_equal(wf->name, "Cell Segmentation Workflow");
    assert_int_equal(wf->n_jobs, 2);
    assert_string_equal(wf->jobs[0].job_id, "job-1");
    assert_string_equal(wf->jobs[1].job_type, "tissue_mask");
    assert_string_equal(wf->jobs[1].image_path, "/path/to/image.svs");
    assert_string_equal(wf->jobs[1].branch, "branch-1");
    assert_int_equal(wf->jobs[1].n_depends_on, 1);
    assert_string_equal(wf->jobs[1].depends_on[0], "job-1");
    /* Exactly one edge, job-2 <- job-1: the branch edge and depends_on fold. */
    assert_int_equal(n_edges(wf), 1);
    const uint32_t *p;
    assert_int_equal(preds_of(wf, 0, &p), 0);
    assert_int_equal(preds_of(wf, 1, &p), 1);
    assert_int_equal(p[0], 0);
    assert_int_equal(succs_of(wf, 0, &p), 1);
    assert_int_equal(p[0], 1);
    assert_int_equal(wf->dag.branch_prev[0], -1);
    assert_int_equal(wf->dag.branch_prev[1], 0);
    spec_free(wf);
}

static void test_fills_defaults(void **state) {
    (void)state;
    spec_workflow *wf = parse_ok(one_job(""));
    const spec_job *job = &wf->jobs[0];
    assert_int_equal(wf->priority, 0);
    assert_null(job->image_path);
    assert_string_equal(job->branch, "default");
    assert_int_equal(job->n_depends_on, 0);
    assert_true(json_is_object(job->params));
    assert_int_equal(json_object_size(job->params), 0);
    assert_int_equal(job->cpus, 1);
    assert_true(job->timeout_s == 0);
    assert_int_equal(job->max_retries, 0);
    assert_true(job->retry_delay_s == 10);
    spec_free(wf);
}

static void test_accepts_null_for_optional_fields(void **state) {
    (void)state;
    spec_workflow *wf = parse_ok(
        "{'name': 'w', 'priority': null, 'jobs': [{'job_id': 'a', 'job_type': 'noop', "
        "'image_path': null, 'branch': null, 'depends_on': null, 'params': null, 'cpus': null, "
        "'timeout_s': null, 'max_retries': null, 'retry_delay_s': null}]}");
    assert_string_equal(wf->jobs[0].branch, "default");
    assert_int_equal(wf->jobs[0].cpus, 1);
    spec_free(wf);
}

static void test_accepts_every_field_at_its_limits(void **state) {
    (void)state;
    spec_workflow *wf = parse_ok(
        "{'name': 'w', 'priority': -1000, 'jobs': [{'job_id': 'a', 'job_type': 'sleep', "
        "'params': {'seconds': 1.5}, 'cpus': 1024, 'timeout_s': 2592000, 'max_retries': 100, "
        "'retry_delay_s': 86400}, {'job_id': 'b', 'job_type': 'noop', 'cpus': 1, 'timeout_s': 0.5,"
        " 'max_retries': 0, 'retry_delay_s': 0}]}");
    assert_int_equal(wf->priority, -1000);
    assert_int_equal(wf->jobs[0].cpus, 1024);
    assert_true(wf->jobs[0].timeout_s == 2592000);
    assert_int_equal(wf->jobs[0].max_retries, 100);
    assert_true(wf->jobs[0].retry_delay_s == 86400);
    assert_true(wf->jobs[1].timeout_s == 0.5);
    assert_true(wf->jobs[1].retry_delay_s == 0);
    assert_true(json_number_value(json_object_get(wf->jobs[0].params, "seconds")) == 1.5);
    spec_free(wf);
    wf = parse_ok("{'name': 'w', 'priority': 1000, 'jobs': [{'job_id': 'a', 'job_type': 'noop'}]}");
    assert_int_equal(wf->priority, 1000);
    spec_free(wf);
}

static void test_accepts_job_id_of_64_characters(void **state) {
    (void)state;
    char extra[256];
    snprintf(extra, sizeof extra,
             "{'name': 'w', 'jobs': [{'job_id': '%064d', 'job_type': 'noop'}]}", 7);
    spec_workflow *wf = parse_ok(extra);
    assert_int_equal(strlen(wf->jobs[0].job_id), 64);
    spec_free(wf);
}

static void test_accepts_any_job_type_without_check(void **state) {
    (void)state;
    const char *json =
        "{\"name\": \"w\", \"jobs\": [{\"job_id\": \"a\", \"job_type\": \"whatever\"}]}";
    spec_workflow *wf = NULL;
    spec_error err;
    assert_int_equal(spec_parse(json, strlen(json), NULL, NULL, NULL, &wf, &err), 0);
    assert_string_equal(wf->jobs[0].job_type, "whatever");
    spec_free(wf);
}

static void test_parses_text_that_is_not_nul_terminated(void **state) {
    (void)state;
    char *json = sq(one_job(""));
    size_t len = strlen(json);
    char *copy = malloc(len);
    memcpy(copy, json, len); /* no terminator: ASan catches an over-read */
    spec_workflow *wf = NULL;
    spec_error err;
    assert_int_equal(spec_parse(copy, len, NULL, check_job, NULL, &wf, &err), 0);
    spec_free(wf);
    free(copy);
    free(json);
}

static void test_finds_jobs_by_id(void **state) {
    (void)state;
    spec_workflow *wf = parse_ok("{'name': 'w', 'jobs': [{'job_id': 'a', 'job_type': 'noop'}, "
                                 "{'job_id': 'b', 'job_type': 'noop'}]}");
    assert_int_equal(spec_find_job(wf, "a"), 0);
    assert_int_equal(spec_find_job(wf, "b"), 1);
    assert_int_equal(spec_find_job(wf, "c"), -1);
    assert_int_equal(spec_find_job(wf, ""), -1);
    spec_free(wf);
}

/* --------------------------------------------------------- the document */

static void test_rejects_non_json(void **state) {
    (void)state;
    expect_fail("{'name': 'w', 'jobs': [", NULL, 400, "", NULL, "not valid JSON");
    expect_fail("hello", NULL, 400, "", NULL, "not valid JSON");
    expect_fail("", NULL, 400, "", NULL, "not valid JSON");
    expect_fail("{'name': 'w'} trailing", NULL, 400, "", NULL, "not valid JSON");
}

static void test_rejects_invalid_utf8(void **state) {
    (void)state;
    expect_fail("{'name': 'w\xff\xfe', 'jobs': []}", NULL, 400, "", NULL, "not valid UTF-8");
    expect_fail("{'name': '\xc3', 'jobs': []}", NULL, 400, "", NULL, "not valid UTF-8");
}

static void test_rejects_text_nested_too_deep(void **state) {
    (void)state;
    char doc[512];
    int at = snprintf(doc, sizeof doc, "%s",
                      "{'name': 'w', 'jobs': [{'job_id': 'a', 'job_type': "
                      "'noop', 'params': {'x': ");
    for (int i = 0; i < 40; i++) doc[at++] = '[';
    for (int i = 0; i < 40; i++) doc[at++] = ']';
    snprintf(doc + at, sizeof doc - (size_t)at, "}}]}");
    expect_fail(doc, NULL, 400, "", NULL, "nested more than 32 levels");
}

static void test_ignores_brackets_inside_strings_when_checking_depth(void **state) {
    (void)state;
    spec_workflow *wf = parse_ok(
        one_job("'params': {'x': '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\\\\' {{{{'}"));
    spec_free(wf);
}

static void test_rejects_decoded_document_nested_too_deep(void **state) {
    (void)state;
    json_t *root = json_pack("{s:s, s:[{s:s, s:s, s:{s:[]}}]}", "name", "w", "jobs", "job_id", "a",
                             "job_type", "noop", "params", "x");
    json_t *inner = json_object_get(
        json_object_get(json_array_get(json_object_get(root, "jobs"), 0), "params"), "x");
    for (int i = 0; i < 40; i++) {
        json_t *next = json_array();
        json_array_append_new(inner, next);
        inner = next;
    }
    spec_workflow *wf = NULL;
    spec_error err;
    assert_int_equal(spec_from_json(root, NULL, check_job, NULL, &wf, &err), -1);
    assert_int_equal(err.http_status, 400);
    assert_string_equal(err.job_id, "a");
    assert_contains(err.field, "jobs[0].params.x[0][0]");
    assert_contains(err.message, "jobs[0] (job \"a\"): params.x[0]");
    assert_contains(err.message, "nested more than 32 levels");
    json_decref(root);
}

static void test_rejects_duplicate_json_key(void **state) {
    (void)state;
    expect_fail("{'name': 'w', 'name': 'v', 'jobs': [{'job_id': 'a', 'job_type': 'noop'}]}", NULL,
                422, "", NULL, "duplicate object key");
}

static void test_rejects_integer_too_large_for_json(void **state) {
    (void)state;
    expect_fail(one_job("'cpus': 99999999999999999999999"), NULL, 422, "", NULL, "too big");
}

static void test_rejects_top_level_that_is_not_an_object(void **state) {
    (void)state;
    expect_fail("[{'name': 'w'}]", NULL, 422, "", NULL, "must be a JSON object");
    expect_fail("'w'", NULL, 422, "", NULL, "not a string");
    expect_fail("null", NULL, 422, "", NULL, "must be a JSON object");
}

static void test_rejects_unknown_top_level_key(void **state) {
    (void)state;
    spec_error err = expect_fail("{'name': 'w', 'job': [], 'jobs': [{'job_id': 'a', 'job_type': "
                                 "'noop'}]}",
                                 NULL, 422, "job", NULL, "unknown key");
    assert_contains(err.message,
                    "job: unknown key; a workflow has only the keys name, priority, jobs");
}

static void test_rejects_missing_name(void **state) {
    (void)state;
    expect_fail("{'jobs': [{'job_id': 'a', 'job_type': 'noop'}]}", NULL, 422, "name", NULL,
                "name: missing");
}

static void test_rejects_empty_name(void **state) {
    (void)state;
    expect_fail("{'name': '', 'jobs': [{'job_id': 'a', 'job_type': 'noop'}]}", NULL, 422, "name",
                NULL, "name: must not be empty");
}

static void test_rejects_name_that_is_not_a_string(void **state) {
    (void)state;
    expect_fail("{'name': 3, 'jobs': [{'job_id': 'a', 'job_type': 'noop'}]}", NULL, 422, "name",
                NULL, "name: must be a string, not an integer");
}

static void test_rejects_name_too_long(void **state) {
    (void)state;
    char doc[1024];
    snprintf(doc, sizeof doc, "{'name': '%0257d', 'jobs': [{'job_id': 'a', 'job_type': 'noop'}]}",
             1);
    expect_fail(doc, NULL, 422, "name", NULL, "is 257 bytes long; at most 256");
    snprintf(doc, sizeof doc, "{'name': '%0256d', 'jobs': [{'job_id': 'a', 'job_type': 'noop'}]}",
             1);
    spec_free(parse_ok(doc));
}

static void test_rejects_priority_that_is_not_an_integer(void **state) {
    (void)state;
    expect_fail("{'name': 'w', 'priority': 1.5, 'jobs': [{'job_id': 'a', 'job_type': 'noop'}]}",
                NULL, 422, "priority", NULL,
                "priority: must be an integer from -1000 to 1000, not 1.5");
    expect_fail("{'name': 'w', 'priority': 'high', 'jobs': [{'job_id': 'a', 'job_type': 'noop'}]}",
                NULL, 422, "priority", NULL, "not a string");
}

static void test_rejects_priority_out_of_range(void **state) {
    (void)state;
    expect_fail("{'name': 'w', 'priority': 1001, 'jobs': [{'job_id': 'a', 'job_type': 'noop'}]}",
                NULL, 422, "priority", NULL, "1001 is out of range");
    expect_fail("{'name': 'w', 'priority': -1001, 'jobs': [{'job_id': 'a', 'job_type': 'noop'}]}",
                NULL, 422, "priority", NULL, "-1001 is out of range");
}

static void test_rejects_missing_jobs(void **state) {
    (void)state;
    expect_fail("{'name': 'w'}", NULL, 422, "jobs", NULL, "jobs: missing");
}

static void test_rejects_empty_jobs(void **state) {
    (void)state;
    expect_fail("{'name': 'w', 'jobs': []}", NULL, 422, "jobs", NULL, "at least one job");
}

static void test_rejects_jobs_that_is_not_an_array(void **state) {
    (void)state;
    expect_fail("{'name': 'w', 'jobs': {'job_id': 'a'}}", NULL, 422, "jobs", NULL,
                "must be an array of jobs, not an object");
}

static void test_rejects_more_jobs_than_the_limit(void **state) {
    (void)state;
    spec_limits lim;
    spec_limits_default(&lim);
    lim.max_jobs = 2;
    expect_fail("{'name': 'w', 'jobs': [{'job_id': 'a', 'job_type': 'noop'}, {'job_id': 'b', "
                "'job_type': 'noop'}, {'job_id': 'c', 'job_type': 'noop'}]}",
                &lim, 422, "jobs", NULL, "3 jobs is more than the limit of 2");
}

static void test_rejects_string_longer_than_max_string(void **state) {
    (void)state;
    spec_limits lim;
    spec_limits_default(&lim);
    lim.max_string = 12; /* longer than every key a job has */
    expect_fail(one_job("'image_path': '/123456789012'"), &lim, 422, "jobs[0].image_path", "a",
                "13 bytes long; at most 12");
    expect_fail(one_job("'params': {'list': ['ok', '1234567890123']}"), &lim, 422,
                "jobs[0].params.list[1]", "a", "13 bytes long; at most 12");
    expect_fail(one_job("'params': {'1234567890123': 1}"), &lim, 422, "jobs[0].params", "a",
                "a key is 13 bytes long");
    expect_fail("{'name': '1234567890123', 'jobs': [{'job_id': 'a', 'job_type': 'noop'}]}", &lim,
                422, "name", NULL, "name: the string is 13 bytes long; at most 12");
}

/* Messages go into JSON error bodies, so they must be valid UTF-8 on one
 * line even when they repeat a long multibyte value or jansson's own text. */
static void test_error_messages_are_valid_utf8(void **state) {
    (void)state;
    char e_acute[400] = "", doc[1024];
    for (int i = 0; i < 150; i++) strcat(e_acute, "\xc3\xa9");
    const char *formats[] = {
        "{'name': '%s' x}", /* jansson's text, cut at 160 */
        "{'name': 'w', 'jobs': [{'job_id': '%s', 'job_type': 'noop'}]}", /* quoted id, cut */
        "{'name': 'w', '%s': 1}", /* unknown key in the path */
        "{'name': 'w', 'jobs': [{'job_id': 'a', 'job_type': 'noop', 'depends_on': ['%s']}]}",
    };
    for (size_t k = 0; k < sizeof formats / sizeof formats[0]; k++) {
        snprintf(doc, sizeof doc, formats[k], e_acute);
        spec_workflow *wf = NULL;
        spec_error err;
        assert_int_equal(parse_text(doc, NULL, &wf, &err), -1);
        json_t *message = json_string(err.message), *field = json_string(err.field);
        if (message == NULL || field == NULL) fail_msg("not UTF-8: %s", err.message);
        assert_null(strchr(err.message, '\n'));
        json_decref(message);
        json_decref(field);
    }
}

/* ------------------------------------------------------------------ jobs */

static void test_rejects_job_that_is_not_an_object(void **state) {
    (void)state;
    expect_fail("{'name': 'w', 'jobs': [{'job_id': 'a', 'job_type': 'noop'}, 'b']}", NULL, 422,
                "jobs[1]", NULL,
                "jobs[1]: must be an object with at least job_id and job_type, not a string");
}

static void test_rejects_missing_job_id(void **state) {
    (void)state;
    expect_fail("{'name': 'w', 'jobs': [{'job_type': 'noop'}]}", NULL, 422, "jobs[0].job_id", NULL,
                "jobs[0]: job_id: missing");
}

static void test_rejects_job_id_that_is_not_a_string(void **state) {
    (void)state;
    expect_fail("{'name': 'w', 'jobs': [{'job_id': 7, 'job_type': 'noop'}]}", NULL, 422,
                "jobs[0].job_id", NULL, "jobs[0]: job_id: must be a string, not an integer");
}

static void test_rejects_empty_job_id(void **state) {
    (void)state;
    expect_fail("{'name': 'w', 'jobs': [{'job_id': '', 'job_type': 'noop'}]}", NULL, 422,
                "jobs[0].job_id", NULL,
                "jobs[0]: job_id \"\": must be 1-64 characters of A-Z a-z 0-9 . _ -");
}

static void test_rejects_job_id_of_65_characters(void **state) {
    (void)state;
    char doc[256];
    snprintf(doc, sizeof doc, "{'name': 'w', 'jobs': [{'job_id': '%065d', 'job_type': 'noop'}]}",
             7);
    expect_fail(doc, NULL, 422, "jobs[0].job_id", NULL, "must be 1-64 characters");
}

static void test_rejects_job_id_with_space(void **state) {
    (void)state;
    expect_fail("{'name': 'w', 'jobs': [{'job_id': 'j0', 'job_type': 'noop'}, {'job_id': 'j1', "
                "'job_type': 'noop'}, {'job_id': 'j2', 'job_type': 'noop'}, {'job_id': 'a b', "
                "'job_type': 'noop'}]}",
                NULL, 422, "jobs[3].job_id", NULL,
                "jobs[3]: job_id \"a b\": must be 1-64 characters of A-Z a-z 0-9 . _ -");
}

static void test_rejects_job_id_with_slash(void **state) {
    (void)state;
    expect_fail("{'name': 'w', 'jobs': [{'job_id': '../x', 'job_type': 'noop'}]}", NULL, 422,
                "jobs[0].job_id", NULL, "job_id \"../x\": must be 1-64 characters");
}

/* "." and ".." are one path component each, but the wrong one: the job's
 * directory would be the workflow's own or the shared one above it
 * (issue 12, defect 5). Dots inside an id stay allowed. */
static void test_rejects_dot_and_dot_dot_job_ids(void **state) {
    (void)state;
    expect_fail("{'name': 'w', 'jobs': [{'job_id': '.', 'job_type': 'noop'}]}", NULL, 422,
                "jobs[0].job_id", NULL, "job_id \".\": must be 1-64 characters");
    spec_error err = expect_fail("{'name': 'w', 'jobs': [{'job_id': 'a', 'job_type': 'noop'}, "
                                 "{'job_id': '..', 'job_type': 'noop'}]}",
                                 NULL, 422, "jobs[1].job_id", NULL, "not \".\" or \"..\"");
    assert_contains(err.message, "jobs[1]: job_id \"..\"");
    spec_workflow *wf = parse_ok("{'name': 'w', 'jobs': [{'job_id': '...', 'job_type': 'noop'}, "
                                 "{'job_id': '.a', 'job_type': 'noop'}, "
                                 "{'job_id': 'a..b', 'job_type': 'noop'}]}");
    assert_string_equal(wf->jobs[0].job_id, "...");
    spec_free(wf);
}

/* A check may refuse a job for its id: the error names jobs[i].job_id. */
static void test_check_failure_about_the_job_id_names_it(void **state) {
    (void)state;
    expect_fail("{'name': 'w', 'jobs': [{'job_id': 'a', 'job_type': 'noop'}, "
                "{'job_id': '-h', 'job_type': 'noop'}]}",
                NULL, 422, "jobs[1].job_id", "-h", "would begin an argument with '-'");
}

static void test_escapes_hostile_job_id_in_message(void **state) {
    (void)state;
    spec_error err =
        expect_fail("{'name': 'w', 'jobs': [{'job_id': 'a\\nb\\\\', 'job_type': 'noop'}]}", NULL,
                    422, "jobs[0].job_id", NULL, "must be 1-64");
    assert_contains(err.message, "job_id \"a\\u000ab\\\\\"");
    assert_null(strchr(err.message, '\n'));
}

static void test_rejects_duplicate_job_id(void **state) {
    (void)state;
    expect_fail("{'name': 'w', 'jobs': [{'job_id': 'a', 'job_type': 'noop'}, {'job_id': 'b', "
                "'job_type': 'noop'}, {'job_id': 'a', 'job_type': 'noop'}]}",
                NULL, 422, "jobs[2].job_id", "a",
                "duplicate job_id \"a\", already used by jobs[0]");
}

static void test_rejects_unknown_job_key(void **state) {
    (void)state;
    spec_error err = expect_fail(one_job("'cpu': 2"), NULL, 422, "jobs[0].cpu", "a", "unknown key");
    assert_contains(err.message, "jobs[0] (job \"a\"): cpu: unknown key; a job has only the keys "
                                 "job_id, job_type");
    expect_fail(one_job("'my key': 2"), NULL, 422, "jobs[0][\"my key\"]", "a", "unknown key");
}

static void test_rejects_missing_job_type(void **state) {
    (void)state;
    expect_fail("{'name': 'w', 'jobs': [{'job_id': 'a'}]}", NULL, 422, "jobs[0].job_type", "a",
                "job_type: missing");
}

static void test_rejects_job_type_that_is_not_a_string(void **state) {
    (void)state;
    expect_fail("{'name': 'w', 'jobs': [{'job_id': 'a', 'job_type': ['noop']}]}", NULL, 422,
                "jobs[0].job_type", "a", "job_type: must be a string, not an array");
}

static void test_rejects_unknown_job_type(void **state) {
    (void)state;
    expect_fail("{'name': 'w', 'jobs': [{'job_id': 'a', 'job_type': 'frobnicate'}]}", NULL, 422,
                "jobs[0].job_type", "a",
                "jobs[0] (job \"a\"): job_type: unknown job type \"frobnicate\" (known: noop");
}

static void test_rejects_bad_params_with_field_path(void **state) {
    (void)state;
    expect_fail("{'name': 'w', 'jobs': [{'job_id': 'a', 'job_type': 'sleep', 'params': "
                "{'seconds': -1}}]}",
                NULL, 422, "jobs[0].params.seconds", "a",
                "jobs[0] (job \"a\"): params.seconds: must be a number >= 0");
}

static void test_rejects_params_that_is_not_an_object(void **state) {
    (void)state;
    expect_job_fail("'params': [1]", "params", "params: must be an object, not an array");
}

static void test_rejects_image_path_that_is_not_a_string(void **state) {
    (void)state;
    expect_job_fail("'image_path': 5", "image_path",
                    "image_path: must be a string, not an integer");
    expect_job_fail("'image_path': ''", "image_path", "image_path: must not be empty");
}

static void test_rejects_invalid_branch(void **state) {
    (void)state;
    expect_job_fail("'branch': 1", "branch", "branch: must be a string, not an integer");
    expect_job_fail("'branch': ''", "branch", "branch \"\": must be 1-64 characters");
    expect_job_fail("'branch': 'a/b'", "branch", "branch \"a/b\": must be 1-64 characters");
}

static void test_rejects_cpus_that_is_not_an_integer(void **state) {
    (void)state;
    expect_job_fail("'cpus': '2'", "cpus", "cpus: must be an integer from 1 to 1024, not a string");
    expect_job_fail("'cpus': 1.5", "cpus", "must be an integer from 1 to 1024, not 1.5");
    expect_job_fail("'cpus': 2.0", "cpus", "must be an integer from 1 to 1024, not 2.0");
    expect_job_fail("'cpus': true", "cpus", "not a boolean");
}

static void test_rejects_cpus_out_of_range(void **state) {
    (void)state;
    expect_job_fail("'cpus': 0", "cpus", "0 is out of range; must be an integer from 1 to 1024");
    expect_job_fail("'cpus': 1025", "cpus", "1025 is out of range");
}

static void test_rejects_cpus_above_server_limit(void **state) {
    (void)state;
    spec_limits lim;
    spec_limits_default(&lim);
    lim.max_cpus = 8;
    expect_fail(one_job("'cpus': 9"), &lim, 422, "jobs[0].cpus", "a",
                "9 is more than this server allows per job; ask for at most 8");
    spec_workflow *wf = NULL;
    spec_error err;
    char *json = sq(one_job("'cpus': 8"));
    assert_int_equal(spec_parse(json, strlen(json), &lim, check_job, NULL, &wf, &err), 0);
    spec_free(wf);
    free(json);
}

static void test_rejects_timeout_that_is_not_a_number(void **state) {
    (void)state;
    expect_job_fail("'timeout_s': '60'", "timeout_s", "timeout_s: must be a number of seconds");
}

static void test_rejects_timeout_out_of_range(void **state) {
    (void)state;
    expect_job_fail("'timeout_s': -1", "timeout_s", "-1 is out of range");
    expect_job_fail("'timeout_s': 2592000.5", "timeout_s",
                    "out of range; must be a number of seconds from 0 to 2592000");
}

static void test_rejects_max_retries_that_is_not_an_integer(void **state) {
    (void)state;
    expect_job_fail("'max_retries': 1.5", "max_retries",
                    "must be an integer from 0 to 100, not 1.5");
    expect_job_fail("'max_retries': '3'", "max_retries", "not a string");
}

static void test_rejects_max_retries_out_of_range(void **state) {
    (void)state;
    expect_job_fail("'max_retries': -1", "max_retries", "-1 is out of range");
    expect_job_fail("'max_retries': 101", "max_retries", "101 is out of range");
}

static void test_rejects_retry_delay_that_is_not_a_number(void **state) {
    (void)state;
    expect_job_fail("'retry_delay_s': false", "retry_delay_s", "not a boolean");
}

static void test_rejects_retry_delay_out_of_range(void **state) {
    (void)state;
    expect_job_fail("'retry_delay_s': -0.5", "retry_delay_s", "-0.5 is out of range");
    expect_job_fail("'retry_delay_s': 86401", "retry_delay_s", "86401 is out of range");
}

/* Every job-level rejection names the job and the field, whatever job is at
 * fault: the same mistakes made by jobs[1] "beta". */
static void test_every_job_error_names_job_and_field(void **state) {
    (void)state;
    static const struct {
        const char *extra, *field;
    } cases[] = {
        {"'job_type': 5", "job_type"},
        {"'job_type': 'nope'", "job_type"},
        {"'image_path': 1", "image_path"},
        {"'branch': 'a b'", "branch"},
        {"'depends_on': 'x'", "depends_on"},
        {"'depends_on': [2]", "depends_on[0]"},
        {"'depends_on': ['zz']", "depends_on[0]"},
        {"'depends_on': ['beta']", "depends_on[0]"},
        {"'params': 1", "params"},
        {"'cpus': 0", "cpus"},
        {"'timeout_s': -1", "timeout_s"},
        {"'max_retries': 1000", "max_retries"},
        {"'retry_delay_s': 'x'", "retry_delay_s"},
        {"'typo': 1", "typo"},
        {"'job_type': 'sleep', 'params': {}", "params.seconds"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char doc[512], field[64];
        /* A case that sets job_type replaces the default one (a repeated
         * key would be rejected before the rule under test). */
        bool sets_type = strstr(cases[k].extra, "'job_type'") != NULL;
        snprintf(doc, sizeof doc,
                 "{'name': 'w', 'jobs': [{'job_id': 'alpha', 'job_type': 'noop'}, "
                 "{'job_id': 'beta', %s%s}]}",
                 sets_type ? "" : "'job_type': 'noop', ", cases[k].extra);
        snprintf(field, sizeof field, "jobs[1].%s", cases[k].field);
        spec_error err = expect_fail(doc, NULL, 422, field, "beta", "");
        assert_contains(err.message, "jobs[1] (job \"beta\"): ");
        assert_contains(err.message, cases[k].field);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_design_compatibility_example),
        cmocka_unit_test(test_fills_defaults),
        cmocka_unit_test(test_accepts_null_for_optional_fields),
        cmocka_unit_test(test_accepts_every_field_at_its_limits),
        cmocka_unit_test(test_accepts_job_id_of_64_characters),
        cmocka_unit_test(test_accepts_any_job_type_without_check),
        cmocka_unit_test(test_parses_text_that_is_not_nul_terminated),
        cmocka_unit_test(test_finds_jobs_by_id),
        cmocka_unit_test(test_rejects_non_json),
        cmocka_unit_test(test_rejects_invalid_utf8),
        cmocka_unit_test(test_rejects_text_nested_too_deep),
        cmocka_unit_test(test_ignores_brackets_inside_strings_when_checking_depth),
        cmocka_unit_test(test_rejects_decoded_document_nested_too_deep),
        cmocka_unit_test(test_rejects_duplicate_json_key),
        cmocka_unit_test(test_rejects_integer_too_large_for_json),
        cmocka_unit_test(test_rejects_top_level_that_is_not_an_object),
        cmocka_unit_test(test_rejects_unknown_top_level_key),
        cmocka_unit_test(test_rejects_missing_name),
        cmocka_unit_test(test_rejects_empty_name),
        cmocka_unit_test(test_rejects_name_that_is_not_a_string),
        cmocka_unit_test(test_rejects_name_too_long),
        cmocka_unit_test(test_rejects_priority_that_is_not_an_integer),
        cmocka_unit_test(test_rejects_priority_out_of_range),
        cmocka_unit_test(test_rejects_missing_jobs),
        cmocka_unit_test(test_rejects_empty_jobs),
        cmocka_unit_test(test_rejects_jobs_that_is_not_an_array),
        cmocka_unit_test(test_rejects_more_jobs_than_the_limit),
        cmocka_unit_test(test_rejects_string_longer_than_max_string),
        cmocka_unit_test(test_error_messages_are_valid_utf8),
        cmocka_unit_test(test_rejects_job_that_is_not_an_object),
        cmocka_unit_test(test_rejects_missing_job_id),
        cmocka_unit_test(test_rejects_job_id_that_is_not_a_string),
        cmocka_unit_test(test_rejects_empty_job_id),
        cmocka_unit_test(test_rejects_job_id_of_65_characters),
        cmocka_unit_test(test_rejects_job_id_with_space),
        cmocka_unit_test(test_rejects_job_id_with_slash),
        cmocka_unit_test(test_rejects_dot_and_dot_dot_job_ids),
        cmocka_unit_test(test_check_failure_about_the_job_id_names_it),
        cmocka_unit_test(test_escapes_hostile_job_id_in_message),
        cmocka_unit_test(test_rejects_duplicate_job_id),
        cmocka_unit_test(test_rejects_unknown_job_key),
        cmocka_unit_test(test_rejects_missing_job_type),
        cmocka_unit_test(test_rejects_job_type_that_is_not_a_string),
        cmocka_unit_test(test_rejects_unknown_job_type),
        cmocka_unit_test(test_rejects_bad_params_with_field_path),
        cmocka_unit_test(test_rejects_params_that_is_not_an_object),
        cmocka_unit_test(test_rejects_image_path_that_is_not_a_string),
        cmocka_unit_test(test_rejects_invalid_branch),
        cmocka_unit_test(test_rejects_cpus_that_is_not_an_integer),
        cmocka_unit_test(test_rejects_cpus_out_of_range),
        cmocka_unit_test(test_rejects_cpus_above_server_limit),
        cmocka_unit_test(test_rejects_timeout_that_is_not_a_number),
        cmocka_unit_test(test_rejects_timeout_out_of_range),
        cmocka_unit_test(test_rejects_max_retries_that_is_not_an_integer),
        cmocka_unit_test(test_rejects_max_retries_out_of_range),
        cmocka_unit_test(test_rejects_retry_delay_that_is_not_a_number),
        cmocka_unit_test(test_rejects_retry_delay_out_of_range),
        cmocka_unit_test(test_every_job_error_names_job_and_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
