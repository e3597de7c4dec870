/*
 * status.c - `tessera status [WORKFLOW]`: what the store says, as a table
 * for people or as JSON (--json) for scripts. The JSON is the same view the
 * HTTP API returns.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "store/store.h"
#include "util/util.h"
#include "view/view.h"

static const char *const status_config_flags[] = {
    "--db", "--state-dir", "--user", "--concurrency-limit", "--max-active-users",
    "--server", "--token", NULL};
static const char *const status_bool_flags[] = {"--json", "--all", NULL};

static const cli_spec status_spec = {
    .name = "status",
    .usage = "usage: tessera status [WORKFLOW] [options]\n"
             "\n"
             "Without WORKFLOW: the user's workflows, newest first. With it: the workflow,\n"
             "its place in the admission line and why it waits, and each job's state,\n"
             "attempt, start and end times and reason.\n"
             "\n"
             "With a server (--server URL or TESSERA_SERVER) the service answers, for the\n"
             "user it knows you as (--user or --token); otherwise the local database does.\n"
             "\n"
             "options:\n"
             "  --user U       whose workflows (TESSERA_USER; default $USER)\n"
             "  --server URL   ask the service at URL (TESSERA_SERVER), e.g. http://127.0.0.1:8080\n"
             "  --token T      identify to the service with an API token (TESSERA_TOKEN)\n"
             "  --all          every user's workflows (reads the local database directly)\n"
             "  --json         print JSON instead of a table\n"
             "  --db PATH, --state-dir DIR, --concurrency-limit N, --max-active-users N\n"
             "                 as for tessera run (used to explain waiting)\n",
    .config_flags = status_config_flags,
    .bool_flags = status_bool_flags,
    .min_positional = 0,
    .max_positional = 1,
};

/* "09:40:01" from a JSON ISO time, or "-" */
static const char *hms(json_t *t, char *buf, size_t n) {
    const char *s = json_string_value(t);
    if (!s || strlen(s) < 19) return "-";
    snprintf(buf, n, "%.8s", s + 11);
    return buf;
}

/* One workflow view as a header and a table of its jobs. */
void status_print_workflow(json_t *v) {
    char a[16], b[16], c[16];
    printf("workflow %lld \"%s\"  user %s  state %s  progress %.0f%%\n",
           (long long)json_integer_value(json_object_get(v, "id")),
           json_string_value(json_object_get(v, "name")),
           json_string_value(json_object_get(v, "user")),
           json_string_value(json_object_get(v, "state")),
           json_number_value(json_object_get(v, "progress")) * 100);
    printf("submitted %s  admitted %s  finished %s\n", hms(json_object_get(v, "submitted_at"), a, 16),
           hms(json_object_get(v, "admitted_at"), b, 16), hms(json_object_get(v, "finished_at"), c, 16));
    json_t *pos = json_object_get(v, "queue_position");
    if (pos)
        printf("queue position %lld: %s\n", (long long)json_integer_value(pos),
               json_string_value(json_object_get(v, "waiting_reason")));
    const char *reason = json_string_value(json_object_get(v, "reason"));
    if (reason && reason[0]) printf("reason: %s\n", reason);
    printf("\n%-20s %-12s %-10s %7s %8s %8s %5s  %s\n", "JOB", "BRANCH", "STATE", "ATTEMPT",
           "STARTED", "FINISHED", "DONE", "REASON");
    size_t i;
    json_t *job;
    json_array_foreach(json_object_get(v, "jobs"), i, job) {
        const char *why = json_string_value(json_object_get(job, "waiting_reason"));
        if (!why || !why[0]) why = json_string_value(json_object_get(job, "reason"));
        printf("%-20s %-12s %-10s %7lld %8s %8s %4.0f%%  %s\n",
               json_string_value(json_object_get(job, "job_id")),
               json_string_value(json_object_get(job, "branch")),
               json_string_value(json_object_get(job, "state")),
               (long long)json_integer_value(json_object_get(job, "attempt")),
               hms(json_object_get(job, "started_at"), a, 16),
               hms(json_object_get(job, "finished_at"), b, 16),
               json_number_value(json_object_get(job, "progress")) * 100, why ? why : "");
    }
}

typedef struct list_ctx {
    json_t *arr;
} list_ctx;

static int list_cb(void *ctx, const store_workflow *wf) {
    list_ctx *lc = ctx;
    json_array_append_new(lc->arr, view_workflow(wf, NULL, NULL, ts_now()));
    return 0;
}

/* Workflow views (without jobs) as one table, a row each. */
void status_print_list(json_t *arr) {
    char a[16], b[16], c[16];
    char q[24];
    printf("%-6s %-24s %-12s %-10s %5s %8s %8s %8s %s\n", "ID", "NAME", "USER", "STATE", "JOBS",
           "SUBMIT", "ADMIT", "FINISH", "QUEUE");
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        json_t *pos = json_object_get(v, "queue_position");
        snprintf(q, sizeof(q), "%lld", (long long)json_integer_value(pos));
        printf("%-6lld %-24.24s %-12.12s %-10s %5lld %8s %8s %8s %s\n",
               (long long)json_integer_value(json_object_get(v, "id")),
               json_string_value(json_object_get(v, "name")),
               json_string_value(json_object_get(v, "user")),
               json_string_value(json_object_get(v, "state")),
               (long long)json_integer_value(json_object_get(v, "n_jobs")),
               hms(json_object_get(v, "submitted_at"), a, 16),
               hms(json_object_get(v, "admitted_at"), b, 16),
               hms(json_object_get(v, "finished_at"), c, 16), pos ? q : "");
    }
}

static int show_one(store *st, const cli_args *a, const char *id_text) {
    long id;
    char err[TS_ERRLEN];
    if (ts_parse_int(id_text, 1, LONG_MAX, &id) != TS_OK) {
        fprintf(stderr, "tessera status: WORKFLOW must be a workflow id (a positive integer), not %s\n", id_text);
        return CLI_USAGE;
    }
    store_workflow *wf = NULL;
    int rc = store_workflow_get(st, id, cli_has(a, "--all") ? NULL : a->cfg.user, &wf, err, sizeof(err));
    if (rc == STORE_NOTFOUND) {
        fprintf(stderr, "tessera status: workflow %ld not found for user %s\n", id, a->cfg.user);
        return CLI_FAILED;
    }
    if (rc != TS_OK) {
        fprintf(stderr, "tessera status: %s\n", err);
        return CLI_FAILED;
    }
    store_queue_stats stats;
    store_queue_stats_get(st, &stats, err, sizeof(err));
    view_limits lim = {a->cfg.max_active_users, a->cfg.concurrency_limit};
    json_t *v = view_workflow(wf, &stats, &lim, ts_now());
    if (view_add_attempts(st, wf, v, err, sizeof(err)) != TS_OK)
        fprintf(stderr, "tessera status: attempts not shown: %s\n", err);
    if (cli_has(a, "--json"))
        json_dumpf(v, stdout, JSON_INDENT(2)), putchar('\n');
    else
        status_print_workflow(v);
    json_decref(v);
    store_workflow_free(wf);
    return CLI_OK;
}

int cmd_status(int argc, char **argv) {
    cli_args a;
    bool done;
    int rc = cli_parse(&status_spec, argc, argv, &a, &done);
    if (rc != CLI_OK || done) return rc;
    if (a.cfg.server[0] != '\0') return cmd_status_remote(&a);
    char err[TS_ERRLEN];
    store *st = NULL;
    /* Reading never creates a database (an empty one would only say "no
     * workflows" where the real one is missing). */
    if (store_open_existing(a.cfg.db, &st, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "tessera status: %s\n", err);
        return CLI_FAILED;
    }
    if (a.n_positional == 1) {
        rc = show_one(st, &a, a.positional[0]);
    } else {
        list_ctx lc = {json_array()};
        rc = store_workflow_list(st, cli_has(&a, "--all") ? NULL : a.cfg.user, -1, 0, 100,
                                 list_cb, &lc, err, sizeof(err));
        if (rc != TS_OK) {
            fprintf(stderr, "tessera status: %s\n", err);
            rc = CLI_FAILED;
        } else if (cli_has(&a, "--json")) {
            json_dumpf(lc.arr, stdout, JSON_INDENT(2));
            putchar('\n');
        } else {
            status_print_list(lc.arr);
        }
        json_decref(lc.arr);
    }
    store_close(st);
    return rc;
}
