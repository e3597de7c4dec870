/*
 * spec_fixture.h - the helpers of the spec tests (test_spec.c, test_spec_dag.c):
 * a check function like the job registry's, documents written with single
 * quotes, and parsing that expects an acceptance or a rejection with its
 * status, field path and message. Header-only (static inline), like
 * testlib.h, so each test stays one binary and an unused helper is no warning.
 */
#ifndef TESSERA_TESTS_SPEC_FIXTURE_H
#define TESSERA_TESTS_SPEC_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/spec.h"

/* A check function like the job registry's: a few known types, and "sleep"
 * needs params.seconds >= 0. */
static inline int check_job(void *ctx, const char *job_id, const char *job_type, json_t *params,
                            const char *image_path, char *err, size_t errlen) {
    (void)ctx;
    (void)image_path;
    if (strcmp(job_id, "-h") == 0) { /* as a tool whose argv starts with {job_id} */
        snprintf(err, errlen, "job_id: \"-h\" would begin an argument with '-'");
        return -1;
    }
    if (strcmp(job_type, "noop") == 0 || strcmp(job_type, "tissue_mask") == 0 ||
        strcmp(job_type, "cell_segmentation") == 0)
        return 0;
    if (strcmp(job_type, "sleep") == 0) {
        json_t *seconds = json_object_get(params, "seconds");
        if (!json_is_number(seconds) || json_number_value(seconds) < 0) {
            snprintf(err, errlen, "params.seconds: must be a number >= 0");
            return -1;
        }
        return 0;
    }
    snprintf(err, errlen,
             "unknown job type \"%s\" (known: noop, sleep, tissue_mask, "
             "cell_segmentation)",
             job_type);
    return -1;
}

/* The single-quoted document as JSON (no test needs a literal quote). */
static inline char *sq(const char *text) {
    char *json = strdup(text);
    for (char *p = json; *p != '\0'; p++)
        if (*p == '\'') *p = '"';
    return json;
}

static inline int parse_text(const char *single_quoted, const spec_limits *lim, spec_workflow **wf,
                             spec_error *err) {
    char *json = sq(single_quoted);
    memset(err, 0, sizeof *err);
    int rc = spec_parse(json, strlen(json), lim, check_job, NULL, wf, err);
    free(json);
    return rc;
}

static inline spec_workflow *parse_ok(const char *single_quoted) {
    spec_workflow *wf = NULL;
    spec_error err;
    int rc = parse_text(single_quoted, NULL, &wf, &err);
    if (rc != 0) fail_msg("unexpected rejection: %s", err.message);
    assert_non_null(wf);
    return wf;
}

static inline void assert_contains(const char *haystack, const char *needle) {
    if (strstr(haystack, needle) == NULL)
        fail_msg("\"%s\"\n  does not contain \"%s\"", haystack, needle);
}

/* Parses and expects a rejection with this status and field (exact), a
 * message containing part, and, when job_id is given, the job named in both
 * err.job_id and the message together with the field inside the job. */
static inline spec_error expect_fail(const char *single_quoted, const spec_limits *lim, int status,
                                     const char *field, const char *job_id, const char *part) {
    spec_workflow *wf = NULL;
    spec_error err;
    int rc = parse_text(single_quoted, lim, &wf, &err);
    if (rc == 0) {
        spec_free(wf);
        fail_msg("accepted, expected \"%s\"", part);
    }
    assert_null(wf);
    assert_int_equal(err.http_status, status);
    assert_string_equal(err.field, field);
    assert_contains(err.message, part);
    if (job_id != NULL) {
        char named[96];
        snprintf(named, sizeof named, "(job \"%s\")", job_id);
        assert_string_equal(err.job_id, job_id);
        assert_contains(err.message, named);
        const char *inner = strchr(field, '.');
        if (inner != NULL) assert_contains(err.message, inner + 1);
    }
    return err;
}

/* A one-job workflow whose job "a" (type noop) has extra fields. */
static inline const char *one_job(const char *extra) {
    static char buf[8192];
    snprintf(buf, sizeof buf, "{'name': 'w', 'jobs': [{'job_id': 'a', 'job_type': 'noop'%s%s}]}",
             extra[0] != '\0' ? ", " : "", extra);
    return buf;
}

/* Rejects a field of the one job "a": status 422, field "jobs[0].<field>". */
static inline void expect_job_fail(const char *extra, const char *field, const char *part) {
    char full[128];
    snprintf(full, sizeof full, "jobs[0].%s", field);
    expect_fail(one_job(extra), NULL, 422, full, "a", part);
}

static inline size_t n_edges(const spec_workflow *wf) {
    return wf->dag.pred_start[wf->dag.n];
}

/* Preds of job i as listed, for comparing with expectations. */
static inline size_t preds_of(const spec_workflow *wf, size_t i, const uint32_t **out) {
    *out = wf->dag.pred + wf->dag.pred_start[i];
    return wf->dag.pred_start[i + 1] - wf->dag.pred_start[i];
}

static inline size_t succs_of(const spec_workflow *wf, size_t i, const uint32_t **out) {
    *out = wf->dag.succ + wf->dag.succ_start[i];
    return wf->dag.succ_start[i + 1] - wf->dag.succ_start[i];
}

#endif
