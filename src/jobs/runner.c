/*
 * runner.c - `tessera run-job SPEC` and job_progress() (see jobs.h).
 *
 * The runner is the only code that runs inside a job's process. It turns
 * the spec file the executor wrote into a job_ctx, runs the job into a
 * private temporary directory and publishes that directory with a rename,
 * so readers see either no result or a complete one, never a partial one.
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
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/slide.h"
#include "jobs/jobs.h"
#include "util/proctree.h"
#include "util/util.h"

#define PROGRESS_FD 3                /* where the local executor's pipe is */
#define PROGRESS_INTERVAL_S 0.2      /* ~5 lines per second */
#define PROGRESS_LINE_MAX 512        /* well under PIPE_BUF: one atomic write */
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

/* The fields of a spec file; strings point into root. */
typedef struct run_spec {
    json_t *root;
    json_int_t workflow_id, job_index, cpus, attempt;
    const char *job_id, *job_type, *image_path, *data_roots, *work_dir, *result_dir;
    json_t *params;
    job_input inputs[JOBS_MAX_INPUTS];
    size_t n_inputs;
} run_spec;

/* ---- progress ---- */

/* Copies message into out (size len) as one line: control characters
 * would break the line protocol, so they become spaces, and the text is
 * cut on a UTF-8 character boundary. */
static size_t copy_message(char *out, size_t len, const char *message) {
    size_t n = 0;
    for (; message && message[n] && n + 1 < len; n++)
        out[n] = (unsigned char)message[n] < 0x20 ? ' ' : message[n];
    if (message && message[n])
        while (n > 0 && ((unsigned char)out[n] & 0xC0) == 0x80) n--;
    out[n] = '\0';
    return n;
}

/* Writes "progress <done> <total> <message>\n" with one write(), skipping
 * lines that come within PROGRESS_INTERVAL_S of the last one unless the
 * work is done: the scheduler stores progress, and a tight loop must not
 * turn into thousands of database writes a second. */
void job_progress(job_ctx *ctx, double done, double total, const char *message) {
    if (ctx == NULL || ctx->progress_fd < 0) return;
    double now = ts_monotonic();
    bool final = done >= total;
    if (!final && now - ctx->last_progress_at < PROGRESS_INTERVAL_S) return;
    ctx->last_progress_at = now;
    char line[PROGRESS_LINE_MAX];
    int n = snprintf(line, sizeof(line), "progress %.15g %.15g ", done, total);
    size_t len = (size_t)n + copy_message(line + n, sizeof(line) - (size_t)n - 1, message);
    line[len++] = '\n';
    ssize_t w;
    do w = write(ctx->progress_fd, line, len);
    while (w < 0 && errno == EINTR);
}

/* ---- files ---- */

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb;
    (void)ftw;
    return (type == FTW_DP ? rmdir(path) : unlink(path)) == 0 || errno == ENOENT ? 0 : -1;
}

/* rm -rf path, without following symlinks out of the tree. A missing
 * path is success. */
static int rmtree(const char *path) {
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 || errno == ENOENT) return TS_OK;
    return TS_ERR;
}

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
 * window without any result is two renames long. */
static int publish(const char *tmp, const char *result_dir, int attempt, char *err,
                   size_t errlen) {
    char *aside = ts_asprintf("%s.old-%d-%ld", result_dir, attempt, (long)getpid());
    char *parent = parent_dir(result_dir);
    bool moved_aside = false;
    int rc = TS_ERR;
    struct stat st;
    if (lstat(result_dir, &st) == 0) {
        rmtree(aside);
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
    if (moved_aside) rmtree(aside);
    rc = TS_OK;
cleanup:
    free(aside);
    free(parent);
    return rc;
}

/* ---- spec ---- */

/* A string field; required ones must be non-empty. NULL/absent is allowed
 * only when !required. */
static int spec_string(json_t *root, const char *key, bool required, const char **out, char *err,
                       size_t errlen) {
    json_t *v = json_object_get(root, key);
    *out = NULL;
    if (!required && (v == NULL || json_is_null(v))) return TS_OK;
    if (json_is_string(v) && json_string_length(v) > 0) {
        *out = json_string_value(v);
        return TS_OK;
    }
    ts_errf(err, errlen, "field \"%s\": must be a non-empty string%s", key,
            required ? "" : " or null");
    return TS_ERR;
}

static int spec_int(json_t *root, const char *key, json_int_t min, json_int_t max,
                    json_int_t *out, char *err, size_t errlen) {
    json_t *v = json_object_get(root, key);
    if (json_is_integer(v) && json_integer_value(v) >= min && json_integer_value(v) <= max) {
        *out = json_integer_value(v);
        return TS_OK;
    }
    ts_errf(err, errlen, "field \"%s\": must be an integer from %lld to %lld", key, (long long)min,
            (long long)max);
    return TS_ERR;
}

/* The upstream jobs ("inputs", optional): an array of objects with
 * job_id, job_type, result_dir and optionally image_path. */
static int spec_inputs(json_t *arr, run_spec *s, char *err, size_t errlen) {
    if (arr == NULL) return TS_OK;
    if (!json_is_array(arr) || json_array_size(arr) > JOBS_MAX_INPUTS) {
        ts_errf(err, errlen, "field \"inputs\": must be an array of at most %d objects",
                JOBS_MAX_INPUTS);
        return TS_ERR;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *o = json_array_get(arr, i);
        job_input *in = &s->inputs[i];
        if (!json_is_object(o) || spec_string(o, "job_id", true, &in->job_id, err, errlen) ||
            spec_string(o, "job_type", true, &in->job_type, err, errlen) ||
            spec_string(o, "image_path", false, &in->image_path, err, errlen) ||
            spec_string(o, "result_dir", true, &in->result_dir, err, errlen)) {
            if (!json_is_object(o)) ts_errf(err, errlen, "field \"inputs\": not an object");
            return TS_ERR;
        }
    }
    s->n_inputs = json_array_size(arr);
    return TS_OK;
}

/* Loads and checks the spec file. The caller frees s->root (even on error). */
static int spec_load(const char *path, run_spec *s, char *err, size_t errlen) {
    json_error_t jerr;
    s->root = json_load_file(path, 0, &jerr);
    if (s->root == NULL || !json_is_object(s->root)) {
        ts_errf(err, errlen, "cannot read spec: %s", s->root ? "not a JSON object" : jerr.text);
        return TS_ERR;
    }
    json_t *r = s->root;
    if (spec_int(r, "workflow_id", 0, INT64_MAX, &s->workflow_id, err, errlen) ||
        spec_int(r, "job_index", 0, INT32_MAX, &s->job_index, err, errlen) ||
        spec_int(r, "cpus", 1, 1 << 20, &s->cpus, err, errlen) ||
        spec_int(r, "attempt", 1, INT32_MAX, &s->attempt, err, errlen) ||
        spec_string(r, "job_id", true, &s->job_id, err, errlen) ||
        spec_string(r, "job_type", true, &s->job_type, err, errlen) ||
        spec_string(r, "image_path", false, &s->image_path, err, errlen) ||
        spec_string(r, "data_roots", false, &s->data_roots, err, errlen) ||
        spec_string(r, "work_dir", true, &s->work_dir, err, errlen) ||
        spec_string(r, "result_dir", true, &s->result_dir, err, errlen))
        return TS_ERR;
    s->params = json_object_get(r, "params");
    if (json_is_null(s->params)) s->params = NULL;
    if (spec_inputs(json_object_get(r, "inputs"), s, err, errlen) != TS_OK) return TS_ERR;
    return jobs_check(NULL, s->job_type, s->params, s->image_path, err, errlen);
}

/* ---- running ---- */

/* fd 3 is the progress channel when the executor opened it; on other
 * executors (Slurm) it is closed and progress goes nowhere. */
static int progress_fd(void) {
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
static int check_image_again(const run_spec *s, char *err, size_t errlen) {
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

/* Runs the job into a fresh temporary directory and publishes it. On
 * failure nothing is left behind but the previous result, if any. */
static int run_attempt(const run_spec *s, const job_type *type, char *err, size_t errlen) {
    char *tmp = ts_asprintf("%s.tmp-%d-%ld", s->result_dir, (int)s->attempt, (long)getpid());
    char *parent = parent_dir(s->result_dir);
    int rc = TS_ERR;
    if (type->needs_image && check_image_again(s, err, errlen) != TS_OK) goto cleanup;
    if (ts_mkdir_p(parent, err, errlen) != TS_OK) goto cleanup;
    rmtree(tmp); /* a stale one from an earlier runner that had our pid */
    if (mkdir(tmp, 0755) != 0) {
        ts_errf(err, errlen, "mkdir %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    job_ctx ctx = {
        .type = type,
        .job_id = s->job_id,
        .image_path = s->image_path,
        .data_roots = s->data_roots,
        .params = s->params,
        .out_dir = tmp,
        .work_dir = s->work_dir,
        .cpus = (int)s->cpus,
        .attempt = (int)s->attempt,
        .inputs = s->inputs,
        .n_inputs = s->n_inputs,
        .stop = &run_stop,
        .progress_fd = progress_fd(),
        .last_progress_at = -1e9,
    };
    err[0] = '\0';
    if (type->run(&ctx, err, errlen) != TS_OK) {
        if (err[0] == '\0') ts_errf(err, errlen, "%s failed without a message", type->name);
    } else {
        rc = publish(tmp, s->result_dir, (int)s->attempt, err, errlen);
    }
    if (rc != TS_OK) rmtree(tmp);
cleanup:
    free(tmp);
    free(parent);
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
}

/* Entry point of `tessera run-job SPEC`: 0 success, 1 job failed, 2 bad
 * spec. Messages go to stderr, which the executor appends to job.log. */
int jobs_run_main(const char *spec_path) {
    char err[TS_ERRLEN] = "";
    run_spec spec;
    memset(&spec, 0, sizeof(spec));
    int status = 2;
    guard_descendants();
    if (spec_load(spec_path, &spec, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "tessera run-job: %s: bad spec: %s\n", spec_path, err);
        goto cleanup;
    }
    struct sigaction old_term, old_int;
    catch_stop_signals(&old_term, &old_int);
    double started = ts_monotonic();
    if (run_attempt(&spec, jobs_find(spec.job_type), err, sizeof(err)) == TS_OK) {
        printf("tessera run-job: %s: succeeded in %.3f s\n", spec.job_id, ts_monotonic() - started);
        fflush(stdout);
        status = 0;
    } else {
        fprintf(stderr, "tessera run-job: %s: %s\n", spec.job_id, err);
        status = 1;
    }
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGINT, &old_int, NULL);
cleanup:
    json_decref(spec.root);
    return status;
}
