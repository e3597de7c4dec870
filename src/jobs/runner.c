/*
 * runner.c - `tessera run-job SPEC` and job_progress() (see jobs.h).
 *
 * The runner is the only code that runs inside a job's process. It turns
 * the spec file the executor wrote into a job_ctx, runs the job into a
 * private temporary directory and publishes that directory with a rename,
 * so readers see either no result or a complete one, never a partial one;
 * then it leaves the attempt's exit marker. Its side of the runner protocol
 * (spec, progress, marker) is exec/protocol.h, the same module the
 * executors read it with.
 *
 * Nothing a job starts outlives the runner: the runner is a child subreaper
 * (orphans below it become its children, whatever setsid() or double forks
 * they did), kills what is left below it before it exits, and when the
 * local executor started it (it set a parent-death signal), the scheduler's
 * death makes it kill everything below it and exit at once (see the
 * guarantees in src/exec/local.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exec/protocol.h"
#include "image/slide.h"
#include "jobs/jobs.h"
#include "util/layout.h"
#include "util/proctree.h"
#include "util/util.h"

#define PROGRESS_FD 3                /* where the local executor's pipe is */
#define PROGRESS_INTERVAL_S 0.2      /* ~5 lines per second */
#define PARENT_DEATH_SIGNAL SIGHUP   /* replaces the executor's SIGKILL; see guard_descendants */
#define TEARDOWN_S 5.0               /* how long killing what is below us may take */

/* Set by SIGTERM/SIGINT. File-scope because a signal handler can reach
 * nothing else; jobs see it only through ctx->stop. */
static volatile sig_atomic_t run_stop;

static void on_stop_signal(int sig) {
    (void)sig;
    run_stop = 1;
}

/* The scheduler that started us is gone: kill everything below us and go,
 * before a new attempt of the job starts (async-signal-safe). */
static void on_parent_death(int sig) {
    proctree_kill_children(TEARDOWN_S);
    _exit(128 + sig);
}

/* Makes us a child subreaper, and when our parent asked for a parent-death
 * signal (the local executor sets SIGKILL before exec), swaps it for one we
 * catch: SIGKILL would end us alone and orphan what a tool started. The
 * getppid() check closes the window where the parent died before the swap
 * (then the old SIGKILL was already on its way, or the new check fires).
 * Started otherwise (Slurm, by hand), the runner leaves the signal alone. */
static void guard_descendants(void) {
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    int pdeath = 0;
    if (prctl(PR_GET_PDEATHSIG, &pdeath) != 0 || pdeath == 0) return;
    pid_t parent = getppid();
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_parent_death;
    sigfillset(&sa.sa_mask);
    sigaction(PARENT_DEATH_SIGNAL, &sa, NULL);
    prctl(PR_SET_PDEATHSIG, PARENT_DEATH_SIGNAL);
    if (getppid() != parent) on_parent_death(PARENT_DEATH_SIGNAL);
}

/* ---- progress ---- */

/* Writes one progress line to the executor's pipe (if any) and to the
 * attempt's progress file (protocol.h), skipping lines that come within
 * PROGRESS_INTERVAL_S of the last one unless the work is done: the scheduler
 * stores progress, and a tight loop must not turn into thousands of
 * database writes a second. */
void job_progress(job_ctx *ctx, double done, double total, const char *message) {
    if (ctx == NULL || (ctx->progress_fd < 0 && ctx->progress_file_fd < 0)) return;
    double now = ts_monotonic();
    bool final = done >= total;
    if (!final && now - ctx->last_progress_at < PROGRESS_INTERVAL_S) return;
    ctx->last_progress_at = now;
    char line[PROTO_LINE_MAX];
    size_t len = proto_progress_format(line, sizeof(line), done, total, message);
    int fds[2] = {ctx->progress_fd, ctx->progress_file_fd};
    for (int i = 0; i < 2; i++) {
        if (fds[i] < 0) continue;
        ssize_t w; /* one write() each: a pipe line stays whole (< PIPE_BUF) */
        do w = write(fds[i], line, len);
        while (w < 0 && errno == EINTR);
    }
}

/* ---- files ---- */

/* The directory holding path ("." if it has no slash). Freshly allocated. */
static char *parent_dir(const char *path) {
    char *p = ts_strdup(path);
    size_t len = strlen(p);
    while (len > 1 && p[len - 1] == '/') p[--len] = '\0';
    char *slash = strrchr(p, '/');
    if (slash == NULL) {
        free(p);
        return ts_strdup(".");
    }
    slash[slash == p ? 1 : 0] = '\0';
    return p;
}

/* Makes a rename in dir durable: without it a crash could lose the
 * published result while the scheduler has recorded success. */
static void fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    fsync(fd);
    close(fd);
}

/* Moves tmp to result_dir. An existing result (from an earlier attempt) is
 * renamed aside first and removed after the new one is in place, so the
 * window without any result is two renames long. tmp NULL: the type writes
 * nothing and there is no result to replace (jobs.h), so nothing is
 * published - no rename, no fsync, and nothing a crash could lose. */
static int publish(const char *tmp, const char *result_dir, int attempt, char *err,
                   size_t errlen) {
    if (tmp == NULL) return TS_OK; /* run_job made none: no result to replace */
    char *aside = layout_result_aside(result_dir, attempt, (long)getpid());
    char *parent = parent_dir(result_dir);
    bool moved_aside = false;
    int rc = TS_ERR;
    struct stat st;
    if (lstat(result_dir, &st) == 0) {
        ts_rmtree(aside);
        if (rename(result_dir, aside) != 0) {
            ts_errf(err, errlen, "rename %s: %s", result_dir, strerror(errno));
            goto cleanup;
        }
        moved_aside = true;
    }
    if (rename(tmp, result_dir) != 0) {
        ts_errf(err, errlen, "rename %s to %s: %s", tmp, result_dir, strerror(errno));
        if (moved_aside) rename(aside, result_dir);
        goto cleanup;
    }
    fsync_dir(parent);
    if (moved_aside) ts_rmtree(aside);
    rc = TS_OK;
cleanup:
    free(aside);
    free(parent);
    return rc;
}

/* ---- running ---- */

/* fd 3 is the progress pipe when the local executor opened it; otherwise
 * (Slurm) progress goes only to the attempt's progress file. */
static int inherited_progress_fd(void) {
    if (fcntl(PROGRESS_FD, F_GETFD) == -1) return -1;
    /* Processes the job starts must not hold the pipe open past our exit. */
    fcntl(PROGRESS_FD, F_SETFD, FD_CLOEXEC);
    return PROGRESS_FD;
}

/* The image, checked again now that the job starts: what was a slide in the
 * data roots at submission may since have become a link to a file outside
 * them, or a FIFO (issue 12, defects 1 and 3). The job type opens it with
 * the same check (jobimg_open, tools_run), so a swap after this moment is
 * refused there. */
static int check_image_again(const proto_spec *s, char *err, size_t errlen) {
    char real[PATH_MAX], why[TS_ERRLEN];
    if (s->image_path == NULL) return TS_OK; /* the type's own check names it */
    if (s->data_roots == NULL) {
        ts_errf(err, errlen, "image_path %s: the job spec names no data roots, so the image "
                             "cannot be checked: nothing was read", s->image_path);
        return TS_ERR;
    }
    if (slide_check_file(s->image_path, s->data_roots, real, why, sizeof(why)) == TS_OK)
        return TS_OK;
    ts_errf(err, errlen, "image_path %s: %s (checked again when the job started; nothing was "
                         "read)", s->image_path, why);
    return TS_ERR;
}

/* The upstream jobs of the spec as job_inputs (pointing into spec). */
static size_t spec_job_inputs(const proto_spec *s, job_input *out) {
    size_t n = json_array_size(s->inputs);
    if (n > JOBS_MAX_INPUTS) n = JOBS_MAX_INPUTS;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(s->inputs, i);
        out[i] = (job_input){json_string_value(json_object_get(o, "job_id")),
                             json_string_value(json_object_get(o, "job_type")),
                             json_string_value(json_object_get(o, "image_path")),
                             json_string_value(json_object_get(o, "result_dir"))};
    }
    return n;
}

/* Does the attempt need a temporary output directory? Not when its type
 * writes nothing (jobs.h) - unless an earlier attempt, or a tessera from
 * before writes_nothing, left a result that this one must replace. Only
 * ENOENT says there is none: any other failure (EACCES, EIO, a stale NFS
 * handle on a Slurm node) takes the old way, whose rename then fails
 * loudly instead of leaving an old result to pass for this attempt's. */
static bool needs_out_dir(const job_type *type, const char *result_dir) {
    struct stat st;
    return !type->writes_nothing || lstat(result_dir, &st) == 0 || errno != ENOENT;
}

/* Makes the attempt's temporary output directory tmp, beside result_dir. */
static int make_out_dir(const char *tmp, const char *result_dir, char *err, size_t errlen) {
    char *parent = parent_dir(result_dir);
    int rc = ts_mkdir_p(parent, err, errlen);
    free(parent);
    if (rc != TS_OK) return TS_ERR;
    ts_rmtree(tmp); /* a stale one from an earlier runner that had our pid */
    if (mkdir(tmp, 0755) != 0) {
        ts_errf(err, errlen, "mkdir %s: %s", tmp, strerror(errno));
        return TS_ERR;
    }
    return TS_OK;
}

/* Runs the job into a fresh temporary directory and publishes it (a type
 * that writes nothing gets none, and publishes nothing: needs_out_dir). On
 * failure nothing is left behind but the previous result, if any. */
static int run_job(const proto_spec *s, const job_type *type, int progress_fd, char *err,
                   size_t errlen) {
    char *tmp = NULL;
    char *progress_path = layout_attempt_path(s->work_dir, s->attempt, LAYOUT_PROGRESS);
    job_input inputs[JOBS_MAX_INPUTS];
    int rc = TS_ERR;
    if (type->needs_image && check_image_again(s, err, errlen) != TS_OK) goto cleanup;
    if (needs_out_dir(type, s->result_dir)) {
        tmp = layout_result_tmp(s->result_dir, s->attempt, (long)getpid());
        if (make_out_dir(tmp, s->result_dir, err, errlen) != TS_OK) goto cleanup;
    }
    job_ctx ctx = {
        .type = type,
        .job_id = s->job_id,
        .image_path = s->image_path,
        .data_roots = s->data_roots,
        .params = s->params,
        .out_dir = tmp,
        .work_dir = s->work_dir,
        .cpus = s->cpus,
        .attempt = s->attempt,
        .inputs = inputs,
        .n_inputs = spec_job_inputs(s, inputs),
        .stop = &run_stop,
        .progress_fd = progress_fd,
        /* Without a pipe the file is the only way; with one, only when the
         * executor reads the file (protocol.h, "progress_file"). */
        .progress_file_fd = s->progress_file || progress_fd < 0
                                ? open(progress_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)
                                : -1,
        .last_progress_at = -1e9,
    };
    err[0] = '\0';
    if (type->run(&ctx, err, errlen) != TS_OK) {
        if (err[0] == '\0') ts_errf(err, errlen, "%s failed without a message", type->name);
    } else {
        rc = publish(tmp, s->result_dir, s->attempt, err, errlen);
    }
    if (ctx.progress_file_fd >= 0) close(ctx.progress_file_fd);
    if (rc != TS_OK && tmp) ts_rmtree(tmp);
cleanup:
    free(tmp);
    free(progress_path);
    return rc;
}

/* Installs the stop handler. No SA_RESTART: a sleeping or reading job
 * must wake with EINTR and see the flag. */
static void catch_stop_signals(struct sigaction *old_term, struct sigaction *old_int) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    run_stop = 0;
    sigaction(SIGTERM, &sa, old_term);
    sigaction(SIGINT, &sa, old_int);
    /* Slurm's warning before the time limit (sbatch --signal=B:USR1@60,
     * exec/slurm.h): stop like on SIGTERM and leave the marker in time. */
    sigaction(SIGUSR1, &sa, NULL);
}

/* Says the exit on the progress pipe (protocol.h, "exit_on_pipe"): one
 * write, shorter than PIPE_BUF, so the executor reads all of it or none.
 * False if it could not be written whole (the pipe broken, or full and
 * non-blocking): the caller then leaves the file. */
static bool say_exit_on_pipe(int progress_fd, const proto_exit *e) {
    char line[PROTO_LINE_MAX];
    size_t len = proto_exit_format(line, sizeof(line), e);
    ssize_t n;
    do n = write(progress_fd, line, len);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)len;
}

/* Leaves the attempt's exit marker (protocol.h): on the pipe when the spec
 * asks and there is one, else the file. A marker that cannot be written
 * turns a success into a failure: without it no executor may count the
 * attempt a success, so the runner must not claim one either. */
static int leave_marker(const proto_spec *s, int status, const char *reason, double began,
                        int progress_fd) {
    proto_exit e = {.exit_code = status, .started_at = began, .finished_at = ts_now()};
    ts_strlcpy(e.outcome, status == 0 ? "succeeded" : "failed", sizeof(e.outcome));
    proto_copy_utf8(e.reason, reason ? reason : "", sizeof(e.reason));
    if (s->exit_on_pipe && progress_fd >= 0 && say_exit_on_pipe(progress_fd, &e)) return status;
    char err[TS_ERRLEN];
    if (proto_exit_write(s->work_dir, s->attempt, &e, s->exit_marker_sync, err, sizeof(err)) ==
        TS_OK)
        return status;
    fprintf(stderr, "tessera run-job: %s: cannot leave the exit marker: %s\n",
            s->job_id ? s->job_id : "?", err);
    return status == 0 ? 1 : status;
}

int jobs_run_attempt(const char *spec_path, const char *spec_text, int progress_fd) {
    double began = ts_now(); /* the marker's started_at: before anything the runner does */
    char err[TS_ERRLEN] = "";
    proto_spec spec;
    int status = 2;
    guard_descendants();
    if (proto_spec_parse(spec_path, spec_text, &spec, err, sizeof(err)) != TS_OK ||
        jobs_check_type(spec.job_id, spec.job_type, spec.params, spec.image_path, err,
                        sizeof(err)) != TS_OK) {
        fprintf(stderr, "tessera run-job: %s: bad spec: %s\n", spec_path, err);
        if (spec.work_dir && spec.attempt > 0) {
            char reason[TS_ERRLEN + 16]; /* room for the prefix: -O1 checks truncation */
            snprintf(reason, sizeof(reason), "bad spec: %s", err);
            leave_marker(&spec, 2, reason, began, progress_fd);
        }
        goto cleanup;
    }
    struct sigaction old_term, old_int;
    catch_stop_signals(&old_term, &old_int);
    double started = ts_monotonic();
    if (run_job(&spec, jobs_find(spec.job_type), progress_fd, err, sizeof(err)) == TS_OK) {
        printf("tessera run-job: %s: succeeded in %.3f s\n", spec.job_id, ts_monotonic() - started);
        fflush(stdout);
        status = leave_marker(&spec, 0, NULL, began, progress_fd);
    } else {
        fprintf(stderr, "tessera run-job: %s: %s\n", spec.job_id, err);
        status = leave_marker(&spec, 1, err, began, progress_fd);
    }
    /* Hanging up the progress pipe right after the marker tells the local
     * executor the attempt is over: it need not wait for this process to
     * finish exiting (exec/local.c, finish_said), and may kill it now. */
    if (progress_fd >= 0) close(progress_fd);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGINT, &old_int, NULL);
cleanup:
    proto_spec_free(&spec);
    return status;
}

int jobs_run_main(const char *spec_path) {
    return jobs_run_attempt(spec_path, NULL, inherited_progress_fd());
}
