/*
 * test_log.c - JSON-lines logging (src/util/log.c): lines are parsed back
 * with jansson and their fields checked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/log.h"
#include "util/util.h"

typedef struct fixture {
    char dir[64];
    char path[128];
} fixture;

static int setup(void **state) {
    fixture *f = ts_calloc(1, sizeof(*f));
    ts_strlcpy(f->dir, "/tmp/test_log.XXXXXX", sizeof(f->dir));
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/tessera.log", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    log_close();
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Reads the log file back as an array of parsed lines; every line must be
 * a complete JSON object. */
static json_t *read_lines(const char *path) {
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    json_t *lines = json_array();
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&buf, &cap, fp)) > 0) {
        assert_int_equal(buf[n - 1], '\n');
        json_error_t jerr;
        json_t *line = json_loads(buf, 0, &jerr);
        if (line == NULL) fail_msg("not JSON: %s (%s)", buf, jerr.text);
        assert_true(json_is_object(line));
        json_array_append_new(lines, line);
    }
    free(buf);
    fclose(fp);
    return lines;
}

static const char *str_field(json_t *line, const char *key) {
    json_t *v = json_object_get(line, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void test_log_line_has_required_fields(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN];
    assert_int_equal(log_open(f->path, "scheduler", LOG_INFO, err, sizeof(err)), TS_OK);
    log_emit(LOG_INFO, "wf-12", "job-1", "job started", json_pack("{s:i, s:s}", "attempt", 2,
                                                                  "job_type", "sleep"));
    log_emit(LOG_WARN, NULL, NULL, "plain", NULL);
    log_close();

    json_t *lines = read_lines(f->path);
    assert_int_equal(json_array_size(lines), 2);
    json_t *l0 = json_array_get(lines, 0);
    const char *ts = str_field(l0, "ts");
    assert_non_null(ts);
    /* 2024-05-01T12:34:56.789Z */
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[19], '.');
    assert_int_equal(ts[23], 'Z');
    assert_string_equal(str_field(l0, "level"), "info");
    assert_int_equal(json_integer_value(json_object_get(l0, "pid")), getpid());
    assert_string_equal(str_field(l0, "component"), "scheduler");
    assert_string_equal(str_field(l0, "msg"), "job started");
    assert_string_equal(str_field(l0, "run_id"), "wf-12");
    assert_string_equal(str_field(l0, "job_id"), "job-1");
    assert_int_equal(json_integer_value(json_object_get(l0, "attempt")), 2);
    assert_string_equal(str_field(l0, "job_type"), "sleep");

    json_t *l1 = json_array_get(lines, 1);
    assert_string_equal(str_field(l1, "level"), "warn");
    assert_null(json_object_get(l1, "run_id"));
    assert_null(json_object_get(l1, "job_id"));
    json_decref(lines);
}

/* Lines around and far beyond the length formatted on the stack (1024
 * bytes with the newline) come out whole: one complete JSON line each, the
 * message intact. */
static void test_log_lines_of_any_length_are_whole(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN];
    assert_int_equal(log_open(f->path, "http", LOG_INFO, err, sizeof(err)), TS_OK);
    static char msg[5000];
    size_t lens[84], n = 0;
    lens[n++] = 0;
    lens[n++] = 4999;
    for (size_t len = 900; len < 982; len++) lens[n++] = len; /* the line crosses 1024 here */
    for (size_t i = 0; i < n; i++) {
        memset(msg, 'm', lens[i]);
        msg[lens[i]] = '\0';
        log_emit(LOG_INFO, NULL, NULL, msg, json_pack("{si}", "i", (int)i));
    }
    log_close();
    json_t *lines = read_lines(f->path);
    assert_int_equal(json_array_size(lines), n);
    for (size_t i = 0; i < n; i++) {
        json_t *line = json_array_get(lines, i);
        assert_int_equal(strlen(str_field(line, "msg")), lens[i]);
        assert_int_equal(json_integer_value(json_object_get(line, "i")), (json_int_t)i);
    }
    json_decref(lines);
}

/* log_emit_fields writes the line log_emit writes for the same fields (the
 * same members in the same order; ts aside, and ms to the microsecond),
 * whatever the text: quotes, backslashes, control characters, UTF-8, bytes
 * that are not UTF-8, a value too long for its buffer; fixed names and
 * repeated names are dropped; levels below the threshold write nothing. */
static void test_log_emit_fields_matches_log_emit(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN];
    assert_int_equal(log_open(f->path, "http", LOG_INFO, err, sizeof(err)), TS_OK);
    static char longer[3000];
    memset(longer, 'p', sizeof(longer) - 1);
    const char *texts[] = {"/api/workflows/2", "a\"b\\c\n\t\r\b\f\x01\x1f end", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                           "bad \xff\xfe here", "overlong \xc0\xaf", "surrogate \xed\xa0\x80", "",
                           longer};
    size_t n = sizeof(texts) / sizeof(texts[0]);
    for (size_t i = 0; i < n; i++) {
        log_field fl[] = {
            {.key = "request_id", .kind = LOG_FIELD_STR, .str = "r-1"},
            {.key = "path", .kind = LOG_FIELD_STR, .str = texts[i]},
            {.key = "status", .kind = LOG_FIELD_INT, .i = -404},
            {.key = "ms", .kind = LOG_FIELD_MS, .ms = 12.3456},
            {.key = "level", .kind = LOG_FIELD_STR, .str = "forged"},
            {.key = "path", .kind = LOG_FIELD_STR, .str = "second"},
            {.key = "user", .kind = LOG_FIELD_STR, .str = NULL},
        };
        log_emit_fields(LOG_INFO, "wf-2", "http", fl, sizeof(fl) / sizeof(fl[0]));
        /* log_emit's fields must be valid UTF-8 (json_pack refuses the
         * whole object otherwise): the reference gets what log_emit_fields
         * is to write for text that is not, bytes >= 0x80 as '?'. */
        char *path = ts_strdup(texts[i]);
        json_t *probe = json_string(path);
        for (char *c = path; !probe && *c; c++)
            if ((unsigned char)*c >= 0x80) *c = '?';
        json_decref(probe);
        log_emit(LOG_INFO, "wf-2", NULL, "http",
                 json_pack("{ss ss si sf ss?}", "request_id", "r-1", "path", path, "status", -404,
                           "ms", 12.3456, "user", NULL));
        free(path);
    }
    log_emit_fields(LOG_DEBUG, NULL, "dropped", NULL, 0);
    log_close();
    json_t *lines = read_lines(f->path);
    assert_int_equal(json_array_size(lines), 2 * n);
    for (size_t i = 0; i < n; i++) {
        json_t *fast = json_array_get(lines, 2 * i), *slow = json_array_get(lines, 2 * i + 1);
        assert_int_equal(json_object_size(fast), json_object_size(slow));
        void *it_f = json_object_iter(fast), *it_s = json_object_iter(slow);
        for (; it_f && it_s; it_f = json_object_iter_next(fast, it_f),
                             it_s = json_object_iter_next(slow, it_s)) {
            const char *key = json_object_iter_key(it_f);
            assert_string_equal(key, json_object_iter_key(it_s));
            json_t *vf = json_object_iter_value(it_f), *vs = json_object_iter_value(it_s);
            if (strcmp(key, "ts") == 0) continue;
            if (strcmp(key, "ms") == 0) {
                assert_true(json_number_value(vf) >= 12.345 && json_number_value(vf) <= 12.3465);
                continue;
            }
            if (!json_equal(vf, vs)) fail_msg("line %zu, %s differs", i, key);
        }
    }
    assert_string_equal(str_field(json_array_get(lines, 6), "path"), "bad ?? here");
    assert_string_equal(str_field(json_array_get(lines, 0), "level"), "info");
    json_decref(lines);
}

static void test_log_level_filter_and_stolen_fields(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN];
    assert_int_equal(log_open(f->path, "http", LOG_WARN, err, sizeof(err)), TS_OK);
    /* dropped lines still release their fields (ASan checks the leak) */
    log_emit(LOG_DEBUG, NULL, NULL, "debug", json_pack("{s:s}", "k", "v"));
    log_emit(LOG_INFO, NULL, NULL, "info", json_pack("{s:s}", "k", "v"));
    log_emit(LOG_ERROR, NULL, NULL, "error", NULL);
    log_close();
    json_t *lines = read_lines(f->path);
    assert_int_equal(json_array_size(lines), 1);
    assert_string_equal(str_field(json_array_get(lines, 0), "msg"), "error");
    json_decref(lines);
}

static void test_log_fields_cannot_override_fixed_ones(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN];
    assert_int_equal(log_open(f->path, "run", LOG_DEBUG, err, sizeof(err)), TS_OK);
    log_emit(LOG_DEBUG, NULL, NULL, "m", json_pack("{s:s, s:s}", "level", "error", "ts", "x"));
    log_close();
    json_t *lines = read_lines(f->path);
    json_t *l0 = json_array_get(lines, 0);
    assert_string_equal(str_field(l0, "level"), "debug");
    assert_string_not_equal(str_field(l0, "ts"), "x");
    json_decref(lines);
}

static void test_log_invalid_utf8_still_logged(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN];
    assert_int_equal(log_open(f->path, "run", LOG_INFO, err, sizeof(err)), TS_OK);
    log_emit(LOG_INFO, NULL, "j\xff", "bad \xc3 byte\nnext", NULL);
    log_close();
    json_t *lines = read_lines(f->path);
    assert_int_equal(json_array_size(lines), 1);
    json_t *l0 = json_array_get(lines, 0);
    assert_string_equal(str_field(l0, "msg"), "bad ? byte\nnext");
    assert_string_equal(str_field(l0, "job_id"), "j?");
    json_decref(lines);
}

static void test_log_preserves_errno(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN];
    assert_int_equal(log_open(f->path, "run", LOG_INFO, err, sizeof(err)), TS_OK);
    errno = ENOSPC;
    log_emit(LOG_ERROR, NULL, NULL, "disk full", NULL);
    assert_int_equal(errno, ENOSPC);
}

static void test_log_open_error_names_path(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    assert_int_equal(log_open("/nonexistent-dir/x.log", "run", LOG_INFO, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "/nonexistent-dir/x.log: No such file or directory");
}

static void test_log_level_parse(void **state) {
    (void)state;
    log_level l;
    assert_int_equal(log_level_parse("debug", &l), TS_OK);
    assert_int_equal(l, LOG_DEBUG);
    assert_int_equal(log_level_parse("warn", &l), TS_OK);
    assert_int_equal(l, LOG_WARN);
    assert_int_equal(log_level_parse("error", &l), TS_OK);
    assert_int_equal(l, LOG_ERROR);
    assert_int_equal(log_level_parse("WARNING", &l), TS_ERR);
    assert_int_equal(log_level_parse(NULL, &l), TS_ERR);
}

/* Several processes appending to one file never interleave inside a line
 * (one write() per line with O_APPEND). */
static void test_log_concurrent_writers_do_not_interleave(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN];
    enum { WRITERS = 4, LINES = 300 };
    assert_int_equal(log_open(f->path, "worker", LOG_INFO, err, sizeof(err)), TS_OK);
    char pad[600];
    memset(pad, 'x', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    pid_t pids[WRITERS];
    for (int w = 0; w < WRITERS; w++) {
        pids[w] = fork();
        assert_true(pids[w] >= 0);
        if (pids[w] == 0) {
            for (int i = 0; i < LINES; i++)
                log_emit(LOG_INFO, NULL, NULL, pad, json_pack("{s:i, s:i}", "w", w, "i", i));
            _exit(0);
        }
    }
    for (int w = 0; w < WRITERS; w++) {
        int status;
        assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    log_close();
    json_t *lines = read_lines(f->path);
    assert_int_equal(json_array_size(lines), WRITERS * LINES);
    json_decref(lines);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_log_line_has_required_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_level_filter_and_stolen_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_fields_cannot_override_fixed_ones, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_invalid_utf8_still_logged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_preserves_errno, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_open_error_names_path, setup, teardown),
        cmocka_unit_test(test_log_level_parse),
        cmocka_unit_test_setup_teardown(test_log_emit_fields_matches_log_emit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_lines_of_any_length_are_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_concurrent_writers_do_not_interleave, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
