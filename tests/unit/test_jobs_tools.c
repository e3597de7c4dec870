/*
 * test_jobs_tools.c - admin-defined tools (src/jobs/tools*.c): loading and
 * its error messages, parameter validation through jobs_check, argv
 * building, and running fake tools through the real runner.
 *
 * The fake tools are small shell scripts this test writes: they are the
 * admin's programs, so being scripts is fine; tessera itself execs them
 * directly and never starts a shell. One tools file is registered for the
 * whole program (jobs_load_tools succeeds once per process); load errors
 * are tested with tools_parse_file, which registers nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jobs/jobs.h"
#include "jobs/tools.h"
#include "util/util.h"
#include "testlib.h"

static char dir[64];          /* the temporary directory of the whole run */
static char good_sh[128];     /* writes its argv, cwd and env, then a GeoJSON */
static char fail_sh[128];     /* exits 3 */
static char quiet_sh[128];    /* exits 0 without a result */
static char notgeo_sh[128];   /* writes JSON that is not GeoJSON */
static char slow_sh[128];     /* records its pid and sleeps */
static char data_root[96];    /* the data root of the runs: holds slide.svs */
static char slide_path[128];  /* a regular file inside it, the runs' image */

static void write_file(const char *path, const char *text, mode_t mode) {
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(chmod(path, mode), 0);
}

/* Writes the scripts; each takes {out_dir} as $1. */
static void write_scripts(void) {
    snprintf(good_sh, sizeof(good_sh), "%s/good.sh", dir);
    snprintf(fail_sh, sizeof(fail_sh), "%s/fail.sh", dir);
    snprintf(quiet_sh, sizeof(quiet_sh), "%s/quiet.sh", dir);
    snprintf(notgeo_sh, sizeof(notgeo_sh), "%s/notgeo.sh", dir);
    snprintf(slow_sh, sizeof(slow_sh), "%s/slow.sh", dir);
    write_file(good_sh,
               "#!/bin/sh\n"
               "out=$1\n"
               "for a in \"$@\"; do printf '%s\\n' \"$a\"; done > \"$out/args.txt\"\n"
               "pwd > \"$out/cwd.txt\"\n"
               "echo \"${TESSERA_SESSION_SECRET:-unset} $FAKE_THREADS\" > \"$out/env.txt\"\n"
               "sleep 0.3\n" /* job_progress keeps one line per 0.2 s */
               "echo 'PROGRESS 1 4 first tile'\n"
               "echo 'hello from the tool'\n"
               "echo 'to stderr' >&2\n"
               "echo 'PROGRESS 4 4'\n"
               "printf '{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\","
               "\"geometry\":null,\"properties\":{}},{\"type\":\"Feature\",\"geometry\":null,"
               "\"properties\":{}}]}' > \"$out/cells.geojson\"\n",
               0755);
    write_file(fail_sh, "#!/bin/sh\necho 'model not found' >&2\nexit 3\n", 0755);
    write_file(quiet_sh, "#!/bin/sh\necho 'did nothing'\n", 0755);
    write_file(notgeo_sh, "#!/bin/sh\necho '{\"cells\": 3}' > \"$1/cells.geojson\"\n", 0755);
    write_file(slow_sh, "#!/bin/sh\necho $$ > \"$1/../slow.pid\"\nexec sleep 30\n", 0755);
}

/* The tools file registered for every test. */
static void register_tools(void) {
    char path[128], *text;
    snprintf(path, sizeof(path), "%s/tools.json", dir);
    text = ts_asprintf(
        "{\"tools\": ["
        "{\"name\": \"fake\", \"description\": \"a fake segmenter\", \"argv\": [\"%s\","
        " \"{out_dir}\", \"--size={tile_size}\", \"--px\", \"{pixel_size_um}\", \"--model\","
        " \"{model}\", \"--flag={flag}\", \"--label\", \"{label}\", \"{{literal}}\","
        " \"{image_path}\", \"{job_id}\", \"{cpus}\"],"
        " \"params\": {"
        "  \"tile_size\": {\"type\": \"integer\", \"min\": 64, \"max\": 4096, \"default\": 512},"
        "  \"pixel_size_um\": {\"type\": \"number\", \"min\": 0.1, \"max\": 10, \"default\": 0.5},"
        "  \"model\": {\"type\": \"enum\", \"choices\": [\"nuclei\", \"cells\"],"
        "   \"default\": \"nuclei\"},"
        "  \"flag\": {\"type\": \"boolean\", \"default\": false},"
        "  \"label\": {\"type\": \"string\", \"max_length\": 16, \"default\": \"cells\"}},"
        " \"env\": {\"FAKE_THREADS\": \"t{cpus}\"},"
        " \"result\": \"cells.geojson\"},"
        "{\"name\": \"pat\", \"argv\": [\"%s\", \"{out_dir}\", \"{tag}\"], \"needs_image\": false,"
        " \"params\": {\"tag\": {\"type\": \"string\", \"required\": true, \"max_length\": 10,"
        "  \"pattern\": \"[a-z ]+\"}}, \"result\": \"cells.geojson\"},"
        "{\"name\": \"fail3\", \"argv\": [\"%s\", \"{out_dir}\"], \"needs_image\": false,"
        " \"result\": \"cells.geojson\"},"
        "{\"name\": \"quiet\", \"argv\": [\"%s\", \"{out_dir}\"], \"needs_image\": false,"
        " \"result\": \"cells.geojson\"},"
        "{\"name\": \"notgeo\", \"argv\": [\"%s\", \"{out_dir}\"], \"needs_image\": false,"
        " \"result\": \"cells.geojson\"},"
        "{\"name\": \"slow\", \"argv\": [\"%s\", \"{out_dir}\"], \"needs_image\": false,"
        " \"result\": \"cells.geojson\"},"
        "{\"name\": \"brief\", \"argv\": [\"%s\", \"{out_dir}\"], \"needs_image\": false,"
        " \"timeout_s\": 0.3, \"result\": \"cells.geojson\"},"
        "{\"name\": \"shifty\", \"argv\": [\"%s\", \"{out_dir}\", \"{shift}\", \"--at={shift}\","
        " \"{{{job_id}}}\", \"{work_dir}\"], \"needs_image\": false,"
        " \"params\": {\"shift\": {\"type\": \"number\", \"min\": -10, \"max\": 10, \"default\": 1}},"
        " \"result\": \"cells.geojson\"}"
        "]}",
        good_sh, good_sh, fail_sh, quiet_sh, notgeo_sh, slow_sh, slow_sh, good_sh);
    write_file(path, text, 0644);
    free(text);
    char err[TS_ERRLEN] = "";
    if (jobs_load_tools(path, err, sizeof(err)) != TS_OK) fail_msg("%s", err);
}

static int group_setup(void **state) {
    (void)state;
    ts_strlcpy(dir, "/tmp/test_jobs_tools.XXXXXX", sizeof(dir));
    if (mkdtemp(dir) == NULL) return -1;
    write_scripts();
    register_tools();
    snprintf(data_root, sizeof(data_root), "%s/data", dir);
    snprintf(slide_path, sizeof(slide_path), "%s/slide.svs", data_root);
    if (mkdir(data_root, 0755) != 0) return -1;
    write_file(slide_path, "tools read what they like\n", 0644);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    test_rm_rf(dir);
    return 0;
}

/* ---- loading ---- */

/* Parses a tools file with one tool whose JSON is given (argv[0] may be
 * written as PROG, replaced by the good script); expects failure with
 * needle in the message. */
static void expect_load_error(const char *tool_json, const char *needle) {
    char path[128];
    snprintf(path, sizeof(path), "%s/bad.json", dir);
    char *text = ts_asprintf("{\"tools\": [%s]}", tool_json);
    char *prog = strstr(text, "PROG");
    if (prog) {
        char *fixed = ts_asprintf("%.*s%s%s", (int)(prog - text), text, good_sh, prog + 4);
        free(text);
        text = fixed;
    }
    write_file(path, text, 0644);
    free(text);
    tool_set *set = (tool_set *)1;
    char err[TS_ERRLEN] = "";
    assert_int_equal(tools_parse_file(path, &set, err, sizeof(err)), TS_ERR);
    assert_null(set);
    if (strstr(err, needle) == NULL) fail_msg("expected \"%s\" in \"%s\"", needle, err);
    assert_non_null(strstr(err, "bad.json:"));
}

static void test_load_bad_json(void **state) {
    (void)state;
    expect_load_error("{\"name\": \"x\",}", "bad.json:1:");
    expect_load_error("{\"name\": \"x\"} ]", "bad.json:1:");
}

static void test_load_unknown_placeholder(void **state) {
    (void)state;
    expect_load_error("{\"name\": \"t\", \"argv\": [\"PROG\", \"--in\", \"x{foo}y\"],"
                      " \"needs_image\": false, \"result\": \"r.geojson\"}",
                      "tools[0] (\"t\"): argv[2]: unknown placeholder {foo} (known: image_path, "
                      "out_dir, work_dir, cpus, job_id)");
    expect_load_error("{\"name\": \"t\", \"argv\": [\"PROG\", \"{out_dir\"],"
                      " \"result\": \"r.geojson\"}",
                      "argv[1]: '{' without '}'");
    expect_load_error("{\"name\": \"t\", \"argv\": [\"PROG\", \"a}b\"], \"result\": \"r.geojson\"}",
                      "argv[1]: a single '}'");
    expect_load_error("{\"name\": \"t\", \"argv\": [\"PROG\"], \"env\": {\"X\": \"{nope}\"},"
                      " \"result\": \"r.geojson\"}",
                      "env.X: unknown placeholder {nope}");
}

static void test_load_bad_param(void **state) {
    (void)state;
    expect_load_error("{\"name\": \"t\", \"argv\": [\"PROG\", \"{x}\"], \"result\": \"r.geojson\","
                      " \"params\": {\"x\": {\"type\": \"float\", \"default\": 1}}}",
                      "tools[0] (\"t\"): params.x: type: must be one of \"number\"");
    expect_load_error("{\"name\": \"t\", \"argv\": [\"PROG\", \"{x}\"], \"result\": \"r.geojson\","
                      " \"params\": {\"x\": {\"type\": \"number\", \"min\": 1, \"max\": 2,"
                      " \"default\": 5}}}",
                      "params.x: default: params.x: must be a number from 1 to 2");
    expect_load_error("{\"name\": \"t\", \"argv\": [\"PROG\", \"{x}\"], \"result\": \"r.geojson\","
                      " \"params\": {\"x\": {\"type\": \"integer\"}}}",
                      "params.x: needs either a \"default\" or \"required\": true");
    expect_load_error("{\"name\": \"t\", \"argv\": [\"PROG\", \"{x}\"], \"result\": \"r.geojson\","
                      " \"params\": {\"x\": {\"type\": \"string\", \"defualt\": \"a\"}}}",
                      "params.x.defualt: unknown key");
    expect_load_error("{\"name\": \"t\", \"argv\": [\"PROG\", \"{x}\"], \"result\": \"r.geojson\","
                      " \"params\": {\"x\": {\"type\": \"string\", \"default\": \"-rf\"}}}",
                      "params.x: default: params.x: must be 1-256 characters");
    expect_load_error("{\"name\": \"t\", \"argv\": [\"PROG\"], \"result\": \"r.geojson\","
                      " \"params\": {\"x\": {\"type\": \"boolean\", \"default\": true}}}",
                      "params.x: not used in argv or env");
    expect_load_error("{\"name\": \"t\", \"argv\": [\"PROG\", \"{out_dir}\"],"
                      " \"result\": \"r.geojson\","
                      " \"params\": {\"out_dir\": {\"type\": \"boolean\", \"default\": true}}}",
                      "params.out_dir: the name of a built-in placeholder");
    expect_load_error("{\"name\": \"t\", \"argv\": [\"PROG\", \"{x}\"], \"result\": \"r.geojson\","
                      " \"params\": {\"x\": {\"type\": \"string\", \"pattern\": \"(\","
                      " \"default\": \"a\"}}}",
                      "params.x: pattern: not a POSIX extended regex");
}

static void test_load_name_rules(void **state) {
    (void)state;
    expect_load_error("{\"name\": \"noop\", \"argv\": [\"PROG\"], \"result\": \"r.geojson\"}",
                      "tools[0]: name: \"noop\" is a built-in job type");
    expect_load_error("{\"name\": \"cell_segmentation\", \"argv\": [\"PROG\"],"
                      " \"result\": \"r.geojson\"}",
                      "\"cell_segmentation\" is a built-in job type");
    expect_load_error("{\"name\": \"Bad-Name\", \"argv\": [\"PROG\"], \"result\": \"r.geojson\"}",
                      "name: must be 1-32 characters of a-z 0-9 _");
    expect_load_error("{\"name\": \"a\", \"argv\": [\"PROG\"], \"result\": \"r\"},"
                      "{\"name\": \"a\", \"argv\": [\"PROG\"], \"result\": \"r\"}",
                      "tools[1]: name: \"a\" is defined twice");
    expect_load_error("{\"name\": \"a\", \"argv\": [\"PROG\"], \"result\": \"r\", \"shell\": true}",
                      "tools[0] (\"a\"): shell: unknown key");
}

static void test_load_argv0_and_result(void **state) {
    (void)state;
    expect_load_error("{\"name\": \"t\", \"argv\": [\"bin/instanseg\"], \"result\": \"r\"}",
                      "tools[0] (\"t\"): argv[0]: must be an absolute path, not \"bin/instanseg\"");
    expect_load_error("{\"name\": \"t\", \"argv\": [\"/nonexistent/instanseg\"], \"result\": \"r\"}",
                      "argv[0]: /nonexistent/instanseg is not an executable file");
    expect_load_error("{\"name\": \"t\", \"argv\": [], \"result\": \"r\"}",
                      "argv: must be an array of 1 to");
    expect_load_error("{\"name\": \"t\", \"argv\": [\"PROG\"], \"result\": \"../x\"}",
                      "result: must be a file name");
    expect_load_error("{\"name\": \"t\", \"argv\": [\"PROG\", \"{image_path}\"],"
                      " \"needs_image\": false, \"result\": \"r\"}",
                      "needs_image: is false, but argv or env uses {image_path}");
}

static void test_load_once_and_registry(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    assert_int_equal(jobs_load_tools("", err, sizeof(err)), TS_OK);
    assert_int_equal(jobs_load_tools("/whatever.json", err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "already loaded"));
    const job_type *t = jobs_find("fake");
    assert_non_null(t);
    assert_string_equal(t->description, "a fake segmenter");
    assert_int_equal(t->n_params, 5);
    assert_true(t->needs_image);
    assert_false(jobs_find("quiet")->needs_image);
    bool seen = false;
    for (size_t i = 0; i < jobs_count(); i++) seen |= jobs_at(i) == t;
    assert_true(seen);
    assert_non_null(jobs_find("noop"));
    assert_int_equal(jobs_check(NULL, "job-1", "segment", NULL, NULL, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "fake, pat, fail3"));
}

/* ---- validation ---- */

/* jobs_check on tool type with params given as JSON text. */
static int check(const char *type, const char *params_text, const char *image, char *err) {
    json_t *p = json_loads(params_text, 0, NULL);
    assert_non_null(p);
    err[0] = '\0';
    int rc = jobs_check(NULL, "job-1", type, p, image, err, TS_ERRLEN);
    json_decref(p);
    return rc;
}

static void test_check_params(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    const char *img = "/data/slide.svs";
    assert_int_equal(check("fake", "{}", img, err), TS_OK);
    assert_int_equal(check("fake", "{\"tile_size\": 1024, \"pixel_size_um\": 0.25, \"model\":"
                                   " \"cells\", \"flag\": true, \"label\": \"run_1.b-2\"}",
                           img, err),
                     TS_OK);
    assert_int_equal(check("fake", "{\"x\": 1}", img, err), TS_ERR);
    assert_string_equal(err, "params.x: unknown parameter (known: tile_size, pixel_size_um, "
                             "model, flag, label)");
    assert_int_equal(check("fake", "{\"pixel_size_um\": 11}", img, err), TS_ERR);
    assert_string_equal(err, "params.pixel_size_um: must be a number from 0.1 to 10");
    assert_int_equal(check("fake", "{\"tile_size\": 512.5}", img, err), TS_ERR);
    assert_string_equal(err, "params.tile_size: must be an integer from 64 to 4096");
    assert_int_equal(check("fake", "{\"model\": \"all\"}", img, err), TS_ERR);
    assert_string_equal(err, "params.model: must be one of \"nuclei\", \"cells\"");
    assert_int_equal(check("fake", "{}", NULL, err), TS_ERR);
    assert_non_null(strstr(err, "image_path: required"));
}

static void test_check_strings_are_safe(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    const char *img = "/data/slide.svs";
    static const char *const bad[] = {
        "{\"label\": \"-rf\"}",        "{\"label\": \"--output=/etc\"}",
        "{\"label\": \"a;rm -rf /\"}", "{\"label\": \"$(id)\"}",
        "{\"label\": \"`id`\"}",       "{\"label\": \"a b\"}",
        "{\"label\": \"../etc\"}",     "{\"label\": \"x|y\"}",
        "{\"label\": \"\"}",           "{\"label\": \"a\\nb\"}",
        "{\"label\": \"12345678901234567\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (check("fake", bad[i], img, err) != TS_ERR) fail_msg("accepted %s", bad[i]);
        if (strncmp(err, "params.label: must be 1-16 characters of A-Z a-z 0-9 . _ -", 58) != 0 &&
            strstr(err, "params.label: must be a string") == NULL)
            fail_msg("%s: %s", bad[i], err);
    }
    assert_int_equal(check("fake", "{\"label\": \"-rf\"}", img, err), TS_ERR);
    assert_string_equal(err, "params.label: must be 1-16 characters of A-Z a-z 0-9 . _ -, not "
                             "starting with '-'");
    /* the admin's pattern replaces the charset; '-' first is refused anyway */
    assert_int_equal(check("pat", "{\"tag\": \"two words\"}", NULL, err), TS_OK);
    assert_int_equal(check("pat", "{\"tag\": \"Two\"}", NULL, err), TS_ERR);
    assert_string_equal(err, "params.tag: must be 1-10 characters matching [a-z ]+, not starting "
                             "with '-'");
    assert_int_equal(check("pat", "{}", NULL, err), TS_ERR);
    assert_string_equal(err, "params.tag: required by tool \"pat\"");
}

/* ---- argv ---- */

static void test_build_argv(void **state) {
    (void)state;
    const tool_def *t = jobs_find("fake")->data;
    json_t *params = json_loads("{\"tile_size\": 2048, \"pixel_size_um\": 0.1, \"flag\": true}",
                                0, NULL);
    tools_vars vars = {"/data/a b.svs", "/out", "/work", "job-1", 4, params};
    char **argv = NULL, err[TS_ERRLEN];
    assert_int_equal(tools_build_argv(t, &vars, &argv, err, sizeof(err)), TS_OK);
    const char *want[] = {good_sh, "/out", "--size=2048", "--px", "0.1", "--model", "nuclei",
                          "--flag=true", "--label", "cells", "{literal}", "/data/a b.svs",
                          "job-1", "4", NULL};
    for (size_t i = 0; want[i]; i++) assert_string_equal(argv[i], want[i]);
    assert_null(argv[14]);
    tools_strv_free(argv);
    json_decref(params);
    /* defaults: numbers as written, not 0.50000000000000000 */
    vars.params = NULL;
    assert_int_equal(tools_build_argv(t, &vars, &argv, err, sizeof(err)), TS_OK);
    assert_string_equal(argv[2], "--size=512");
    assert_string_equal(argv[4], "0.5");
    assert_string_equal(argv[7], "--flag=false");
    tools_strv_free(argv);
    char **envp = NULL;
    setenv("TESSERA_SESSION_SECRET", "s3cret", 1);
    assert_int_equal(tools_build_env(t, &vars, &envp, err, sizeof(err)), TS_OK);
    bool threads = false;
    for (size_t i = 0; envp[i]; i++) {
        assert_true(strncmp(envp[i], "TESSERA_", 8) != 0);
        threads |= strcmp(envp[i], "FAKE_THREADS=t4") == 0;
    }
    assert_true(threads);
    tools_strv_free(envp);
    unsetenv("TESSERA_SESSION_SECRET");
}

/* ---- running ---- */

typedef struct run {
    char work[160], result[160], spec[192], log[192];
    char *progress; /* what the runner wrote to fd 3 */
    char *out;      /* its stdout + stderr */
    int status;
    pid_t pid;
} run;

/* Writes the spec the executor would write for job "job-1" of type, with
 * this image and these data roots (NULL: the field is left out). */
static void prepare_image(run *r, const char *type, const char *params_text, const char *image,
                          const char *roots) {
    static int n;
    memset(r, 0, sizeof(*r));
    snprintf(r->work, sizeof(r->work), "%s/work-%d", dir, ++n);
    snprintf(r->result, sizeof(r->result), "%s/results-%d/job-1", dir, n);
    snprintf(r->spec, sizeof(r->spec), "%s/spec.json", r->work);
    snprintf(r->log, sizeof(r->log), "%s/job.log", r->work);
    assert_int_equal(mkdir(r->work, 0755), 0);
    json_t *spec = json_pack("{s:i, s:i, s:s, s:s, s:s, s:s?, s:o, s:i, s:i, s:s, s:s}",
                             "workflow_id", 1, "job_index", 0, "job_id", "job-1", "job_type",
                             type, "image_path", image, "data_roots", roots, "params",
                             json_loads(params_text, 0, NULL), "cpus", 2, "attempt", 1,
                             "work_dir", r->work, "result_dir", r->result);
    assert_int_equal(json_dump_file(spec, r->spec, 0), 0);
    json_decref(spec);
}

/* The same with the usual image, slide.svs inside the data root. */
static void prepare(run *r, const char *type, const char *params_text) {
    prepare_image(r, type, params_text, slide_path, data_root);
}

/* Forks the runner (as the executor does: fd 3 = progress pipe, stdout and
 * stderr = job.log); returns the read end of the progress pipe. */
static int start(run *r) {
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    r->pid = fork();
    assert_true(r->pid >= 0);
    if (r->pid == 0) {
        int fd = open(r->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        close(p[0]);
        dup2(p[1], 3);
        _exit(jobs_run_main(r->spec));
    }
    close(p[1]);
    return p[0];
}

/* Reads the progress pipe to its end and waits for the runner. */
static void finish(run *r, int fd) {
    size_t len = 0, cap = 4096;
    r->progress = ts_malloc(cap);
    ssize_t n;
    while ((n = read(fd, r->progress + len, cap - len - 1)) > 0) len += (size_t)n;
    r->progress[len] = '\0';
    close(fd);
    int status;
    assert_int_equal(waitpid(r->pid, &status, 0), r->pid);
    assert_true(WIFEXITED(status));
    r->status = WEXITSTATUS(status);
    r->out = test_slurp(r->log);
}

static void run_job(run *r, const char *type, const char *params_text) {
    prepare(r, type, params_text);
    finish(r, start(r));
}

static void run_free(run *r) {
    free(r->progress);
    free(r->out);
}

static char *result_file(const run *r, const char *name) {
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", r->result, name);
    return test_slurp(path);
}

static void test_run_success(void **state) {
    (void)state;
    setenv("TESSERA_SESSION_SECRET", "s3cret", 1);
    run r;
    run_job(&r, "fake", "{\"label\": \"x.1\", \"pixel_size_um\": 0.25}");
    unsetenv("TESSERA_SESSION_SECRET");
    if (r.status != 0) fail_msg("exit %d: %s", r.status, r.out);
    assert_string_equal(r.progress, "progress 0 1 starting tool\nprogress 1 4 first tile\n"
                                    "progress 4 4 \nprogress 1 1 done\n");
    assert_non_null(strstr(r.out, "hello from the tool\n"));
    assert_non_null(strstr(r.out, "to stderr\n"));
    assert_null(strstr(r.out, "PROGRESS"));
    char *s = result_file(&r, "summary.json");
    json_t *sum = json_loads(s, 0, NULL);
    assert_non_null(sum);
    assert_string_equal(json_string_value(json_object_get(sum, "tool")), "fake");
    assert_int_equal(json_integer_value(json_object_get(sum, "features")), 2);
    assert_string_equal(json_string_value(json_object_get(sum, "result")), "cells.geojson");
    json_decref(sum);
    free(s);
    /* one argument per line, exactly as templated; the first is {out_dir} */
    char *args = result_file(&r, "args.txt");
    assert_non_null(strchr(args, '\n'));
    char expected[512];
    snprintf(expected, sizeof(expected),
             "--size=512\n--px\n0.25\n--model\nnuclei\n--flag=false\n--label\nx.1\n"
             "{literal}\n%s\njob-1\n2\n",
             slide_path);
    assert_string_equal(strchr(args, '\n') + 1, expected);
    free(args);
    char *cwd = result_file(&r, "cwd.txt"), *env = result_file(&r, "env.txt");
    char *real_work = realpath(r.work, NULL);
    assert_true(strncmp(cwd, real_work, strlen(real_work)) == 0);
    assert_string_equal(env, "unset t2\n");
    free(real_work);
    free(cwd);
    free(env);
    run_free(&r);
}

/* Runs type and expects exit 1 with needle in the log and no result. */
static void expect_failure(const char *type, const char *needle) {
    run r;
    run_job(&r, type, "{}");
    assert_int_equal(r.status, 1);
    if (strstr(r.out, needle) == NULL) fail_msg("expected \"%s\" in \"%s\"", needle, r.out);
    struct stat st;
    assert_int_not_equal(stat(r.result, &st), 0);
    run_free(&r);
}

static void test_run_failures(void **state) {
    (void)state;
    expect_failure("fail3", "tessera run-job: job-1: tool fail3 exited with status 3\n");
    expect_failure("fail3", "model not found\n");
    expect_failure("quiet", "tool quiet did not write its result cells.geojson into {out_dir}");
    expect_failure("notgeo", "tool notgeo: result cells.geojson is not a GeoJSON "
                             "FeatureCollection");
    expect_failure("brief", "tool brief timed out after 0.3 s");
}

static void test_run_stop_kills_tool(void **state) {
    (void)state;
    run r;
    prepare(&r, "slow", "{}");
    int fd = start(&r);
    char buf[64];
    assert_true(read(fd, buf, sizeof(buf)) > 0); /* "progress 0 1": the tool is starting */
    /* slow.sh writes its pid into {out_dir}/.., the results directory */
    char results_pid[256];
    snprintf(results_pid, sizeof(results_pid), "%.*s/slow.pid",
             (int)(strrchr(r.result, '/') - r.result), r.result);
    long tool_pid = 0;
    for (int i = 0; i < 200 && tool_pid == 0; i++) {
        char *text = test_slurp(results_pid);
        tool_pid = atol(text);
        free(text);
        if (tool_pid == 0) usleep(10000);
    }
    assert_true(tool_pid > 0);
    double t0 = ts_monotonic();
    assert_int_equal(kill(r.pid, SIGTERM), 0);
    finish(&r, fd);
    assert_true(ts_monotonic() - t0 < 3.0);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "interrupted: tool slow stopped"));
    assert_int_equal(kill((pid_t)tool_pid, 0), -1);
    assert_int_equal(errno, ESRCH);
    run_free(&r);
}

/* Runs job-1 of tool "fake" on image with roots and expects the runner to
 * refuse it before the tool starts, saying needle; nothing is published. */
static void expect_image_refused(const char *image, const char *roots, const char *needle) {
    run r;
    prepare_image(&r, "fake", "{}", image, roots);
    finish(&r, start(&r));
    if (r.status != 1 || strstr(r.out, needle) == NULL)
        fail_msg("%s: exit %d, log: %s (wanted \"%s\")", image, r.status, r.out, needle);
    assert_null(strstr(r.progress, "starting tool"));
    struct stat st;
    assert_int_equal(stat(r.result, &st), -1);
    run_free(&r);
}

/* Issue 12, defects 1 and 3: the image is checked again when the job
 * starts. Between submission and start it may have become a FIFO (OpenSlide
 * or the tool would block for good) or a link to a file outside the data
 * roots; a spec without data roots cannot be checked and reads nothing. */
static void test_run_checks_the_image_again(void **state) {
    (void)state;
    char fifo[160], link[160], outside[160];
    snprintf(fifo, sizeof(fifo), "%s/fifo.svs", data_root);
    snprintf(outside, sizeof(outside), "%s/secret.svs", dir);
    snprintf(link, sizeof(link), "%s/swapped.svs", data_root);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    write_file(outside, "outside the data roots\n", 0644);
    assert_int_equal(symlink(outside, link), 0);
    expect_image_refused(fifo, data_root, "not a regular file (a FIFO)");
    expect_image_refused(link, data_root, "not found in the data roots");
    expect_image_refused(outside, data_root, "not found in the data roots");
    expect_image_refused(slide_path, NULL, "names no data roots");
    expect_image_refused(data_root, data_root, "not a regular file (a directory)");
}

/* Issue 12, defect 6: the rule that values never start with '-' holds for
 * every placeholder that begins an argv element: {job_id} ("--help"
 * reached the tool), numbers, and the paths the service fills in. Inside a
 * larger argument ("--at=-1", "{-x}") a leading '-' is harmless. */
static void test_no_value_begins_an_argument_with_a_dash(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    const char *img = "/data/slide.svs";
    json_t *p = json_object();
    assert_int_equal(jobs_check(NULL, "--help", "fake", p, img, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "job_id: \"--help\" would begin argv[12] of tool fake with '-', "
                             "which the tool would read as an option; values never start with '-'");
    assert_int_equal(jobs_check(NULL, "ok-1", "fake", p, img, err, sizeof(err)), TS_OK);
    /* {job_id} inside "{{...}}" text: "{-h}" is no option */
    assert_int_equal(jobs_check(NULL, "-h", "shifty", p, NULL, err, sizeof(err)), TS_OK);
    json_object_set_new(p, "shift", json_real(-0.5));
    assert_int_equal(jobs_check(NULL, "j", "shifty", p, NULL, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "params.shift: \"-0.5\" would begin argv[2]"));
    json_object_set_new(p, "shift", json_real(0.5));
    assert_int_equal(jobs_check(NULL, "j", "shifty", p, NULL, err, sizeof(err)), TS_OK);
    /* When the argv is built, the service's own values are held to it too. */
    const tool_def *t = jobs_find("shifty")->data;
    tools_vars vars = {NULL, "/out", "-work", "j", 1, p};
    char **argv = NULL;
    assert_int_equal(tools_build_argv(t, &vars, &argv, err, sizeof(err)), TS_ERR);
    assert_null(argv);
    assert_non_null(strstr(err, "work_dir: \"-work\" would begin argv[5]"));
    vars.work_dir = "/work";
    vars.job_id = "-x";
    assert_int_equal(tools_build_argv(t, &vars, &argv, err, sizeof(err)), TS_OK);
    assert_string_equal(argv[2], "0.5");
    assert_string_equal(argv[3], "--at=0.5");
    assert_string_equal(argv[4], "{-x}");
    tools_strv_free(argv);
    json_decref(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_bad_json),
        cmocka_unit_test(test_load_unknown_placeholder),
        cmocka_unit_test(test_load_bad_param),
        cmocka_unit_test(test_load_name_rules),
        cmocka_unit_test(test_load_argv0_and_result),
        cmocka_unit_test(test_load_once_and_registry),
        cmocka_unit_test(test_check_params),
        cmocka_unit_test(test_check_strings_are_safe),
        cmocka_unit_test(test_build_argv),
        cmocka_unit_test(test_run_success),
        cmocka_unit_test(test_run_failures),
        cmocka_unit_test(test_run_stop_kills_tool),
        cmocka_unit_test(test_run_checks_the_image_again),
        cmocka_unit_test(test_no_value_begins_an_argument_with_a_dash),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
