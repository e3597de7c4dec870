/*
 * remote.c - the command line's clients of the HTTP API (DESIGN §3, §4):
 * `tessera submit`, `tessera cancel`, `tessera logs`, and `tessera status`
 * when a server is configured. Each sends one request (cancel also waits
 * briefly to report the outcome) and says what the service answered; the
 * service's own error message is shown as it is, since it names the field,
 * job or limit at fault.
 *
 * Exit statuses (cli.h): 0 done; 1 the service refused or could not be
 * reached, or a followed workflow did not succeed; 2 bad usage, or the
 * service answered 400/422 (invalid input: nothing was changed).
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/follow.h"
#include "core/state.h"
#include "util/util.h"

#define MAX_FILE_BYTES (64L * 1024 * 1024)
#define CANCEL_WAIT_S 3.0 /* how long cancel waits to report the final state */

#define CLIENT_OPTIONS_HELP                                                                        \
    "options (each also read from the TESSERA_* variable and ./.env):\n"                          \
    "  --server URL   the service (TESSERA_SERVER), e.g. http://127.0.0.1:8080\n"                 \
    "  --user U       act as user U (TESSERA_USER; default $USER); sent as X-User-ID\n"           \
    "  --token T      an API token from `tessera user add` (TESSERA_TOKEN); wins over --user\n"

static const char *const client_flags[] = {"--server", "--user", "--token", NULL};
static const char *const submit_bools[] = {"--follow", "--quiet", NULL};

static const cli_spec submit_spec = {
    .name = "submit",
    .usage = "usage: tessera submit WORKFLOW.json [--follow] [options]\n"
             "\n"
             "Sends the workflow to the service (POST /api/workflows) and prints its id, and\n"
             "its place in the line if it has to wait. With --follow, shows live progress\n"
             "until it ends (bars on a terminal, plain lines otherwise).\n"
             "Exit status: 0 submitted (with --follow: succeeded), 1 refused, unreachable,\n"
             "or (with --follow) failed or cancelled, 2 invalid workflow (nothing stored).\n"
             "\n" CLIENT_OPTIONS_HELP
             "  --follow       stay and show progress until the workflow ends\n"
             "  --quiet        with --follow: no progress, only a final line if not succeeded\n",
    .config_flags = client_flags,
    .bool_flags = submit_bools,
    .min_positional = 1,
    .max_positional = 1,
};

static const cli_spec cancel_spec = {
    .name = "cancel",
    .usage = "usage: tessera cancel WORKFLOW [JOB] [options]\n"
             "\n"
             "Cancels a queued or running workflow, or one job of it, and prints the\n"
             "resulting state. Running jobs are stopped (SIGTERM, then SIGKILL). Cancelling\n"
             "something already finished changes nothing.\n"
             "\n" CLIENT_OPTIONS_HELP,
    .config_flags = client_flags,
    .min_positional = 1,
    .max_positional = 2,
};

static const cli_spec logs_spec = {
    .name = "logs",
    .usage = "usage: tessera logs WORKFLOW JOB [options]\n"
             "\n"
             "Writes the job's log to standard output as the service has it (empty if the\n"
             "job has not started).\n"
             "\n" CLIENT_OPTIONS_HELP,
    .config_flags = client_flags,
    .min_positional = 2,
    .max_positional = 2,
};

/* Connects a client as configured; prints why not (the fix is a flag or a
 * variable, hence CLI_USAGE) and returns NULL. */
static client *open_client(const char *cmd, const cli_args *a) {
    char err[TS_ERRLEN];
    client *c = client_new(&a->cfg, err, sizeof(err));
    if (!c) fprintf(stderr, "tessera %s: %s\n", cmd, err);
    return c;
}

/* WORKFLOW arguments are positive integers: checked here so that a typo
 * gets a usage message rather than a 404. */
static bool parse_workflow_id(const char *cmd, const char *text, long *id) {
    if (ts_parse_int(text, 1, LONG_MAX, id) == TS_OK) return true;
    fprintf(stderr, "tessera %s: WORKFLOW must be a workflow id (a positive integer), not %s\n",
            cmd, text);
    return false;
}

/* JOB arguments follow DESIGN §1 (1-64 of [A-Za-z0-9._-]), which also
 * keeps them safe to put in a URL path as they are. */
static bool check_job_id(const char *cmd, const char *job) {
    size_t len = strlen(job);
    bool ok = len >= 1 && len <= 64;
    for (const char *p = job; ok && *p; p++)
        ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
             strchr("._-", *p) != NULL;
    if (!ok)
        fprintf(stderr, "tessera %s: JOB must be a job id (1-64 characters of A-Z a-z 0-9 . _ -), "
                        "not %s\n", cmd, job);
    return ok;
}

/* Prints an error answer as one line and maps it to an exit status: 400
 * and 422 mean the input was invalid (2); anything else is a failure (1). */
static int report_error(const char *cmd, long status, const char *resp, size_t len) {
    char line[1024];
    client_error_line(status, resp, len, line, sizeof(line));
    fprintf(stderr, "tessera %s: %s\n", cmd, line);
    if (status == 401)
        fprintf(stderr, "tessera %s: identify with --token T (TESSERA_TOKEN), or --user U if the "
                        "service trusts X-User-ID\n", cmd);
    return status == 400 || status == 422 ? CLI_USAGE : CLI_FAILED;
}

/* One request whose 2xx answer is a JSON object: returns it (caller
 * decrefs), or NULL after printing the problem with *rc set. */
static json_t *request_json(const char *cmd, client *c, const char *method, const char *path,
                            const char *body, size_t body_len, long *status, int *rc) {
    char err[TS_ERRLEN], *resp = NULL;
    size_t len = 0;
    *rc = CLI_FAILED;
    if (client_request(c, method, path, body, body_len, status, &resp, &len, err, sizeof(err)) !=
        TS_OK) {
        fprintf(stderr, "tessera %s: %s\n", cmd, err);
        return NULL;
    }
    /* json_is_object() evaluates its argument twice: parse first. */
    json_t *o = *status >= 200 && *status < 300 ? json_loadb(resp, len, 0, NULL) : NULL;
    if (*status < 200 || *status >= 300)
        *rc = report_error(cmd, *status, resp, len);
    else if (!json_is_object(o))
        fprintf(stderr, "tessera %s: the service's answer to %s %s is not a JSON object\n", cmd,
                method, path);
    else
        *rc = CLI_OK;
    if (*rc != CLI_OK) json_decref(o), o = NULL;
    free(resp);
    return o;
}

/* A string member of o, or fallback when absent or not a string. */
static const char *str_or(json_t *o, const char *key, const char *fallback) {
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : fallback;
}

/* Reads a whole file (up to MAX_FILE_BYTES; the service has its own,
 * smaller limit and says so). NULL after printing why. */
static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "tessera submit: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *buf = ts_malloc((size_t)MAX_FILE_BYTES + 1);
    *len = fread(buf, 1, (size_t)MAX_FILE_BYTES + 1, f);
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed || *len > (size_t)MAX_FILE_BYTES) {
        fprintf(stderr, "tessera submit: %s: %s\n", path,
                failed ? "cannot read the file" : "larger than 64 MiB");
        free(buf);
        return NULL;
    }
    return buf;
}

/* "submitted workflow 7 "name"" plus, when it waits, its place and why. */
static void print_submitted(json_t *v) {
    json_t *pos = json_object_get(v, "queue_position");
    json_int_t id = json_integer_value(json_object_get(v, "id"));
    printf("submitted workflow %lld \"%s\"", (long long)id, str_or(v, "name", ""));
    if (json_is_integer(pos)) {
        const char *why = str_or(v, "waiting_reason", "");
        printf(" (queued: position %lld in line%s%s)", (long long)json_integer_value(pos),
               why[0] ? "; " : "", why);
    }
    putchar('\n');
    fflush(stdout);
}

/* Submit: read the file, POST it as it is (the service validates, so the
 * rules live in one place), print the id; with --follow, stay to the end. */
int cmd_submit(int argc, char **argv) {
    cli_args a;
    bool done;
    int rc = cli_parse(&submit_spec, argc, argv, &a, &done);
    if (rc != CLI_OK || done) return rc;
    size_t len = 0;
    char *body = read_file(a.positional[0], &len);
    if (!body) return CLI_USAGE;
    client *c = open_client("submit", &a);
    json_t *v = NULL;
    long status = 0;
    rc = CLI_USAGE;
    if (!c) goto cleanup;
    v = request_json("submit", c, "POST", "/api/workflows", body, len, &status, &rc);
    if (!v) goto cleanup;
    json_int_t id = json_integer_value(json_object_get(v, "id"));
    if (id <= 0) {
        fprintf(stderr, "tessera submit: the service accepted the workflow but its answer has "
                        "no id (HTTP %ld)\n", status);
        rc = CLI_FAILED;
        goto cleanup;
    }
    print_submitted(v);
    if (cli_has(&a, "--follow")) {
        signal(SIGPIPE, SIG_IGN); /* a dropped stream is an error to handle, not a death */
        rc = follow_workflow(c, id, cli_has(&a, "--quiet"));
    }
cleanup:
    json_decref(v);
    client_free(c);
    free(body);
    return rc;
}

/* The state of the cancel's target in a workflow view: the workflow's, or
 * the job's when job is set ("" if the job is not in the view). */
static const char *target_state(json_t *v, const char *job) {
    if (!job) return str_or(v, "state", "");
    size_t i;
    json_t *j;
    json_array_foreach(json_object_get(v, "jobs"), i, j)
        if (strcmp(str_or(j, "job_id", ""), job) == 0) return str_or(j, "state", "");
    return "";
}

/* A state name, of a job or a workflow, that will not change any more. */
static bool state_final(const char *s) {
    job_state js;
    wf_state ws;
    return (job_state_parse(s, &js) == TS_OK && job_state_final(js)) ||
           (wf_state_parse(s, &ws) == TS_OK && wf_state_final(ws));
}

/*
 * The service queues a cancel for its scheduler and answers at once (202)
 * with the workflow as it stands; to report the outcome rather than
 * "requested", re-read the view for up to CANCEL_WAIT_S until the target
 * reaches a final state. Returns the newest view (caller decrefs).
 */
static json_t *await_final(client *c, const char *path, json_t *v, const char *job) {
    double deadline = ts_monotonic() + CANCEL_WAIT_S;
    while (!state_final(target_state(v, job)) && ts_monotonic() < deadline) {
        nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
        long status = 0;
        int rc;
        json_t *fresh = request_json("cancel", c, "GET", path, NULL, 0, &status, &rc);
        if (!fresh) break;
        json_decref(v);
        v = fresh;
    }
    return v;
}

/* Prints the target's state after a cancel, saying when it had already
 * finished before or when the cancel is still on its way. */
static void print_cancelled(json_t *v, long id, const char *job, bool final_before) {
    const char *state = target_state(v, job);
    if (job)
        printf("job %s of workflow %ld: %s", job, id, state);
    else
        printf("workflow %ld \"%s\": %s", id, str_or(v, "name", ""), state);
    if (final_before && strcmp(state, "cancelled") != 0)
        printf(" (already finished; nothing to cancel)");
    else if (!state_final(state))
        printf(" (cancel requested; the scheduler applies it within moments)");
    putchar('\n');
}

/* Cancel a workflow or one job, then report the state it ends up in. */
int cmd_cancel(int argc, char **argv) {
    cli_args a;
    bool done;
    long id;
    int rc = cli_parse(&cancel_spec, argc, argv, &a, &done);
    if (rc != CLI_OK || done) return rc;
    const char *job = a.n_positional > 1 ? a.positional[1] : NULL;
    if (!parse_workflow_id("cancel", a.positional[0], &id) || (job && !check_job_id("cancel", job)))
        return CLI_USAGE;
    client *c = open_client("cancel", &a);
    if (!c) return CLI_USAGE;
    char view_path[64], *cancel_path;
    snprintf(view_path, sizeof(view_path), "/api/workflows/%ld", id);
    cancel_path = job ? ts_asprintf("%s/jobs/%s/cancel", view_path, job)
                      : ts_asprintf("%s/cancel", view_path);
    long status = 0;
    json_t *v = request_json("cancel", c, "POST", cancel_path, NULL, 0, &status, &rc);
    if (v) {
        bool final_before = state_final(target_state(v, job));
        v = await_final(c, view_path, v, job);
        print_cancelled(v, id, job, final_before);
    }
    json_decref(v);
    free(cancel_path);
    client_free(c);
    return rc;
}

/* Logs: the body goes to stdout byte for byte, streamed (logs can be big). */
int cmd_logs(int argc, char **argv) {
    cli_args a;
    bool done;
    long id;
    int rc = cli_parse(&logs_spec, argc, argv, &a, &done);
    if (rc != CLI_OK || done) return rc;
    if (!parse_workflow_id("logs", a.positional[0], &id) || !check_job_id("logs", a.positional[1]))
        return CLI_USAGE;
    client *c = open_client("logs", &a);
    if (!c) return CLI_USAGE;
    char err[TS_ERRLEN], *resp = NULL;
    char *path = ts_asprintf("/api/workflows/%ld/jobs/%s/log", id, a.positional[1]);
    long status = 0;
    if (client_download(c, path, stdout, &status, &resp, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "tessera logs: %s\n", err);
        rc = CLI_FAILED;
    } else if (status < 200 || status >= 300) {
        rc = report_error("logs", status, resp, strlen(resp));
    }
    free(resp);
    free(path);
    client_free(c);
    return rc;
}

/* `tessera status` with a server: the caller's newest workflows (one page
 * of up to 100, like the local listing), or one workflow with its jobs. */
int cmd_status_remote(const cli_args *a) {
    if (cli_has(a, "--all")) {
        fprintf(stderr, "tessera status: --all reads the local database and cannot be combined "
                        "with a server (the service shows each user only their own workflows)\n");
        return CLI_USAGE;
    }
    long id = 0;
    if (a->n_positional == 1 && !parse_workflow_id("status", a->positional[0], &id))
        return CLI_USAGE;
    client *c = open_client("status", a);
    if (!c) return CLI_USAGE;
    char path[64];
    if (id)
        snprintf(path, sizeof(path), "/api/workflows/%ld", id);
    else
        snprintf(path, sizeof(path), "/api/workflows?limit=100");
    long status = 0;
    int rc;
    json_t *v = request_json("status", c, "GET", path, NULL, 0, &status, &rc);
    json_t *shown = id ? v : json_object_get(v, "workflows");
    if (v && !id && !json_is_array(shown)) {
        fprintf(stderr, "tessera status: the service's answer has no \"workflows\" list\n");
        rc = CLI_FAILED;
    } else if (v && cli_has(a, "--json")) {
        json_dumpf(shown, stdout, JSON_INDENT(2));
        putchar('\n');
    } else if (v) {
        (id ? status_print_workflow : status_print_list)(shown);
    }
    json_decref(v);
    client_free(c);
    return rc;
}
