/*
 * test_protocol.c - the runner protocol (src/exec/protocol.c) and the state
 * directory's layout (src/util/layout.c): spec files, progress lines from a
 * pipe or a growing file, exit markers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exec/protocol.h"
#include "util/layout.h"
#include "util/util.h"
#include "testlib.h"

static int setup(void **state) {
    char *dir = ts_strdup("/tmp/test_protocol.XXXXXX");
    assert_non_null(mkdtemp(dir));
    *state = dir;
    return 0;
}

static int teardown(void **state) {
    test_rm_rf(*state);
    free(*state);
    return 0;
}

static void append(const char *path, const char *text) {
    FILE *fp = fopen(path, "a");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* ---- layout ---- */

static void test_layout_paths(void **state) {
    (void)state;
    char *p = layout_work_dir("/s", 12, "cells");
    assert_string_equal(p, "/s/work/12/cells");
    free(p);
    p = layout_result_dir("/s", 12, "cells");
    assert_string_equal(p, "/s/results/12/cells");
    free(p);
    p = layout_job_log("/s", 12, "cells");
    assert_string_equal(p, "/s/work/12/cells/job.log");
    free(p);
    p = layout_attempt_path("/s/work/12/cells", 3, LAYOUT_EXIT);
    assert_string_equal(p, "/s/work/12/cells/attempt-3.exit");
    free(p);
    p = layout_attempt_path("/w", 1, LAYOUT_PROGRESS);
    assert_string_equal(p, "/w/attempt-1.progress");
    free(p);
    p = layout_attempt_path("/w", 2, LAYOUT_SPEC);
    assert_string_equal(p, "/w/attempt-2.json");
    free(p);
    p = layout_file_path("/s", LAYOUT_DB);
    assert_string_equal(p, "/s/tessera.db");
    free(p);
    p = layout_file_path("/s", LAYOUT_DOORBELL);
    assert_string_equal(p, "/s/scheduler.sock");
    free(p);
    p = layout_result_tmp("/s/results/1/a", 2, 99);
    assert_string_equal(p, "/s/results/1/a.tmp-2-99");
    free(p);
}

/* A job_id made only of dots must not name a directory above its own. */
static void test_layout_dot_job_ids_stay_inside(void **state) {
    (void)state;
    char *p = layout_work_dir("/s", 1, "..");
    assert_string_equal(p, "/s/work/1/_..");
    free(p);
    p = layout_result_dir("/s", 1, ".");
    assert_string_equal(p, "/s/results/1/_.");
    free(p);
    p = layout_result_dir("/s", 1, "a..b");
    assert_string_equal(p, "/s/results/1/a..b");
    free(p);
    /* "..." is a name like any other, and must not meet "_..." */
    p = layout_work_dir("/s", 1, "...");
    assert_string_equal(p, "/s/work/1/...");
    free(p);
    p = layout_work_dir("/s", 1, "_...");
    assert_string_equal(p, "/s/work/1/_...");
    free(p);
}

/* ---- progress ---- */

/* The state directory ends up 0700 whether it is new, nested or was made
 * 0755 before; only the tightening is reported (issue 12, defect 12). */
static void test_layout_state_dir_made_private(void **state) {
    char path[256], err[TS_ERRLEN];
    struct stat sb;
    int tightened = -1;
    mode_t old = umask(022);
    snprintf(path, sizeof(path), "%s/a/state", (const char *)*state);
    assert_int_equal(layout_state_dir_make(path, &tightened, err, sizeof(err)), TS_OK);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    assert_int_equal(tightened, 1); /* mkdir made it 0755 under umask 022 */
    assert_int_equal(layout_state_dir_make(path, &tightened, err, sizeof(err)), TS_OK);
    assert_int_equal(tightened, 0);
    assert_int_equal(chmod(path, 0750), 0);
    assert_int_equal(layout_state_dir_make(path, &tightened, err, sizeof(err)), TS_OK);
    assert_int_equal(tightened, 1);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/file", (const char *)*state);
    append(path, "x");
    snprintf(path, sizeof(path), "%s/file/state", (const char *)*state);
    assert_int_equal(layout_state_dir_make(path, &tightened, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "file"));
    umask(old);
}

static void test_progress_format_and_parse(void **state) {
    (void)state;
    char line[PROTO_LINE_MAX];
    size_t n = proto_progress_format(line, sizeof(line), 3, 12, "3 of 12\ttiles\n");
    assert_string_equal(line, "progress 3 12 3 of 12 tiles \n");
    assert_int_equal(n, strlen(line));
    line[n - 1] = '\0';
    proto_progress p;
    assert_true(proto_progress_parse(line, &p));
    assert_true(p.fraction > 0.2499 && p.fraction < 0.2501);
    assert_string_equal(p.message, "3 of 12 tiles ");

    assert_true(proto_progress_parse("progress 5 4", &p)); /* clamped, no message */
    assert_true(p.fraction == 1.0);
    assert_string_equal(p.message, "");
    assert_false(proto_progress_parse("progress 1 0 x", &p));
    assert_false(proto_progress_parse("progress x 2", &p));
    assert_false(proto_progress_parse("progress 1 nan", &p));
    assert_false(proto_progress_parse("hello", &p));
}

/* A message longer than the line is cut on a character boundary. */
static void test_progress_format_cuts_utf8(void **state) {
    (void)state;
    char msg[1200] = "";
    for (int i = 0; i < 400; i++) strcat(msg, "é");
    char line[PROTO_LINE_MAX];
    size_t n = proto_progress_format(line, sizeof(line), 1, 2, msg);
    assert_true(n < sizeof(line));
    assert_int_equal(line[n - 1], '\n');
    line[n - 1] = '\0';
    proto_progress p;
    assert_true(proto_progress_parse(line, &p));
    size_t len = strlen(p.message);
    assert_true(len > 0 && len < PROTO_MESSAGE_MAX);
    assert_int_equal(len % 2, 0); /* whole two-byte characters only */
}

/* The line itself, not only what a parser keeps of it, ends on a whole
 * character, whatever the buffer held (the same cut as the exit line's). */
static void test_progress_line_cut_is_on_a_character(void **state) {
    (void)state;
    char msg[1200] = "";
    for (int i = 0; i < 400; i++) strcat(msg, "\xc3\xa9");
    for (int fill = 0; fill < 256; fill += 0x80) {
        char line[PROTO_LINE_MAX];
        memset(line, fill, sizeof(line));
        size_t n = proto_progress_format(line, sizeof(line), 1, 2, msg);
        size_t head = strlen("progress 1 2 ");
        if ((n - 1 - head) % 2 != 0) fail_msg("fill %#x: line cut inside a character", fill);
        assert_true(n - 1 - head >= 494);
    }
}

static void test_lines_partial_and_overlong(void **state) {
    (void)state;
    proto_lines pl = {0};
    proto_progress latest = {0};
    bool changed = false;
    proto_lines_feed(&pl, "progress 1 4 a", 14, &latest, &changed);
    assert_false(changed);
    proto_lines_feed(&pl, " b\nnoise\n", 9, &latest, &changed);
    assert_true(changed);
    assert_string_equal(latest.message, "a b");
    char big[2000];
    memset(big, 'x', sizeof(big));
    memcpy(big, "progress 3 4 ", 13);
    changed = false;
    proto_lines_feed(&pl, big, sizeof(big), &latest, &changed);
    proto_lines_feed(&pl, "\n", 1, &latest, &changed);
    assert_false(changed); /* the overlong line was dropped whole */
    proto_lines_feed(&pl, "progress 2 4 tail", 17, &latest, &changed);
    proto_lines_finish(&pl, &latest, &changed);
    assert_true(changed);
    assert_string_equal(latest.message, "tail");
}

/* The local executor's runners say their exit on the pipe (protocol.h,
 * "exit_on_pipe"): what the file holds but the host, in one line. */
static void test_exit_line_roundtrip(void **state) {
    (void)state;
    proto_exit e = {.exit_code = 1, .started_at = 1764800000.123456, .finished_at = 1764800001.5};
    strcpy(e.outcome, "failed");
    strcpy(e.reason, "tile 3:\nbad pixels\tthere");
    char line[PROTO_LINE_MAX];
    size_t len = proto_exit_format(line, sizeof(line), &e);
    assert_int_equal(len, strlen(line));
    assert_int_equal(line[len - 1], '\n');
    assert_null(memchr(line, '\n', len - 1)); /* one line, whatever the reason held */
    line[len - 1] = '\0';
    proto_exit got;
    assert_true(proto_exit_parse(line, &got));
    assert_string_equal(got.outcome, "failed");
    assert_int_equal(got.exit_code, 1);
    assert_true(fabs(got.started_at - e.started_at) < 1e-6);
    assert_true(fabs(got.finished_at - e.finished_at) < 1e-6);
    assert_string_equal(got.reason, "tile 3: bad pixels there");
    /* A success says no reason, and still parses. */
    proto_exit ok = {.exit_code = 0, .started_at = 2, .finished_at = 3};
    strcpy(ok.outcome, "succeeded");
    len = proto_exit_format(line, sizeof(line), &ok);
    line[len - 1] = '\0';
    assert_true(proto_exit_parse(line, &got));
    assert_string_equal(got.outcome, "succeeded");
    assert_int_equal(got.exit_code, 0);
    assert_string_equal(got.reason, "");
}

/* The longest reason still fits a protocol line, cut on a character. */
static void test_exit_line_longest_reason_fits(void **state) {
    (void)state;
    proto_exit e = {.exit_code = -2147483647 - 1, .started_at = 1e12, .finished_at = 1e12};
    strcpy(e.outcome, "cancelled");
    size_t i = 0;
    for (; i + 2 < sizeof(e.reason); i += 2) memcpy(e.reason + i, "\xc3\xa9", 2); /* e-acute */
    e.reason[i] = '\0';
    char line[PROTO_LINE_MAX];
    size_t len = proto_exit_format(line, sizeof(line), &e);
    assert_true(len < PROTO_LINE_MAX);
    line[len - 1] = '\0';
    proto_exit got;
    assert_true(proto_exit_parse(line, &got));
    assert_int_equal(got.exit_code, -2147483647 - 1);
    assert_true(strlen(got.reason) > 200);
    assert_int_equal(strlen(got.reason) % 2, 0); /* whole characters */
}

static void test_exit_line_malformed_is_not_one(void **state) {
    (void)state;
    const char *bad[] = {"exit", "exit ", "exit succeeded", "exit succeeded 0",
                         "exit succeeded x 1 2", "exit succeeded 0 1", "exit succeeded 0 1 2x",
                         "exit succeeded 99999999999 1 2", "exit succeeded 0 nan 2",
                         "exit averyveryverylongoutcome 0 1 2", "exitsucceeded 0 1 2",
                         "progress 1 2 exit"};
    proto_exit got;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (proto_exit_parse(bad[i], &got)) fail_msg("parsed: \"%s\"", bad[i]);
}

/* In a stream the first exit line stands, beside progress; a line cut by
 * the writer's end is not an exit, and neither is an overlong one. */
static void test_lines_keep_the_first_exit(void **state) {
    (void)state;
    proto_lines pl = {0};
    proto_progress latest = {0};
    bool changed = false;
    const char *in = "progress 1 2 half\nexit succeeded 0 10.5 11.25 \nexit failed 1 1 2 late\n";
    proto_lines_feed(&pl, in, strlen(in), &latest, &changed);
    assert_true(changed);
    assert_string_equal(latest.message, "half");
    assert_true(pl.exit_said);
    assert_string_equal(pl.said.outcome, "succeeded");
    assert_true(pl.said.finished_at == 11.25);
    proto_lines cut = {0};
    proto_lines_feed(&cut, "exit succeeded 0 1", 18, &latest, &changed);
    assert_false(cut.exit_said); /* waits for the rest */
    char big[1000];
    memset(big, 'x', sizeof(big));
    memcpy(big, "exit failed 1 1 2 ", 18);
    proto_lines_feed(&cut, "\n", 1, &latest, &changed); /* ends "exit succeeded 0 1": bad */
    proto_lines_feed(&cut, big, sizeof(big), &latest, &changed);
    proto_lines_feed(&cut, "\n", 1, &latest, &changed);
    assert_false(cut.exit_said);
}

/* A line cut by its writer's end is no exit line, also when the stream
 * ends there (proto_lines_finish, as the executor calls it at a reap): a
 * success cut inside its times must not stand. */
static void test_lines_unterminated_exit_is_not_one(void **state) {
    (void)state;
    proto_lines pl = {0};
    proto_progress latest = {0};
    bool changed = false;
    proto_lines_feed(&pl, "exit succeeded 0 1764800000.5 17", 32, &latest, &changed);
    proto_lines_finish(&pl, &latest, &changed);
    assert_false(pl.exit_said);
    /* A progress line without its newline still counts (the "tail" case). */
    proto_lines_feed(&pl, "progress 3 4 tail", 17, &latest, &changed);
    proto_lines_finish(&pl, &latest, &changed);
    assert_true(changed);
    assert_string_equal(latest.message, "tail");
}

/* When the reason must be cut to fit the line, it is cut on a character,
 * whatever the buffer held before (the cut looked at a byte it had not
 * written). Times this long come from no real clock; they force the cut. */
static void test_exit_line_cut_is_on_a_character(void **state) {
    (void)state;
    for (int code = 1; code <= 10; code += 9) { /* both parities of the cut */
        proto_exit e = {.exit_code = code, .started_at = 1e200, .finished_at = 1e200};
        strcpy(e.outcome, "failed");
        size_t i = 0;
        for (; i + 2 < sizeof(e.reason); i += 2) memcpy(e.reason + i, "\xc3\xa9", 2);
        e.reason[i] = '\0';
        for (int fill = 0; fill < 256; fill += 0x80) {
            char line[PROTO_LINE_MAX];
            memset(line, fill, sizeof(line));
            size_t len = proto_exit_format(line, sizeof(line), &e);
            assert_true(len < PROTO_LINE_MAX);
            line[len - 1] = '\0';
            proto_exit got;
            assert_true(proto_exit_parse(line, &got));
            size_t rl = strlen(got.reason);
            if (rl % 2 != 0) fail_msg("code %d, fill %#x: reason cut inside a character (%zu bytes)", code, fill, rl);
            assert_true(rl >= 76); /* no character dropped beyond the one cut */
        }
    }
    /* Times that leave no room at all: still an exit line, never the
     * reason alone (which could read as one). */
    proto_exit big = {.exit_code = 0, .started_at = 1e300, .finished_at = 1e300};
    strcpy(big.outcome, "failed");
    strcpy(big.reason, "exit succeeded 0 1 2");
    char line[PROTO_LINE_MAX];
    size_t len = proto_exit_format(line, sizeof(line), &big);
    line[len - 1] = '\0';
    proto_exit got;
    assert_true(proto_exit_parse(line, &got));
    assert_string_equal(got.outcome, "failed");
    assert_string_equal(got.reason, "exit succeeded 0 1 2");
}

/* The Slurm executor tails a file that grows between polls. */
static void test_progress_poll_follows_a_growing_file(void **state) {
    char *path = ts_asprintf("%s/attempt-1.progress", (char *)*state);
    off_t off = 0;
    proto_lines pl = {0};
    proto_progress latest = {0};
    bool changed = false;
    assert_int_equal(proto_progress_poll(path, &off, &pl, &latest, &changed), TS_OK);
    assert_false(changed); /* no file yet: no progress */
    append(path, "progress 1 10 one\nprogress 2 10 tw");
    assert_int_equal(proto_progress_poll(path, &off, &pl, &latest, &changed), TS_OK);
    assert_true(changed);
    assert_string_equal(latest.message, "one");
    changed = false;
    assert_int_equal(proto_progress_poll(path, &off, &pl, &latest, &changed), TS_OK);
    assert_false(changed);
    append(path, "o\n");
    assert_int_equal(proto_progress_poll(path, &off, &pl, &latest, &changed), TS_OK);
    assert_true(changed);
    assert_string_equal(latest.message, "two");
    assert_true(latest.fraction > 0.19 && latest.fraction < 0.21);
    /* A long history: only the newest lines are read. */
    for (int i = 3; i <= 5000; i++) {
        char line[64];
        snprintf(line, sizeof(line), "progress %d 5000 step %d\n", i, i);
        append(path, line);
    }
    changed = false;
    assert_int_equal(proto_progress_poll(path, &off, &pl, &latest, &changed), TS_OK);
    assert_true(changed);
    assert_string_equal(latest.message, "step 5000");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(off, st.st_size);
    free(path);
}

/* ---- exit marker ---- */

static void test_exit_marker_roundtrip_and_first_word_stands(void **state) {
    const char *dir = *state;
    char err[TS_ERRLEN];
    proto_exit e = {0}, got;
    assert_int_equal(proto_exit_read(dir, 1, &got, err, sizeof(err)), PROTO_MISSING);
    ts_strlcpy(e.outcome, "failed", sizeof(e.outcome));
    e.exit_code = 1;
    ts_strlcpy(e.reason, "tile 3: \"bad\"\nJPEG", sizeof(e.reason));
    assert_int_equal(proto_exit_write(dir, 1, &e, true, err, sizeof(err)), TS_OK);
    assert_int_equal(proto_exit_read(dir, 1, &got, err, sizeof(err)), TS_OK);
    assert_string_equal(got.outcome, "failed");
    assert_int_equal(got.exit_code, 1);
    assert_string_equal(got.reason, "tile 3: \"bad\"\nJPEG");
    assert_true(got.finished_at > 0);
    assert_true(got.started_at == 0); /* not said: an older runner's marker reads as 0 */
    assert_true(got.host[0] != '\0');
    /* The runner's start time, when it gives one, comes back as written. */
    proto_exit timed = e, back;
    timed.started_at = 1700000000.25;
    timed.finished_at = 1700000001.5;
    assert_int_equal(proto_exit_write(dir, 3, &timed, false, err, sizeof(err)), TS_OK);
    assert_int_equal(proto_exit_read(dir, 3, &back, err, sizeof(err)), TS_OK);
    assert_true(back.started_at == 1700000000.25);
    assert_true(back.finished_at == 1700000001.5);
    /* A second marker for the same attempt is refused, durable or not; the
     * first stands. */
    ts_strlcpy(e.outcome, "succeeded", sizeof(e.outcome));
    assert_int_equal(proto_exit_write(dir, 1, &e, true, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "exists"));
    assert_int_equal(proto_exit_write(dir, 1, &e, false, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "exists"));
    assert_int_equal(proto_exit_read(dir, 1, &got, err, sizeof(err)), TS_OK);
    assert_string_equal(got.outcome, "failed");
    /* Another attempt has its own marker; no temp files are left. */
    assert_int_equal(proto_exit_read(dir, 2, &got, err, sizeof(err)), PROTO_MISSING);
    char *cmd = ts_asprintf("ls %s | grep -q tmp", dir);
    assert_int_not_equal(system(cmd), 0);
    free(cmd);
}

static void test_exit_marker_corrupt_is_an_error(void **state) {
    const char *dir = *state;
    char err[TS_ERRLEN];
    proto_exit got;
    char *path = layout_attempt_path(dir, 4, LAYOUT_EXIT);
    append(path, "{\"outcome\": \"succ");
    assert_int_equal(proto_exit_read(dir, 4, &got, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "exit marker"));
    unlink(path);
    append(path, "{\"outcome\": 3, \"exit_code\": 0}");
    assert_int_equal(proto_exit_read(dir, 4, &got, err, sizeof(err)), TS_ERR);
    free(path);
}

/* ---- spec ---- */

static void test_spec_write_and_load(void **state) {
    const char *dir = *state;
    char work[256], result[256], err[TS_ERRLEN];
    snprintf(work, sizeof(work), "%s/work/5/cells", dir);
    snprintf(result, sizeof(result), "%s/results/5/cells", dir);
    json_t *params = json_pack("{s:f}", "sigma_um", 1.5);
    json_t *inputs = json_pack("[{s:s, s:s, s:s}]", "job_id", "mask", "job_type", "tissue_mask",
                               "result_dir", "/r/mask");
    exec_job job = {.workflow_id = 5, .job_index = 2, .attempt = 3, .job_id = "cells",
                    .job_type = "cell_segmentation", .user = "alice",
                    .image_path = "/data/a.tiff", .params = params, .cpus = 2,
                    .timeout_s = 90, .work_dir = work, .result_dir = result, .inputs = inputs};
    assert_int_equal(proto_spec_write(&job, err, sizeof(err)), TS_OK);
    char *path = layout_attempt_path(work, 3, LAYOUT_SPEC);
    proto_spec s;
    if (proto_spec_load(path, &s, err, sizeof(err)) != TS_OK) fail_msg("%s", err);
    assert_int_equal(s.workflow_id, 5);
    assert_int_equal(s.job_index, 2);
    assert_int_equal(s.attempt, 3);
    assert_int_equal(s.cpus, 2);
    assert_true(s.timeout_s == 90);
    assert_string_equal(s.job_id, "cells");
    assert_string_equal(s.user, "alice");
    assert_string_equal(s.image_path, "/data/a.tiff");
    assert_string_equal(s.work_dir, work);
    assert_string_equal(s.result_dir, result);
    assert_int_equal(json_array_size(s.inputs), 1);
    assert_true(json_real_value(json_object_get(s.params, "sigma_um")) == 1.5);
    assert_true(s.exit_marker_sync); /* durable unless the executor says otherwise */
    assert_true(s.progress_file);    /* likewise written unless it says otherwise */
    proto_spec_free(&s);
    char *text = test_slurp(path);
    assert_null(strstr(text, "exit_marker_sync")); /* a batch job's spec as before */
    free(text);
    job.exit_marker_volatile = true; /* the local executor's */
    job.progress_pipe_only = true;
    assert_int_equal(proto_spec_write(&job, err, sizeof(err)), TS_OK);
    if (proto_spec_load(path, &s, err, sizeof(err)) != TS_OK) fail_msg("%s", err);
    assert_false(s.exit_marker_sync);
    assert_false(s.progress_file);
    assert_false(s.exit_on_pipe); /* a file unless the executor reads the pipe to its end */
    proto_spec_free(&s);
    job.exit_on_pipe = true;
    assert_int_equal(proto_spec_write(&job, err, sizeof(err)), TS_OK);
    if (proto_spec_load(path, &s, err, sizeof(err)) != TS_OK) fail_msg("%s", err);
    assert_true(s.exit_on_pipe);
    proto_spec_free(&s);
    /* The same spec from its text alone (the fork server's runners): the
     * file's very bytes, and no file read (the path names a missing one). */
    char *line = proto_spec_text(&job, err, sizeof(err));
    assert_non_null(line);
    char *file = test_slurp(path);
    assert_string_equal(line, file);
    free(file);
    if (proto_spec_parse("/nonexistent/attempt-3.json", line, &s, err, sizeof(err)) != TS_OK)
        fail_msg("%s", err);
    assert_string_equal(s.job_id, "cells");
    assert_int_equal(s.attempt, 3);
    assert_int_equal(json_array_size(s.inputs), 1);
    assert_false(s.progress_file);
    proto_spec_free(&s);
    free(line);
    struct stat st;
    char parent[300];
    snprintf(parent, sizeof(parent), "%s/results/5", dir);
    assert_int_equal(stat(parent, &st), 0); /* made for the runner's rename */
    free(path);
    json_decref(params);
    json_decref(inputs);
}

static void test_spec_load_names_the_field(void **state) {
    const char *dir = *state;
    char err[TS_ERRLEN];
    char *path = ts_asprintf("%s/bad.json", dir);
    append(path, "{\"work_dir\": \"/w\", \"attempt\": 2, \"workflow_id\": \"x\"}");
    proto_spec s;
    assert_int_equal(proto_spec_load(path, &s, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "field \"workflow_id\": must be an integer from 0 to "
                             "9223372036854775807");
    assert_string_equal(s.work_dir, "/w"); /* enough for an exit marker */
    assert_int_equal(s.attempt, 2);
    proto_spec_free(&s);
    unlink(path);
    append(path, "{\"work_dir\": \"/w\", \"attempt\": 1, \"workflow_id\": 1, \"job_index\": 0,"
                 " \"cpus\": 1, \"job_id\": \"j\", \"job_type\": \"noop\", \"result_dir\": \"/r\","
                 " \"exit_marker_sync\": \"no\"}");
    assert_int_equal(proto_spec_load(path, &s, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "field \"exit_marker_sync\": must be true or false");
    proto_spec_free(&s);
    unlink(path);
    append(path, "{\"work_dir\": \"/w\", \"attempt\": 1, \"workflow_id\": 1, \"job_index\": 0,"
                 " \"cpus\": 1, \"job_id\": \"j\", \"job_type\": \"noop\", \"result_dir\": \"/r\","
                 " \"exit_on_pipe\": 1}");
    assert_int_equal(proto_spec_load(path, &s, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "field \"exit_on_pipe\": must be true or false");
    proto_spec_free(&s);
    free(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_paths),
        cmocka_unit_test(test_layout_dot_job_ids_stay_inside),
        cmocka_unit_test_setup_teardown(test_layout_state_dir_made_private, setup, teardown),
        cmocka_unit_test(test_progress_format_and_parse),
        cmocka_unit_test(test_progress_format_cuts_utf8),
        cmocka_unit_test(test_progress_line_cut_is_on_a_character),
        cmocka_unit_test(test_lines_partial_and_overlong),
        cmocka_unit_test(test_exit_line_roundtrip),
        cmocka_unit_test(test_exit_line_longest_reason_fits),
        cmocka_unit_test(test_exit_line_malformed_is_not_one),
        cmocka_unit_test(test_lines_keep_the_first_exit),
        cmocka_unit_test(test_lines_unterminated_exit_is_not_one),
        cmocka_unit_test(test_exit_line_cut_is_on_a_character),
        cmocka_unit_test_setup_teardown(test_progress_poll_follows_a_growing_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_exit_marker_roundtrip_and_first_word_stands, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_exit_marker_corrupt_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spec_write_and_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spec_load_names_the_field, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
