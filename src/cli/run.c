/*
 * run.c - `tessera run [WORKFLOW.json]`: store a workflow and drive the
 * scheduler on this machine until it ends (or, with no file, until every
 * unfinished workflow in the database ends), showing live progress.
 *
 * Several `tessera run` processes may share one database: one leads the
 * scheduler, the others watch their workflows in the store and take over if
 * the leader goes away. A leader whose own workflows are done stops taking
 * new work and hands over once its running jobs end.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "core/spec.h"
#include "jobs/jobs.h"
#include "sched/scheduler.h"
#include "sched/setup.h"
#include "util/layout.h"
#include "util/log.h"
#include "util/util.h"
#include "view/view.h"

#define MAX_SPEC_BYTES (64 * 1024 * 1024)
#define MAX_WATCH 256

static const char *const run_config_flags[] = {
    "--db", "--state-dir", "--user", "--concurrency-limit", "--max-active-users",
    "--poll-seconds", "--log", "--log-level", "--tools", "--data-root", "--executor", NULL};
static const char *const run_bool_flags[] = {"--quiet", NULL};

static const cli_spec run_spec = {
    .name = "run",
    .usage =
        "usage: tessera run [WORKFLOW.json] [options]\n"
        "\n"
        "Stores the workflow and runs the scheduler on this machine until it ends,\n"
        "with live progress (bars on a terminal, plain lines otherwise). Without a\n"
        "file, finishes every unfinished workflow in the database (e.g. after a crash).\n"
        "Exit status: 0 if every workflow watched succeeded, 1 if not, 2 if the\n"
        "workflow file is invalid (nothing is stored then).\n"
        "\n"
        "options (each also read from the TESSERA_* variable and ./.env):\n"
        "  --user U                 submit as user U (TESSERA_USER; default $USER)\n"
        "  --db PATH                SQLite database (TESSERA_DB; default STATE_DIR/tessera.db)\n"
        "  --state-dir DIR          state, logs, job work and results (TESSERA_STATE_DIR; ./var)\n"
        "  --concurrency-limit N    cpus of jobs running at once (TESSERA_CONCURRENCY_LIMIT)\n"
        "  --max-active-users N     users admitted at once (TESSERA_MAX_ACTIVE_USERS; 3)\n"
        "  --poll-seconds S         re-check the store this often (TESSERA_QUEUE_POLL_SECONDS)\n"
        "  --log FILE|-             JSON-lines log (TESSERA_LOG; default STATE_DIR/tessera.log)\n"
        "  --log-level LEVEL        debug, info, warn, error (TESSERA_LOG_LEVEL)\n"
        "  --tools FILE             admin-defined tools, docs/tools.md (TESSERA_TOOLS; none)\n"
        "  --executor local|slurm   where jobs run (TESSERA_EXECUTOR; local); slurm: sbatch\n"
        "                           with TESSERA_SLURM_* settings, docs/slurm.md\n"
        "  --data-root DIR          where images may be read from; repeatable\n"
        "                           (TESSERA_DATA_ROOTS, colon-separated; STATE_DIR/data)\n"
        "  --quiet                  no progress output\n",
    .config_flags = run_config_flags,
    .bool_flags = run_bool_flags,
    .min_positional = 0,
    .max_positional = 1,
};

/* Set by SIGINT/SIGTERM; the loop notices it between steps. */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) {
    stop_signal = sig;
}

typedef struct watch {
    int64_t id[MAX_WATCH];
    int64_t last_seq[MAX_WATCH];
    bool done[MAX_WATCH];
    size_t n;
} watch;

/* Reads and validates the workflow file; prints the problem and returns
 * NULL if it is not acceptable. */
static spec_workflow *read_spec(const char *path, const ts_config *cfg) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "tessera run: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *buf = ts_malloc(MAX_SPEC_BYTES + 1);
    size_t len = fread(buf, 1, MAX_SPEC_BYTES + 1, f);
    fclose(f);
    spec_workflow *wf = NULL;
    if (len > MAX_SPEC_BYTES) {
        fprintf(stderr, "tessera run: %s: larger than %d bytes\n", path, MAX_SPEC_BYTES);
    } else {
        spec_limits lim;
        spec_limits_default(&lim);
        lim.max_cpus = cfg->concurrency_limit;
        spec_error err;
        jobs_check_ctx jc = {.data_roots = cfg->data_roots};
        if (spec_parse(buf, len, &lim, jobs_check, &jc, &wf, &err) != TS_OK) {
            fprintf(stderr, "tessera run: %s: %s\n", path, err.message);
            wf = NULL;
        } else {
            jobs_resolve_spec_images(wf, cfg->data_roots);
        }
    }
    free(buf);
    return wf;
}

static int watch_unfinished_cb(void *ctx, const store_workflow *wf) {
    watch *w = ctx;
    if (w->n >= MAX_WATCH) return 1;
    w->id[w->n++] = wf->id;
    return 0;
}

typedef struct watch_poll {
    progress_view *pv;
    watch *w;
    size_t i;
} watch_poll;

/* Prints an event of a watched workflow and notes when it has finished, so
 * the loop never needs to reload a whole workflow to know. */
static int poll_events_cb(void *ctx, const store_event *ev) {
    watch_poll *wp = ctx;
    wp->w->last_seq[wp->i] = ev->seq;
    progress_event(wp->pv, ev);
    if (strcmp(ev->type, "workflow.finished") == 0) wp->w->done[wp->i] = true;
    return 0;
}

/* Prints the watched workflows' new events and, when a redraw is due (or
 * forced), draws their bars from fresh views: the same JSON the API serves,
 * so `run` and `submit --follow` draw alike. */
static void watch_update(store *st, watch *w, progress_view *pv, bool force) {
    char err[TS_ERRLEN];
    for (size_t i = 0; i < w->n; i++) {
        watch_poll wp = {pv, w, i};
        store_events_since(st, w->last_seq[i], NULL, w->id[i], 1000, poll_events_cb, &wp, err,
                           sizeof(err));
    }
    if (!progress_due(pv) && !(force && pv->tty && !pv->quiet)) return;
    json_t *shown[MAX_WATCH];
    size_t n_shown = 0;
    double now = ts_now();
    for (size_t i = 0; i < w->n; i++) {
        store_workflow *wf = NULL;
        if (store_workflow_get(st, w->id[i], NULL, &wf, err, sizeof(err)) != TS_OK) continue;
        shown[n_shown++] = view_workflow(wf, NULL, NULL, now);
        store_workflow_free(wf);
    }
    progress_draw(pv, shown, n_shown, true);
    for (size_t i = 0; i < n_shown; i++) json_decref(shown[i]);
}

static bool watch_all_done(const watch *w) {
    for (size_t i = 0; i < w->n; i++)
        if (!w->done[i]) return false;
    return true;
}

static void make_owner(char *buf, size_t n) {
    char host[128] = "localhost";
    gethostname(host, sizeof(host) - 1);
    snprintf(buf, n, "%s:%d:%.0f", host, (int)getpid(), ts_now() * 1000);
}

/* The scheduler loop: until the watched workflows end (or a signal), then
 * hand over cleanly. Returns the exit status. */
static int drive(const cli_args *a, store *st, watch *w, progress_view *pv) {
    char err[TS_ERRLEN], owner[256], self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (len <= 0) {
        fprintf(stderr, "tessera run: cannot find own executable: %s\n", strerror(errno));
        return CLI_FAILED;
    }
    self[len] = '\0';
    executor *ex = sched_setup_executor(&a->cfg, self, err, sizeof(err));
    if (!ex) {
        fprintf(stderr, "tessera run: %s\n", err);
        return CLI_FAILED;
    }
    make_owner(owner, sizeof(owner));
    sched_config sc;
    sched_setup_config(&a->cfg, &sc);
    scheduler *s = sched_new(&sc, owner, st, ex);
    int rc = CLI_OK;
    bool unavailable = false;
    while (!stop_signal) {
        int step = sched_step(s, 0.2, -1, err, sizeof(err));
        if (step == STORE_UNAVAILABLE) { /* sched_step backs off; say so once */
            if (!unavailable) fprintf(stderr, "tessera run: %s; waiting for it\n", err);
            unavailable = true;
            continue;
        }
        if (step != TS_OK) {
            fprintf(stderr, "tessera run: %s\n", err);
            rc = CLI_FAILED;
            break;
        }
        if (unavailable) fprintf(stderr, "tessera run: the store is available again\n");
        unavailable = false;
        watch_update(st, w, pv, false);
        if (!watch_all_done(w)) continue;
        /* Done only once on disk: the last rounds' fsyncs may still run. */
        if (sched_sync_wait(s, err, sizeof(err)) != TS_OK) {
            fprintf(stderr, "tessera run: %s; waiting for the store\n", err);
            unavailable = true;
            continue;
        }
        /* Our workflows are done; let jobs of others we run finish first. */
        if (!sched_is_leader(s) || sched_running(s) == 0) break;
        sched_stop_claiming(s);
    }
    watch_update(st, w, pv, true);
    if (stop_signal) {
        char reason[128];
        snprintf(reason, sizeof(reason), "interrupted: tessera run stopped by %s",
                 stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
        rc = 128 + stop_signal;
        if (sched_shutdown(s, reason, err, sizeof(err)) != TS_OK)
            fprintf(stderr, "tessera run: %s\n", err);
        fprintf(stderr, "tessera run: stopped; `tessera run` again finishes the workflow\n");
    } else if (sched_shutdown(s, "interrupted: scheduler handed over", err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "tessera run: %s\n", err);
    }
    sched_free(s);
    ex->ops->destroy(ex);
    return rc;
}

static void install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int print_outcome(store *st, const watch *w, const progress_view *pv) {
    int rc = CLI_OK;
    char err[TS_ERRLEN];
    for (size_t i = 0; i < w->n; i++) {
        store_workflow *wf = NULL;
        if (store_workflow_get(st, w->id[i], NULL, &wf, err, sizeof(err)) != TS_OK) continue;
        if (wf->state != WF_SUCCEEDED) rc = CLI_FAILED;
        if (!pv->quiet || wf->state != WF_SUCCEEDED)
            printf("workflow %lld \"%s\": %s%s%s\n", (long long)wf->id, wf->name,
                   wf_state_name(wf->state), wf->reason[0] ? " - " : "", wf->reason);
        store_workflow_free(wf);
    }
    return rc;
}

int cmd_run(int argc, char **argv) {
    cli_args a;
    bool done;
    int rc = cli_parse(&run_spec, argc, argv, &a, &done);
    if (rc != CLI_OK || done) return rc;
    if ((rc = cli_load_tools(&a)) != CLI_OK) return rc; /* before the workflow is checked */
    spec_workflow *spec = NULL;
    if (a.n_positional == 1 && !(spec = read_spec(a.positional[0], &a.cfg))) return CLI_USAGE;
    char err[TS_ERRLEN];
    store *st = NULL;
    watch w = {0};
    progress_view pv;
    progress_init(&pv, stdout, cli_has(&a, "--quiet"));
    /* `run` is its own master: it alone may create the database, and checks
     * it before trusting what it says. */
    int tightened = 0;
    if (layout_state_dir_make(a.cfg.state_dir, &tightened, err, sizeof(err)) != TS_OK ||
        store_open(a.cfg.db, &st, err, sizeof(err)) != TS_OK ||
        store_integrity_check(st, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "tessera run: %s%s\n", st ? "refusing to start: " : "", err);
        spec_free(spec);
        store_close(st);
        return CLI_FAILED;
    }
    if (cli_open_log(&a, "run") != TS_OK) goto fail;
    if (spec) {
        if (store_submit(st, a.cfg.user, spec, ts_now(), &w.id[0], err, sizeof(err)) != TS_OK)
            goto fail_err;
        w.n = 1;
        if (!pv.quiet)
            printf("submitted workflow %lld \"%s\" (%zu jobs) as user %s\n", (long long)w.id[0],
                   spec->name, spec->n_jobs, a.cfg.user);
    } else {
        if (store_workflow_list(st, NULL, WF_QUEUED, 0, 0, watch_unfinished_cb, &w, err,
                                sizeof(err)) != TS_OK ||
            store_workflow_list(st, NULL, WF_RUNNING, 0, 0, watch_unfinished_cb, &w, err,
                                sizeof(err)) != TS_OK)
            goto fail_err;
        if (!pv.quiet) printf("resuming %zu unfinished workflow(s)\n", w.n);
    }
    fflush(stdout);
    install_signals();
    rc = drive(&a, st, &w, &pv);
    if (rc == CLI_OK) rc = print_outcome(st, &w, &pv);
    spec_free(spec);
    store_close(st);
    log_close();
    return rc;
fail_err:
    fprintf(stderr, "tessera run: %s\n", err);
fail:
    spec_free(spec);
    store_close(st);
    return CLI_FAILED;
}
