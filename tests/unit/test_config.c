/*
 * test_config.c - defaults, validation, .env parsing and precedence
 * (src/util/config.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/config.h"
#include "util/util.h"

/* Every TESSERA_* variable the tests may set; cleared around each test so
 * the developer's own environment cannot change the outcome. */
static const char *const vars[] = {
    "TESSERA_LISTEN", "TESSERA_WORKERS", "TESSERA_DB", "TESSERA_STATE_DIR",
    "TESSERA_DATA_ROOTS", "TESSERA_MAX_ACTIVE_USERS", "TESSERA_CONCURRENCY_LIMIT",
    "TESSERA_QUEUE_POLL_SECONDS", "TESSERA_SESSION_SECRET", "TESSERA_AUTH", "TESSERA_LOG",
    "TESSERA_LOG_LEVEL", "TESSERA_USER",
};

typedef struct fixture {
    char dir[64];
    char path[128];
} fixture;

static int setup(void **state) {
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) unsetenv(vars[i]);
    fixture *f = ts_calloc(1, sizeof(*f));
    ts_strlcpy(f->dir, "/tmp/test_config.XXXXXX", sizeof(f->dir));
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/.env", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) unsetenv(vars[i]);
    return 0;
}

static void write_env(const fixture *f, const char *text) {
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_config_defaults(void **state) {
    (void)state;
    ts_config cfg;
    config_defaults(&cfg);
    assert_string_equal(cfg.listen, "127.0.0.1:8080");
    assert_int_equal(cfg.workers, 2);
    assert_string_equal(cfg.state_dir, "./var");
    assert_int_equal(cfg.max_active_users, 3);
    assert_int_equal(cfg.concurrency_limit, (int)sysconf(_SC_NPROCESSORS_ONLN));
    assert_true(cfg.queue_poll_seconds == 1.0);
    assert_int_equal(cfg.job_nice, 10);
    assert_string_equal(cfg.auth, "header");
    assert_string_equal(cfg.log_level, "info");
    assert_string_equal(cfg.session_secret, "");
    config_finish(&cfg);
    assert_string_equal(cfg.db, "./var/tessera.db");
    assert_string_equal(cfg.data_roots, "./var/data");
}

static void test_config_user_default_from_user_env(void **state) {
    (void)state;
    const char *saved = getenv("USER");
    char *copy = saved ? ts_strdup(saved) : NULL;
    ts_config cfg;
    setenv("USER", "alice.smith@lab", 1);
    config_defaults(&cfg);
    assert_string_equal(cfg.user, "alice.smith@lab");
    setenv("USER", "bad user!", 1);
    config_defaults(&cfg);
    assert_string_equal(cfg.user, "local");
    unsetenv("USER");
    config_defaults(&cfg);
    assert_string_equal(cfg.user, "local");
    if (copy) setenv("USER", copy, 1);
    free(copy);
}

static void test_config_set_validates_and_names_rule(void **state) {
    (void)state;
    ts_config cfg;
    char err[TS_ERRLEN];
    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "TESSERA_WORKERS", "8", err, sizeof(err)), TS_OK);
    assert_int_equal(cfg.workers, 8);
    assert_int_equal(config_set(&cfg, "TESSERA_WORKERS", "65", err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "TESSERA_WORKERS: must be an integer from 1 to 64");
    assert_int_equal(cfg.workers, 8);
    assert_int_equal(config_set(&cfg, "TESSERA_WORKERS", "2x", err, sizeof(err)), TS_ERR);
    assert_int_equal(config_set(&cfg, "TESSERA_QUEUE_POLL_SECONDS", "0.001", err, sizeof(err)),
                     TS_ERR);
    assert_string_equal(err, "TESSERA_QUEUE_POLL_SECONDS: must be a number from 0.01 to 3600");
    assert_int_equal(config_set(&cfg, "TESSERA_QUEUE_POLL_SECONDS", "0.5", err, sizeof(err)), TS_OK);
    assert_true(cfg.queue_poll_seconds == 0.5);
    assert_int_equal(config_set(&cfg, "TESSERA_JOB_NICE", "20", err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "TESSERA_JOB_NICE: must be an integer from 0 to 19");
    assert_int_equal(config_set(&cfg, "TESSERA_JOB_NICE", "-5", err, sizeof(err)), TS_ERR);
    assert_int_equal(cfg.job_nice, 10);
    assert_int_equal(config_set(&cfg, "TESSERA_JOB_NICE", "0", err, sizeof(err)), TS_OK);
    assert_int_equal(cfg.job_nice, 0);
    assert_int_equal(config_set(&cfg, "TESSERA_AUTH", "basic", err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "TESSERA_AUTH: must be \"header\" or \"token\"");
    assert_int_equal(config_set(&cfg, "TESSERA_LISTEN", "8080", err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "TESSERA_LISTEN: must be HOST:PORT with a port from 0 to 65535");
    assert_int_equal(config_set(&cfg, "TESSERA_LISTEN", "[::1]:0", err, sizeof(err)), TS_OK);
    assert_int_equal(config_set(&cfg, "TESSERA_LOG_LEVEL", "verbose", err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "TESSERA_LOG_LEVEL: must be one of debug, info, warn, error");
    assert_int_equal(config_set(&cfg, "TESSERA_USER", "", err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "TESSERA_USER: must be 1 to 128 bytes long");
    assert_int_equal(config_set(&cfg, "TESSERA_USER", "a b", err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "TESSERA_USER: must be 1-128 characters of A-Z a-z 0-9 . _ @ -");
    assert_int_equal(config_set(&cfg, "TESSERA_DATA_ROOTS", "/a::/b", err, sizeof(err)), TS_ERR);
    assert_int_equal(config_set(&cfg, "TESSERA_DATA_ROOTS", "/a:/b", err, sizeof(err)), TS_OK);
    assert_int_equal(config_set(&cfg, "TESSERA_STATE_DIR", "", err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "TESSERA_STATE_DIR: must be 1 to 1000 bytes long");
    assert_int_equal(config_set(&cfg, "TESSERA_NOPE", "1", err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "TESSERA_NOPE: unknown variable (known: TESSERA_LISTEN,"));
}

/* The executor and the Slurm settings: defaults, and every bad value
 * refused with the variable's name and the rule, leaving cfg unchanged. */
static void test_config_executor_and_slurm(void **state) {
    (void)state;
    ts_config cfg;
    char err[TS_ERRLEN];
    config_defaults(&cfg);
    assert_string_equal(cfg.executor, "local");
    assert_int_equal(cfg.slurm_max_submitted, 1000);
    assert_int_equal(config_set(&cfg, "TESSERA_EXECUTOR", "slurm", err, sizeof(err)), TS_OK);
    assert_string_equal(cfg.executor, "slurm");
    assert_int_equal(config_set(&cfg, "TESSERA_EXECUTOR", "pbs", err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "TESSERA_EXECUTOR: must be \"local\" or \"slurm\"");
    assert_string_equal(cfg.executor, "slurm");
    assert_int_equal(config_set(&cfg, "TESSERA_SLURM_PARTITION", "gpu-a100", err, sizeof(err)),
                     TS_OK);
    assert_int_equal(config_set(&cfg, "TESSERA_SLURM_PARTITION", "a,b", err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "TESSERA_SLURM_PARTITION: must be a Slurm name"));
    assert_int_equal(config_set(&cfg, "TESSERA_SLURM_ACCOUNT", "lab 1", err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "TESSERA_SLURM_ACCOUNT:"));
    assert_int_equal(config_set(&cfg, "TESSERA_SLURM_EXTRA_ARGS", "--qos=short  --mem=2G -C avx",
                                err, sizeof(err)),
                     TS_ERR); /* "avx" is not an option */
    assert_non_null(strstr(err, "TESSERA_SLURM_EXTRA_ARGS: \"avx\" is not an option"));
    assert_int_equal(config_set(&cfg, "TESSERA_SLURM_EXTRA_ARGS", "--qos=short --mem=2G -Cavx",
                                err, sizeof(err)),
                     TS_OK);
    assert_int_equal(config_set(&cfg, "TESSERA_SLURM_EXTRA_ARGS", "--time=5", err, sizeof(err)),
                     TS_ERR);
    assert_non_null(strstr(err, "tessera sets --time itself"));
    assert_int_equal(config_set(&cfg, "TESSERA_SLURM_EXTRA_ARGS", "-J x", err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "tessera sets -J itself"));
    assert_int_equal(config_set(&cfg, "TESSERA_SLURM_EXTRA_ARGS", "--requeue", err, sizeof(err)),
                     TS_ERR);
    assert_int_equal(config_set(&cfg, "TESSERA_SLURM_EXTRA_ARGS", "--comment=$(id)", err,
                                sizeof(err)),
                     TS_ERR);
    assert_non_null(strstr(err, "shell characters"));
    assert_string_equal(cfg.slurm_extra_args, "--qos=short --mem=2G -Cavx");
    assert_int_equal(config_set(&cfg, "TESSERA_SLURM_MAX_SUBMITTED", "0", err, sizeof(err)),
                     TS_ERR);
    assert_string_equal(err, "TESSERA_SLURM_MAX_SUBMITTED: must be an integer from 1 to 100000");
    assert_int_equal(config_set(&cfg, "TESSERA_SLURM_SUBMIT_RATE", "0", err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "TESSERA_SLURM_SUBMIT_RATE: must be a number from 0.1 to 1000");
    assert_int_equal(config_set(&cfg, "TESSERA_SLURM_POLL_SECONDS", "0.5", err, sizeof(err)),
                     TS_OK);
    assert_int_equal(config_set(&cfg, "TESSERA_SLURM_MARKER_WAIT_SECONDS", "-1", err, sizeof(err)),
                     TS_ERR);
}

static void test_config_finish_keeps_explicit_values(void **state) {
    (void)state;
    ts_config cfg;
    char err[TS_ERRLEN];
    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "TESSERA_STATE_DIR", "/srv/t", err, sizeof(err)), TS_OK);
    assert_int_equal(config_set(&cfg, "TESSERA_DB", "postgresql://db/t", err, sizeof(err)), TS_OK);
    config_finish(&cfg);
    assert_string_equal(cfg.db, "postgresql://db/t");
    assert_string_equal(cfg.data_roots, "/srv/t/data");
}

static void test_config_dotenv_quoting_and_comments(void **state) {
    fixture *f = *state;
    write_env(f, "# a comment\n"
                 "\n"
                 "   \n"
                 "export TESSERA_WORKERS=4\n"
                 "TESSERA_LISTEN = 0.0.0.0:9000   # trailing comment\n"
                 "TESSERA_SESSION_SECRET=\"a \\\"quoted\\\" \\\\ secret\\n\"\n"
                 "TESSERA_LOG='/tmp/x \"raw\" \\n'\n"
                 "TESSERA_DB=sqlite#frag\r\n"
                 "OTHER_TOOL_SETTING=whatever\n"
                 "TESSERA_STATE_DIR=\"/var/lib/tessera\" # state\n");
    ts_config cfg;
    char err[TS_ERRLEN] = "";
    config_defaults(&cfg);
    assert_int_equal(config_load(&cfg, f->path, err, sizeof(err)), TS_OK);
    assert_int_equal(cfg.workers, 4);
    assert_string_equal(cfg.listen, "0.0.0.0:9000");
    assert_string_equal(cfg.session_secret, "a \"quoted\" \\ secret\n");
    assert_string_equal(cfg.log, "/tmp/x \"raw\" \\n");
    assert_string_equal(cfg.db, "sqlite#frag");
    assert_string_equal(cfg.state_dir, "/var/lib/tessera");
}

/* Loads the .env text and returns the error message (or "" on success). */
static const char *load_error(const fixture *f, const char *text, char *err) {
    write_env(f, text);
    ts_config cfg;
    config_defaults(&cfg);
    err[0] = '\0';
    config_load(&cfg, f->path, err, TS_ERRLEN);
    const char *colon = strstr(err, ".env:");
    return colon ? colon : err;
}

static void test_config_dotenv_errors_name_file_and_line(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN];
    assert_string_equal(load_error(f, "A=1\nB=2\n\n# c\nC=3\nD=4\njust words\n", err),
                        ".env:7: expected KEY=VALUE");
    assert_string_equal(load_error(f, "=x\n", err), ".env:1: expected KEY=VALUE");
    assert_string_equal(load_error(f, "1A=x\n", err), ".env:1: expected KEY=VALUE");
    assert_string_equal(load_error(f, "X=\"open\n", err), ".env:1: unterminated double quote");
    assert_string_equal(load_error(f, "X='open\n", err), ".env:1: unterminated single quote");
    assert_string_equal(load_error(f, "X=\"a\" b\n", err),
                        ".env:1: unexpected text after the closing quote");
    assert_string_equal(load_error(f, "TESSERA_WORKERS=0\n", err),
                        ".env:1: TESSERA_WORKERS: must be an integer from 1 to 64");
    /* the file name is part of the message, so the user knows which .env */
    assert_non_null(strstr(err, f->dir));
}

static void test_config_dotenv_unknown_tessera_key_rejected(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN];
    assert_non_null(strstr(load_error(f, "PATH=/bin\nTESSERA_WORKRS=3\n", err),
                           ".env:2: TESSERA_WORKRS: unknown variable (known: TESSERA_LISTEN"));
    assert_string_equal(load_error(f, "PATH=/bin\nHOME=x\nexport=1\n", err), "");
}

static void test_config_missing_dotenv_is_skipped(void **state) {
    fixture *f = *state;
    ts_config cfg;
    char err[TS_ERRLEN];
    config_defaults(&cfg);
    assert_int_equal(config_load(&cfg, f->path, err, sizeof(err)), TS_OK);
    assert_int_equal(config_load(&cfg, NULL, err, sizeof(err)), TS_OK);
    assert_int_equal(cfg.workers, 2);
}

static void test_config_precedence_default_dotenv_env_flag(void **state) {
    fixture *f = *state;
    write_env(f, "TESSERA_WORKERS=4\nTESSERA_MAX_ACTIVE_USERS=5\nTESSERA_AUTH=token\n");
    setenv("TESSERA_WORKERS", "6", 1);
    setenv("TESSERA_AUTH", "header", 1);
    ts_config cfg;
    char err[TS_ERRLEN];
    config_defaults(&cfg);
    assert_int_equal(config_load(&cfg, f->path, err, sizeof(err)), TS_OK);
    assert_int_equal(cfg.workers, 6);          /* environment over .env */
    assert_int_equal(cfg.max_active_users, 5); /* .env over default */
    assert_string_equal(cfg.auth, "header");
    assert_int_equal(cfg.concurrency_limit, (int)sysconf(_SC_NPROCESSORS_ONLN)); /* default */
    assert_int_equal(config_set(&cfg, "TESSERA_WORKERS", "7", err, sizeof(err)), TS_OK);
    assert_int_equal(cfg.workers, 7); /* a flag, applied last by the caller */
}

static void test_config_bad_environment_value_named(void **state) {
    (void)state;
    setenv("TESSERA_MAX_ACTIVE_USERS", "lots", 1);
    setenv("TESSERA_TYPO_IGNORED", "1", 1);
    ts_config cfg;
    char err[TS_ERRLEN];
    config_defaults(&cfg);
    assert_int_equal(config_load(&cfg, NULL, err, sizeof(err)), TS_ERR);
    assert_string_equal(err,
                        "environment: TESSERA_MAX_ACTIVE_USERS: must be an integer from 1 to 10000");
    unsetenv("TESSERA_TYPO_IGNORED");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_user_default_from_user_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_set_validates_and_names_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_executor_and_slurm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_finish_keeps_explicit_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_dotenv_quoting_and_comments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_dotenv_errors_name_file_and_line, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config_dotenv_unknown_tessera_key_rejected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config_missing_dotenv_is_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_precedence_default_dotenv_env_flag, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config_bad_environment_value_named, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
