/*
 * options.c - see cli.h: flags map onto the TESSERA_* configuration keys so
 * that one validation (config_set) serves flags, environment and .env.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "jobs/jobs.h"
#include "util/layout.h"
#include "util/log.h"
#include "util/util.h"

static const struct {
    const char *flag;
    const char *key;
} flag_keys[] = {
    {"--listen", "TESSERA_LISTEN"},
    {"--workers", "TESSERA_WORKERS"},
    {"--db", "TESSERA_DB"},
    {"--state-dir", "TESSERA_STATE_DIR"},
    {"--data-root", "TESSERA_DATA_ROOTS"},
    {"--max-active-users", "TESSERA_MAX_ACTIVE_USERS"},
    {"--concurrency-limit", "TESSERA_CONCURRENCY_LIMIT"},
    {"--poll-seconds", "TESSERA_QUEUE_POLL_SECONDS"},
    {"--auth", "TESSERA_AUTH"},
    {"--log", "TESSERA_LOG"},
    {"--log-level", "TESSERA_LOG_LEVEL"},
    {"--user", "TESSERA_USER"},
    {"--server", "TESSERA_SERVER"},
    {"--token", "TESSERA_TOKEN"},
    {"--tools", "TESSERA_TOOLS"},
    {"--executor", "TESSERA_EXECUTOR"},
};

static bool in_list(const char *const *list, const char *s) {
    for (; list && *list; list++)
        if (strcmp(*list, s) == 0) return true;
    return false;
}

static const char *flag_key(const char *flag) {
    for (size_t i = 0; i < sizeof(flag_keys) / sizeof(flag_keys[0]); i++)
        if (strcmp(flag_keys[i].flag, flag) == 0) return flag_keys[i].key;
    return NULL;
}

/* Applies one "--flag value" (or "--flag=value"); returns how many argv
 * entries it used, or -1 after printing an error. */
static int apply_flag(const cli_spec *spec, cli_args *a, int argc, char **argv, int i) {
    char name[64];
    const char *arg = argv[i], *eq = strchr(arg, '='), *value = NULL;
    size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
    ts_strlcpy(name, arg, name_len + 1 < sizeof(name) ? name_len + 1 : sizeof(name));
    if (in_list(spec->bool_flags, name) && !eq) {
        if (a->n_bools < 16) a->bools[a->n_bools++] = arg;
        return 1;
    }
    if (!in_list(spec->config_flags, name)) {
        fprintf(stderr, "tessera %s: unknown option %s (see tessera %s --help)\n", spec->name,
                name, spec->name);
        return -1;
    }
    int used = 1;
    if (eq)
        value = eq + 1;
    else if (i + 1 < argc)
        value = argv[i + 1], used = 2;
    else {
        fprintf(stderr, "tessera %s: option %s needs a value\n", spec->name, name);
        return -1;
    }
    char err[TS_ERRLEN];
    char joined[2 * sizeof(a->cfg.data_roots) + 2]; /* config_set refuses what is too long */
    if (strcmp(name, "--data-root") == 0) {
        /* Repeatable (DESIGN §3): later ones add to the earlier ones. */
        if (a->data_root_flags++ > 0) {
            snprintf(joined, sizeof(joined), "%s:%s", a->cfg.data_roots, value);
            value = joined;
        }
    }
    if (config_set(&a->cfg, flag_key(name), value, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "tessera %s: %s: %s\n", spec->name, name, err);
        return -1;
    }
    return used;
}

int cli_parse(const cli_spec *spec, int argc, char **argv, cli_args *a, bool *done) {
    memset(a, 0, sizeof(*a));
    *done = false;
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(spec->usage, stdout);
            *done = true;
            return CLI_OK;
        }
    char err[TS_ERRLEN];
    config_defaults(&a->cfg);
    if (config_load(&a->cfg, ".env", err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "tessera %s: %s\n", spec->name, err);
        return CLI_USAGE;
    }
    for (int i = 0; i < argc;) {
        if (strncmp(argv[i], "--", 2) == 0 && argv[i][2] != '\0') {
            int used = apply_flag(spec, a, argc, argv, i);
            if (used < 0) return CLI_USAGE;
            i += used;
            continue;
        }
        if (a->n_positional >= spec->max_positional || a->n_positional >= CLI_MAX_POSITIONAL) {
            fprintf(stderr, "tessera %s: unexpected argument %s (see tessera %s --help)\n",
                    spec->name, argv[i], spec->name);
            return CLI_USAGE;
        }
        a->positional[a->n_positional++] = argv[i++];
    }
    if (a->n_positional < spec->min_positional) {
        fprintf(stderr, "tessera %s: missing argument (see tessera %s --help)\n", spec->name,
                spec->name);
        return CLI_USAGE;
    }
    config_finish(&a->cfg);
    return CLI_OK;
}

bool cli_has(const cli_args *a, const char *flag) {
    for (int i = 0; i < a->n_bools; i++)
        if (strcmp(a->bools[i], flag) == 0) return true;
    return false;
}

int cli_open_log(const cli_args *a, const char *component) {
    char path[1200], err[TS_ERRLEN];
    char *fallback = layout_file_path(a->cfg.state_dir, LAYOUT_LOG);
    ts_strlcpy(path, a->cfg.log[0] ? a->cfg.log : fallback, sizeof(path));
    free(fallback);
    log_level level = LOG_INFO;
    log_level_parse(a->cfg.log_level, &level);
    if (log_open(path, component, level, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "tessera: %s\n", err);
        return TS_ERR;
    }
    return TS_OK;
}

/* Registers the admin-defined tools of --tools / TESSERA_TOOLS. The path is
 * made absolute and exported as TESSERA_TOOLS first, because the job
 * runners (`tessera run-job`, started later by the scheduler, perhaps in
 * another directory) read only the environment and must load the very same
 * file. A bad file is bad usage: nothing starts. */
int cli_load_tools(cli_args *a) {
    if (a->cfg.tools[0] == '\0') return CLI_OK;
    char err[TS_ERRLEN];
    char *abs = realpath(a->cfg.tools, NULL);
    int rc = CLI_USAGE;
    if (abs == NULL || strlen(abs) >= sizeof(a->cfg.tools)) {
        fprintf(stderr, "tessera: --tools %s: %s\n", a->cfg.tools,
                abs ? "path too long" : strerror(errno));
        goto cleanup;
    }
    if (jobs_load_tools(abs, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "tessera: --tools: %s\n", err);
        goto cleanup;
    }
    ts_strlcpy(a->cfg.tools, abs, sizeof(a->cfg.tools));
    setenv("TESSERA_TOOLS", abs, 1);
    rc = CLI_OK;
cleanup:
    free(abs);
    return rc;
}

/* `tessera run-job`: the configuration comes from the environment alone
 * (serve and run exported everything the runner needs, TESSERA_TOOLS as an
 * absolute path), so a runner on a cluster node needs no .env file. */
int cli_runner_load_tools(void) {
    ts_config cfg;
    char err[TS_ERRLEN];
    config_defaults(&cfg);
    if (config_load(&cfg, NULL, err, sizeof(err)) != TS_OK ||
        jobs_load_tools(cfg.tools, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "tessera run-job: %s\n", err);
        return CLI_USAGE;
    }
    return CLI_OK;
}
