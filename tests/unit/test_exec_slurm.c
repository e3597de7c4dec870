/*
 * test_exec_slurm.c - the Slurm executor's pure parts (src/exec/slurm_parse.c)
 * and its command runner (slurm_cmd.c): tokens, squeue lines, what each end
 * state means, which errors are worth retrying, --time, shell quoting.
 * The executor itself runs against a real cluster in
 * tests/integration/test_slurm_*.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "exec/slurm.h"

static void test_token(void **state) {
    (void)state;
    char buf[96];
    slurm_token_format(buf, sizeof(buf), "0a1b2c3d4e5f6071", 12345, 7, 3);
    assert_string_equal(buf, "ts.0a1b2c3d4e5f6071.12345.7.3");
}

static void test_row_parse(void **state) {
    (void)state;
    slurm_row r;
    assert_true(slurm_row_parse("42|PENDING|Resources|ts.ab.1.0.1", &r));
    assert_string_equal(r.id, "42");
    assert_string_equal(r.state, "PENDING");
    assert_string_equal(r.reason, "Resources");
    assert_string_equal(r.name, "ts.ab.1.0.1");
    /* another user's job name may hold '|': the name is last */
    assert_true(slurm_row_parse("7|RUNNING|None|a|b|c\n", &r));
    assert_string_equal(r.name, "a|b|c");
    assert_false(slurm_row_parse("42_1|RUNNING|None|x", &r)); /* array task: never ours */
    assert_false(slurm_row_parse("garbage", &r));
    assert_false(slurm_row_parse("|RUNNING|None|x", &r));
    assert_false(slurm_row_parse("1||None|x", &r));
}

static void test_final_states(void **state) {
    (void)state;
    assert_true(slurm_state_final("COMPLETED"));
    assert_true(slurm_state_final("CANCELLED by 0"));
    assert_true(slurm_state_final("NODE_FAIL"));
    assert_false(slurm_state_final("PENDING"));
    assert_false(slurm_state_final("RUNNING"));
    assert_false(slurm_state_final("COMPLETING"));
    assert_false(slurm_state_final("COMPLETEDX"));
}

static void test_outcomes(void **state) {
    (void)state;
    char m[200];
    assert_string_equal(slurm_state_outcome("TIMEOUT", -1, m, sizeof(m)), "timeout");
    assert_non_null(strstr(m, "TIMEOUT"));
    assert_string_equal(slurm_state_outcome("NODE_FAIL", -1, m, sizeof(m)), "interrupted");
    assert_string_equal(slurm_state_outcome("PREEMPTED", -1, m, sizeof(m)), "interrupted");
    assert_string_equal(slurm_state_outcome("OUT_OF_MEMORY", -1, m, sizeof(m)), "failed");
    assert_non_null(strstr(m, "out of memory"));
    assert_string_equal(slurm_state_outcome("CANCELLED by 1000", -1, m, sizeof(m)), "failed");
    assert_non_null(strstr(m, "outside tessera"));
    assert_string_equal(slurm_state_outcome("FAILED", 3, m, sizeof(m)), "failed");
    assert_non_null(strstr(m, "exit code 3"));
    /* never a success without the marker */
    assert_string_equal(slurm_state_outcome("COMPLETED", 0, m, sizeof(m)), "failed");
    assert_non_null(strstr(m, "no exit marker"));
    assert_string_equal(slurm_state_outcome("", -1, m, sizeof(m)), "failed");
    assert_non_null(strstr(m, "left Slurm"));
}

static void test_transient(void **state) {
    (void)state;
    assert_true(slurm_error_transient(
        "sbatch: error: Batch job submission failed: Unable to contact slurm controller "
        "(connect failure)"));
    assert_true(slurm_error_transient("squeue: error: Socket timed out on send/recv operation"));
    assert_true(slurm_error_transient("sbatch timed out after 30 s"));
    assert_false(slurm_error_transient(
        "sbatch: error: Batch job submission failed: Invalid partition name specified"));
    assert_false(slurm_error_transient("sbatch: error: invalid account"));
}

static void test_time_and_quote(void **state) {
    (void)state;
    assert_int_equal(slurm_time_minutes(0), 0);
    assert_int_equal(slurm_time_minutes(1), 3);    /* 1 s + 120 s -> 3 min */
    assert_int_equal(slurm_time_minutes(3600), 62);
    char *q = slurm_shell_quote("/a b/it's");
    assert_string_equal(q, "'/a b/it'\\''s'");
    free(q);
    q = slurm_filename_escape("/srv/100%/job.log");
    assert_string_equal(q, "/srv/100%%/job.log");
    free(q);
}

static void test_cmd_run(void **state) {
    (void)state;
    slurm_cmd_result r;
    char *ok[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
    slurm_cmd_run(ok, 10, &r);
    assert_int_equal(r.status, 3);
    assert_string_equal(r.out, "out\n");
    assert_string_equal(r.errtext, "err\n");
    slurm_cmd_free(&r);
    char *slow[] = {"sleep", "10", NULL};
    slurm_cmd_run(slow, 0.3, &r);
    assert_true(r.timed_out);
    assert_int_equal(r.status, -1);
    assert_true(slurm_error_transient(r.errtext));
    assert_true(r.seconds < 5);
    slurm_cmd_free(&r);
    char *missing[] = {"no-such-command-tessera", NULL};
    slurm_cmd_run(missing, 5, &r);
    assert_int_equal(r.status, -1);
    assert_non_null(strstr(r.errtext, "no-such-command-tessera"));
    slurm_cmd_free(&r);
    char line[16];
    slurm_first_line("\n  first line\nsecond", line, sizeof(line));
    assert_string_equal(line, "first line");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token),          cmocka_unit_test(test_row_parse),
        cmocka_unit_test(test_final_states),   cmocka_unit_test(test_outcomes),
        cmocka_unit_test(test_transient),      cmocka_unit_test(test_time_and_quote),
        cmocka_unit_test(test_cmd_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
