/*
 * cli.h - the command line's shared pieces: option parsing over the
 * configuration (flag > environment > .env > default, DESIGN §3) and the
 * subcommands' entry points.
 *
 * Exit statuses of every subcommand: 0 success, 1 failure (a workflow that
 * did not succeed, or an error while running), 2 bad usage or invalid input
 * (nothing was changed).
 */
#ifndef TESSERA_CLI_CLI_H
#define TESSERA_CLI_CLI_H

#include <stdbool.h>

#include "util/config.h"

#define CLI_OK 0
#define CLI_FAILED 1
#define CLI_USAGE 2

#define CLI_MAX_POSITIONAL 8

/* What a subcommand accepts besides the configuration flags it names. */
typedef struct cli_spec {
    const char *name;       /* "run" */
    const char *usage;      /* full --help text */
    const char *const *config_flags; /* NULL-terminated: "--db", "--user", ... */
    const char *const *bool_flags;   /* NULL-terminated: "--json", ... */
    int min_positional, max_positional;
} cli_spec;

typedef struct cli_args {
    ts_config cfg;
    const char *positional[CLI_MAX_POSITIONAL];
    int n_positional;
    const char *bools[16]; /* the boolean flags given */
    int n_bools;
    int data_root_flags; /* --data-root given so far (they accumulate) */
} cli_args;

/* Parses argv (after the subcommand name) into a: loads .env and the
 * environment, then applies flags. Prints --help and returns CLI_OK with
 * *done = true; prints a clear error and returns CLI_USAGE on bad usage. */
int cli_parse(const cli_spec *spec, int argc, char **argv, cli_args *a, bool *done);

bool cli_has(const cli_args *a, const char *flag);

/* Opens the log as configured, defaulting to <state_dir>/tessera.log. */
int cli_open_log(const cli_args *a, const char *component);

/* Loads the admin-defined tools of --tools / TESSERA_TOOLS (if any) into
 * the job registry and exports the absolute path as TESSERA_TOOLS for the
 * job runners. CLI_OK, or CLI_USAGE after printing the problem. Call once,
 * before forking or starting the scheduler. */
int cli_load_tools(cli_args *a);

/* The same for `tessera run-job`, from TESSERA_TOOLS in the environment. */
int cli_runner_load_tools(void);

int cmd_run(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_user(int argc, char **argv);
int cmd_evaluate(int argc, char **argv); /* evaluate.c: scores against ground truth */
int cmd_demo_slide(int argc, char **argv); /* demo.c: synthetic slide + ground truth */

/* Clients of the HTTP API (remote.c, follow.c): --server URL, --user U or
 * --token T (TESSERA_SERVER, TESSERA_USER, TESSERA_TOKEN). */
int cmd_submit(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_logs(int argc, char **argv);

/* `tessera status [WORKFLOW] [--json]` answered by the service; cmd_status
 * calls it when a server is configured (a->cfg.server set). */
int cmd_status_remote(const cli_args *a);

/* The tables of `tessera status` (status.c), from the JSON views the store
 * path and the API both produce: a list of workflows, and one workflow. */
struct json_t;
void status_print_list(struct json_t *workflows);
void status_print_workflow(struct json_t *view);

#endif
